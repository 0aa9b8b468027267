use crate::Phase;

/// Why a command was refused. Each message says what was wrong and what is allowed, so that
/// the web UI, the API and chat can show it as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error(
        "the title is empty: describe what is broken in a few words, such as \"Checkout is down\""
    )]
    EmptyTitle,
    #[error("the {field} is {len} characters long: at most {max} are allowed")]
    TooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error("the {field} is not valid: {reason}")]
    InvalidText {
        field: &'static str,
        reason: &'static str,
    },
    #[error("unknown severity `{given}`: use one of {}", allowed.join(", "))]
    UnknownSeverity { given: String, allowed: Vec<String> },
    #[error("unknown status `{given}`: use one of {}", allowed.join(", "))]
    UnknownStatus { given: String, allowed: Vec<String> },
    #[error(
        "an incident cannot move from `{from}` to `{to}`: from `{from}` it can move to {}",
        list_or_nothing(allowed)
    )]
    TransitionNotAllowed {
        from: String,
        to: String,
        allowed: Vec<String>,
    },
    #[error("unknown role `{given}`: use one of {}", allowed.join(", "))]
    UnknownRole { given: String, allowed: Vec<String> },
    #[error("unknown incident type `{given}`: use one of {}", allowed.join(", "))]
    UnknownType { given: String, allowed: Vec<String> },
    #[error(
        "`{key}` is not a valid label key: use 1 to 64 lowercase letters, digits, `_`, `-` or `.`"
    )]
    InvalidLabelKey { key: String },
    #[error("the impact cannot end ({end}) before it started ({start})")]
    ImpactEndsBeforeStart { start: String, end: String },
    #[error("nobody holds the {role} role, so there is nothing to release")]
    RoleNotHeld { role: String },
    #[error("there is no follow-up #{id} on this incident")]
    UnknownFollowUp { id: u32 },
    #[error("this incident is already declared")]
    AlreadyDeclared,
    #[error("the incident is {phase}: {hint}", phase = phase.as_str())]
    WrongPhase { phase: Phase, hint: &'static str },
}

fn list_or_nothing(v: &[String]) -> String {
    if v.is_empty() {
        "no other status".to_string()
    } else {
        v.join(", ")
    }
}

impl CommandError {
    /// The field of the incident the error is about, for forms and the API's error shape.
    pub fn field(&self) -> Option<&'static str> {
        Some(match self {
            CommandError::EmptyTitle => "title",
            CommandError::TooLong { field, .. } | CommandError::InvalidText { field, .. } => field,
            CommandError::UnknownSeverity { .. } => "severity",
            CommandError::UnknownStatus { .. } | CommandError::TransitionNotAllowed { .. } => {
                "status"
            }
            CommandError::UnknownRole { .. } | CommandError::RoleNotHeld { .. } => "role",
            CommandError::UnknownType { .. } => "type",
            CommandError::InvalidLabelKey { .. } => "labels",
            CommandError::ImpactEndsBeforeStart { .. } => "impact_ended_at",
            CommandError::UnknownFollowUp { .. } => "follow_up",
            CommandError::AlreadyDeclared | CommandError::WrongPhase { .. } => return None,
        })
    }

    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            CommandError::EmptyTitle => "empty_title",
            CommandError::TooLong { .. } => "too_long",
            CommandError::InvalidText { .. } => "invalid_text",
            CommandError::UnknownSeverity { .. } => "unknown_severity",
            CommandError::UnknownStatus { .. } => "unknown_status",
            CommandError::TransitionNotAllowed { .. } => "transition_not_allowed",
            CommandError::UnknownRole { .. } => "unknown_role",
            CommandError::UnknownType { .. } => "unknown_type",
            CommandError::InvalidLabelKey { .. } => "invalid_label_key",
            CommandError::ImpactEndsBeforeStart { .. } => "impact_ends_before_start",
            CommandError::RoleNotHeld { .. } => "role_not_held",
            CommandError::UnknownFollowUp { .. } => "unknown_follow_up",
            CommandError::AlreadyDeclared => "already_declared",
            CommandError::WrongPhase { .. } => "wrong_phase",
        }
    }
}
