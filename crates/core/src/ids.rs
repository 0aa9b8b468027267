use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An incident's short reference, `INC-42`. The number is unique per installation and is
/// the incident's key everywhere (storage, URLs, chat).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IncidentRef(u64);

impl IncidentRef {
    pub fn new(number: u64) -> Option<Self> {
        (number > 0).then_some(Self(number))
    }

    pub fn number(self) -> u64 {
        self.0
    }
}

impl fmt::Display for IncidentRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "INC-{}", self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an incident reference: write it as INC-42 (or just 42)")]
pub struct ParseRefError(pub String);

impl FromStr for IncidentRef {
    type Err = ParseRefError;

    /// Accepts `INC-42`, `inc-42` and `42`, since people type all three.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let digits = match t.get(..4) {
            Some(p) if p.eq_ignore_ascii_case("inc-") => &t[4..],
            _ => t,
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseRefError(s.to_string()));
        }
        digits
            .parse::<u64>()
            .ok()
            .and_then(IncidentRef::new)
            .ok_or_else(|| ParseRefError(s.to_string()))
    }
}

impl Serialize for IncidentRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IncidentRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A person known to Klaxon, the same across the web UI, chat and paging.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PersonId(pub i64);

impl fmt::Display for PersonId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_people_type() {
        for s in ["INC-42", "inc-42", "42", " INC-42 "] {
            assert_eq!(s.parse::<IncidentRef>().unwrap().number(), 42, "{s}");
        }
        for s in ["", "INC-", "INC-0", "INC-4x", "SEV-1", "-3", "INC--3"] {
            assert!(s.parse::<IncidentRef>().is_err(), "{s}");
        }
        assert_eq!(IncidentRef::new(7).unwrap().to_string(), "INC-7");
    }

    #[test]
    fn serializes_as_the_reference() {
        let r = IncidentRef::new(9).unwrap();
        assert_eq!(serde_json::to_string(&r).unwrap(), "\"INC-9\"");
        assert_eq!(serde_json::from_str::<IncidentRef>("\"INC-9\"").unwrap(), r);
    }
}
