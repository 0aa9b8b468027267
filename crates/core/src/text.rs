//! Validated text values. A `Title` that exists is valid: trimmed, not empty, at most
//! [`TITLE_MAX_CHARS`] characters, one line.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::CommandError;

pub const TITLE_MAX_CHARS: usize = 200;
/// Summaries, impact statements, notes and chat messages: generous, but bounded so that one
/// request cannot store megabytes of text.
pub(crate) const LONG_TEXT_MAX_CHARS: usize = 20_000;
pub(crate) const NAME_MAX_CHARS: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Title(String);

impl Title {
    pub fn parse(s: &str) -> Result<Self, CommandError> {
        let t = s.trim();
        if t.is_empty() {
            return Err(CommandError::EmptyTitle);
        }
        let len = t.chars().count();
        if len > TITLE_MAX_CHARS {
            return Err(CommandError::TooLong {
                field: "title",
                len,
                max: TITLE_MAX_CHARS,
            });
        }
        if t.chars().any(char::is_control) {
            return Err(CommandError::InvalidText {
                field: "title",
                reason: "a title is one line: remove line breaks and control characters",
            });
        }
        Ok(Self(t.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Title {
    type Error = CommandError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Title::parse(&s)
    }
}

impl From<Title> for String {
    fn from(t: Title) -> String {
        t.0
    }
}

impl fmt::Display for Title {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Multi-line free text (summary, impact, note): trimmed and bounded; may be empty where the
/// field allows it.
pub(crate) fn long_text(field: &'static str, s: &str) -> Result<String, CommandError> {
    let t = s.trim();
    let len = t.chars().count();
    if len > LONG_TEXT_MAX_CHARS {
        return Err(CommandError::TooLong {
            field,
            len,
            max: LONG_TEXT_MAX_CHARS,
        });
    }
    if t.chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
    {
        return Err(CommandError::InvalidText {
            field,
            reason: "remove control characters other than line breaks and tabs",
        });
    }
    Ok(t.to_string())
}

/// A short one-line name (a service, a label value, an incident type).
pub(crate) fn short_name(field: &'static str, s: &str) -> Result<String, CommandError> {
    let t = s.trim();
    if t.is_empty() {
        return Err(CommandError::InvalidText {
            field,
            reason: "it must not be empty",
        });
    }
    let len = t.chars().count();
    if len > NAME_MAX_CHARS {
        return Err(CommandError::TooLong {
            field,
            len,
            max: NAME_MAX_CHARS,
        });
    }
    if t.chars().any(char::is_control) {
        return Err(CommandError::InvalidText {
            field,
            reason: "it is one line: remove line breaks and control characters",
        });
    }
    Ok(t.to_string())
}

/// A label key: lowercase letters, digits, `_`, `-` and `.`, so that it can be used in a
/// filter (`label=team:payments`) and a URL without quoting.
pub(crate) fn label_key(s: &str) -> Result<String, CommandError> {
    let t = s.trim();
    let ok = !t.is_empty()
        && t.len() <= 64
        && t.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.".contains(&b));
    if ok {
        Ok(t.to_string())
    } else {
        Err(CommandError::InvalidLabelKey { key: s.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn title_rules() {
        assert_eq!(
            Title::parse("  Checkout is down ").unwrap().as_str(),
            "Checkout is down"
        );
        assert_eq!(Title::parse("   "), Err(CommandError::EmptyTitle));
        assert!(Title::parse(&"é".repeat(200)).is_ok());
        assert!(matches!(
            Title::parse(&"x".repeat(201)),
            Err(CommandError::TooLong {
                field: "title",
                len: 201,
                max: 200
            })
        ));
        assert!(matches!(
            Title::parse("two\nlines"),
            Err(CommandError::InvalidText { .. })
        ));
        assert!(serde_json::from_str::<Title>("\"\"").is_err());
    }

    #[test]
    fn label_keys() {
        assert!(label_key("team").is_ok());
        assert!(label_key("cost-centre.eu_1").is_ok());
        for bad in ["", "Team", "a b", "ключ", &"k".repeat(65)] {
            assert!(label_key(bad).is_err(), "{bad}");
        }
    }
}
