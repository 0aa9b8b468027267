//! Slack's request signing: `v0=` + hex HMAC-SHA256(signing secret, `v0:{timestamp}:{body}`),
//! compared in constant time, with timestamps more than five minutes off refused (a replayed
//! request is stale by then).

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const MAX_SKEW_SECONDS: i64 = 300;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the request has no X-Slack-Signature or X-Slack-Request-Timestamp header")]
    Missing,
    #[error("the request timestamp is {0} seconds from now: more than 5 minutes, so it is refused as a possible replay")]
    Stale(i64),
    #[error("the signature does not match: check [slack] signing_secret")]
    Mismatch,
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

pub fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("v0={hex}")
}

/// Checks a request; `now` is seconds since the epoch.
pub fn verify(
    secret: &str,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), SignatureError> {
    let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
        return Err(SignatureError::Missing);
    };
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::Mismatch)?;
    if (now - ts).abs() > MAX_SKEW_SECONDS {
        return Err(SignatureError::Stale(now - ts));
    }
    let given = signature
        .strip_prefix("v0=")
        .and_then(unhex)
        .ok_or(SignatureError::Mismatch)?;
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(b"v0:");
    mac.update(timestamp.trim().as_bytes());
    mac.update(b":");
    mac.update(body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&given)
        .map_err(|_| SignatureError::Mismatch)
}
