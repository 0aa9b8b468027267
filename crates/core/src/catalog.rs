//! The operator-configurable vocabulary of incidents: severities, statuses with their allowed
//! transitions, roles and incident types. Each comes with defaults that reproduce common
//! practice; [`Catalog::new`] validates an operator's version and says what to fix.

use serde::{Deserialize, Serialize};

/// The role every incident can have, whatever the configuration says.
pub const LEAD_ROLE: &str = "lead";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeverityDef {
    /// What people type and see: `SEV1`.
    pub key: String,
    /// A word for it: `critical`.
    pub name: String,
    #[serde(default)]
    pub description: String,
}

/// Severities, most severe first. "At least SEV2" means SEV2 or anything listed before it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Severities(Vec<SeverityDef>);

impl Severities {
    pub fn all(&self) -> &[SeverityDef] {
        &self.0
    }

    /// Position in the list, 0 for the most severe.
    pub fn rank(&self, key: &str) -> Option<usize> {
        self.0.iter().position(|s| s.key.eq_ignore_ascii_case(key))
    }

    /// The canonical spelling of a severity the user typed in any case.
    pub fn canonical(&self, key: &str) -> Option<&str> {
        self.rank(key).map(|i| self.0[i].key.as_str())
    }

    /// Whether `key` is `threshold` or more severe. Unknown keys are never at least anything.
    pub fn at_least(&self, key: &str, threshold: &str) -> bool {
        matches!((self.rank(key), self.rank(threshold)), (Some(a), Some(b)) if a <= b)
    }

    /// The keys that are `threshold` or more severe, for filters.
    pub fn at_least_keys(&self, threshold: &str) -> Vec<String> {
        match self.rank(threshold) {
            Some(r) => self.0[..=r].iter().map(|s| s.key.clone()).collect(),
            None => Vec::new(),
        }
    }

    pub fn keys(&self) -> Vec<String> {
        self.0.iter().map(|s| s.key.clone()).collect()
    }
}

/// How far an incident has come. Statuses are operator-defined; each belongs to a phase, and
/// the phase decides which milestone timestamps a status change sets or clears.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Declared, nobody has picked it up yet.
    Triage,
    /// Someone is on it: reaching this phase sets `acknowledged_at`.
    Active,
    /// The customer impact is contained: sets `mitigated_at`.
    Mitigated,
    /// Sets `resolved_at`.
    Resolved,
    /// Retrospective done, nothing more to do: sets `closed_at`.
    Closed,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Triage => "triage",
            Phase::Active => "active",
            Phase::Mitigated => "mitigated",
            Phase::Resolved => "resolved",
            Phase::Closed => "closed",
        }
    }

    pub fn is_open(self) -> bool {
        self < Phase::Resolved
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusDef {
    pub key: String,
    pub phase: Phase,
    #[serde(default)]
    pub description: String,
    /// The statuses this one may move to.
    pub next: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statuses {
    /// The status a new incident gets unless the declaration names another.
    pub initial: String,
    pub list: Vec<StatusDef>,
}

impl Statuses {
    pub fn get(&self, key: &str) -> Option<&StatusDef> {
        self.list.iter().find(|s| s.key.eq_ignore_ascii_case(key))
    }

    pub fn keys(&self) -> Vec<String> {
        self.list.iter().map(|s| s.key.clone()).collect()
    }

    /// The keys of the statuses in `phase`, for filters.
    pub fn in_phase(&self, pred: impl Fn(Phase) -> bool) -> Vec<String> {
        self.list
            .iter()
            .filter(|s| pred(s.phase))
            .map(|s| s.key.clone())
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleDef {
    pub key: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Sent to the person who takes the role.
    #[serde(default)]
    pub checklist: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Roles(Vec<RoleDef>);

impl Roles {
    pub fn all(&self) -> &[RoleDef] {
        &self.0
    }

    pub fn get(&self, key: &str) -> Option<&RoleDef> {
        self.0.iter().find(|r| r.key.eq_ignore_ascii_case(key))
    }

    pub fn keys(&self) -> Vec<String> {
        self.0.iter().map(|r| r.key.clone()).collect()
    }
}

/// Everything a command is validated against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    pub severities: Severities,
    pub statuses: Statuses,
    pub roles: Roles,
    /// Allowed incident types; empty means any type is accepted.
    pub types: Vec<String>,
}

/// A problem in an operator's catalog, with the configuration key that holds it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct CatalogError {
    pub key: String,
    pub message: String,
}

fn err(key: impl Into<String>, message: impl Into<String>) -> CatalogError {
    CatalogError {
        key: key.into(),
        message: message.into(),
    }
}

fn sev(key: &str, name: &str, description: &str) -> SeverityDef {
    SeverityDef {
        key: key.into(),
        name: name.into(),
        description: description.into(),
    }
}

fn status(key: &str, phase: Phase, description: &str, next: &[&str]) -> StatusDef {
    StatusDef {
        key: key.into(),
        phase,
        description: description.into(),
        next: next.iter().map(|s| s.to_string()).collect(),
    }
}

fn role(key: &str, name: &str, description: &str, checklist: &[&str]) -> RoleDef {
    RoleDef {
        key: key.into(),
        name: name.into(),
        description: description.into(),
        checklist: checklist.iter().map(|s| s.to_string()).collect(),
    }
}

impl Severities {
    pub fn default_list() -> Vec<SeverityDef> {
        vec![
            sev(
                "SEV1",
                "critical",
                "Customers cannot use a core product; all hands.",
            ),
            sev(
                "SEV2",
                "major",
                "A core product is degraded for many customers.",
            ),
            sev(
                "SEV3",
                "minor",
                "Some customers see a problem; there is a workaround.",
            ),
            sev("SEV4", "low", "No visible customer impact yet."),
        ]
    }
}

impl Statuses {
    pub fn default_statuses() -> Statuses {
        use Phase::*;
        Statuses {
            initial: "triage".into(),
            list: vec![
                status(
                    "triage",
                    Triage,
                    "Declared; deciding whether and how to respond.",
                    &["investigating", "identified", "monitoring", "resolved"],
                ),
                status(
                    "investigating",
                    Active,
                    "Responders are looking for the cause.",
                    &["identified", "monitoring", "resolved"],
                ),
                status(
                    "identified",
                    Active,
                    "The cause is known; a fix is under way.",
                    &["investigating", "monitoring", "resolved"],
                ),
                status(
                    "monitoring",
                    Mitigated,
                    "A fix is in place; watching that it holds.",
                    &["investigating", "identified", "resolved"],
                ),
                status(
                    "resolved",
                    Resolved,
                    "The impact is over; follow-ups and the retrospective remain.",
                    &["closed", "investigating", "identified", "monitoring"],
                ),
                status(
                    "closed",
                    Closed,
                    "Retrospective done; nothing more to do.",
                    &["investigating"],
                ),
            ],
        }
    }
}

impl Roles {
    pub fn default_list() -> Vec<RoleDef> {
        vec![
            role(
                LEAD_ROLE,
                "Incident lead",
                "Coordinates the response, makes the decisions and keeps everyone pointed at the same goal.",
                &[
                    "Set the severity",
                    "Assign a comms lead for customer-facing incidents",
                    "Post a status update at the agreed cadence",
                    "Hand over the lead explicitly if you step away",
                ],
            ),
            role(
                "comms",
                "Communications lead",
                "Keeps stakeholders and customers informed so responders can focus.",
                &["Post to the status page", "Update stakeholders on every severity change"],
            ),
            role(
                "scribe",
                "Scribe",
                "Keeps the timeline: decisions, actions and what was learnt, with times.",
                &["Pin or react to important messages", "Record decisions as notes"],
            ),
        ]
    }
}

impl Default for Catalog {
    fn default() -> Self {
        Catalog {
            severities: Severities(Severities::default_list()),
            statuses: Statuses::default_statuses(),
            roles: Roles(Roles::default_list()),
            types: Vec::new(),
        }
    }
}

fn is_key(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn check_keys<'a>(
    section: &str,
    keys: impl Iterator<Item = &'a str>,
    errors: &mut Vec<CatalogError>,
) {
    let mut seen: Vec<String> = Vec::new();
    for (i, k) in keys.enumerate() {
        if !is_key(k) {
            errors.push(err(
                format!("{section}[{i}].key"),
                format!("`{k}` is not a valid key: use 1 to 32 letters, digits, `-` or `_`"),
            ));
        }
        let lower = k.to_ascii_lowercase();
        if seen.contains(&lower) {
            errors.push(err(
                format!("{section}[{i}].key"),
                format!("`{k}` is listed twice (keys are compared without case): remove one"),
            ));
        }
        seen.push(lower);
    }
}

impl Catalog {
    /// Validates an operator's catalog, reporting every problem at once. The lead role is
    /// added at the front when the list leaves it out, because every incident can have one.
    pub fn new(
        severities: Vec<SeverityDef>,
        statuses: Statuses,
        mut roles: Vec<RoleDef>,
        types: Vec<String>,
    ) -> Result<Catalog, Vec<CatalogError>> {
        let mut errors = Vec::new();
        if severities.is_empty() {
            errors.push(err(
                "severities",
                "list at least one severity, most severe first",
            ));
        }
        check_keys(
            "severities",
            severities.iter().map(|s| s.key.as_str()),
            &mut errors,
        );

        if statuses.list.is_empty() {
            errors.push(err("statuses", "list at least one status"));
        }
        check_keys(
            "statuses",
            statuses.list.iter().map(|s| s.key.as_str()),
            &mut errors,
        );
        let known: Vec<&str> = statuses.list.iter().map(|s| s.key.as_str()).collect();
        if !known
            .iter()
            .any(|k| k.eq_ignore_ascii_case(&statuses.initial))
        {
            errors.push(err(
                "statuses.initial",
                format!(
                    "`{}` is not one of the statuses ({})",
                    statuses.initial,
                    known.join(", ")
                ),
            ));
        }
        for (i, s) in statuses.list.iter().enumerate() {
            for n in &s.next {
                if !known.iter().any(|k| k.eq_ignore_ascii_case(n)) {
                    errors.push(err(
                        format!("statuses[{i}].next"),
                        format!(
                            "`{}` may move to `{n}`, which is not a status: use one of {}",
                            s.key,
                            known.join(", ")
                        ),
                    ));
                }
            }
        }
        if !statuses.list.iter().any(|s| s.phase == Phase::Resolved) {
            errors.push(err(
                "statuses",
                "no status has phase = \"resolved\": add one so incidents can be resolved",
            ));
        }

        if !roles.iter().any(|r| r.key.eq_ignore_ascii_case(LEAD_ROLE)) {
            roles.insert(0, Roles::default_list().remove(0));
        }
        check_keys("roles", roles.iter().map(|r| r.key.as_str()), &mut errors);
        for (i, t) in types.iter().enumerate() {
            if t.trim().is_empty() {
                errors.push(err(
                    format!("types[{i}]"),
                    "an incident type must not be empty",
                ));
            }
        }

        if errors.is_empty() {
            Ok(Catalog {
                severities: Severities(severities),
                statuses,
                roles: Roles(roles),
                types,
            })
        } else {
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_ordered() {
        let c = Catalog::default();
        let again = Catalog::new(
            c.severities.all().to_vec(),
            c.statuses.clone(),
            c.roles.all().to_vec(),
            vec![],
        )
        .unwrap();
        assert_eq!(again, c);
        assert!(c.severities.at_least("SEV1", "SEV2"));
        assert!(c.severities.at_least("sev2", "SEV2"));
        assert!(!c.severities.at_least("SEV3", "SEV2"));
        assert!(!c.severities.at_least("SEV9", "SEV2"));
        assert_eq!(c.severities.at_least_keys("SEV2"), vec!["SEV1", "SEV2"]);
        assert_eq!(c.roles.keys(), vec!["lead", "comms", "scribe"]);
    }

    #[test]
    fn reports_every_problem_with_its_key() {
        let statuses = Statuses {
            initial: "new".into(),
            list: vec![StatusDef {
                key: "open".into(),
                phase: Phase::Active,
                description: String::new(),
                next: vec!["gone".into()],
            }],
        };
        let errors = Catalog::new(
            vec![
                sev("SEV1", "a", ""),
                sev("sev1", "b", ""),
                sev("bad key", "c", ""),
            ],
            statuses,
            vec![],
            vec![],
        )
        .unwrap_err();
        let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            vec![
                "severities[1].key",
                "severities[2].key",
                "statuses.initial",
                "statuses[0].next",
                "statuses"
            ],
            "{errors:#?}"
        );
    }

    #[test]
    fn the_lead_role_is_always_there() {
        let c = Catalog::new(
            Severities::default_list(),
            Statuses::default_statuses(),
            vec![role("comms", "Comms", "", &[])],
            vec![],
        )
        .unwrap();
        assert_eq!(c.roles.keys(), vec!["lead", "comms"]);
    }
}
