//! Time as Klaxon stores it: UTC with millisecond precision, so that a value survives a round
//! trip through either database and through JSON unchanged.

use chrono::{DateTime, TimeZone, Utc};

pub type Timestamp = DateTime<Utc>;

/// The current time, truncated to whole milliseconds.
pub fn now() -> Timestamp {
    from_millis(Utc::now().timestamp_millis())
}

pub fn to_millis(t: Timestamp) -> i64 {
    t.timestamp_millis()
}

/// Milliseconds since the Unix epoch; values outside chrono's range clamp to its bounds.
pub fn from_millis(ms: i64) -> Timestamp {
    Utc.timestamp_millis_opt(ms).single().unwrap_or(if ms < 0 {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    })
}
