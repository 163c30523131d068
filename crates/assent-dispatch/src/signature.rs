//! Standard Webhooks signatures (<https://www.standardwebhooks.com/>), so that a receiver can
//! check a delivery with any of the spec's libraries rather than code written for Assent.
//!
//! PROTOCOL CONTRACT, do not change: the signed content is `{webhook-id}.{webhook-timestamp}.{body}`
//! and the signature is `v1,` followed by the standard base64 of HMAC-SHA256 under the raw key.
//! The known-answer test below is the spec's own vector.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The prefix users see on a secret, as in every Standard Webhooks library.
const SECRET_PREFIX: &str = "whsec_";
/// The only signature scheme we emit and accept (`v1a` is the spec's asymmetric one).
const SCHEME: &str = "v1";
/// The spec recommends 24 to 64 bytes; fewer would weaken the MAC, more is pointless.
const MIN_KEY_LEN: usize = 24;
const MAX_KEY_LEN: usize = 64;
/// What `generate` draws: the full width of SHA-256.
const GENERATED_KEY_LEN: usize = 32;

/// Why a secret could not be parsed or generated.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("a webhook secret starts with `whsec_`")]
    MissingPrefix,
    #[error("a webhook secret is `whsec_` followed by standard base64")]
    NotBase64,
    #[error("a webhook secret holds {MIN_KEY_LEN} to {MAX_KEY_LEN} bytes, this one holds {0}")]
    BadLength(usize),
    #[error("the operating system's random number generator failed: {0}")]
    Random(String),
}

/// The raw key bytes a webhook endpoint shares with Assent.
// INVARIANT: MIN_KEY_LEN <= key.len() <= MAX_KEY_LEN, kept by `parse` and `generate`.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret {
    key: Vec<u8>,
}

impl WebhookSecret {
    /// A fresh 32-byte secret from the operating system's generator.
    pub fn generate() -> Result<Self, SecretError> {
        let mut key = vec![0u8; GENERATED_KEY_LEN];
        getrandom::fill(&mut key).map_err(|e| SecretError::Random(e.to_string()))?;
        Ok(Self { key })
    }

    /// Parses the `whsec_<base64>` form shown to users.
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let encoded = text.strip_prefix(SECRET_PREFIX).ok_or(SecretError::MissingPrefix)?;
        let key = STANDARD.decode(encoded).map_err(|_| SecretError::NotBase64)?;
        if !(MIN_KEY_LEN..=MAX_KEY_LEN).contains(&key.len()) {
            return Err(SecretError::BadLength(key.len()));
        }
        Ok(Self { key })
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes keys of any length (long ones are hashed first), so this never fails; the
        // fallback keeps the code panic-free without pretending to be reachable.
        Hmac::<Sha256>::new_from_slice(&self.key).unwrap_or_else(|_| Hmac::<Sha256>::new(&Default::default()))
    }
}

/// The `whsec_...` form, which is what the user copies into their receiver.
impl fmt::Display for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SECRET_PREFIX}{}", STANDARD.encode(&self.key))
    }
}

/// Redacted: secrets must not reach logs through `{:?}`.
impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

fn signed_mac(secret: &WebhookSecret, msg_id: &str, timestamp_secs: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = secret.mac();
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp_secs.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `webhook-signature` header value for one delivery: `v1,<base64>`.
pub fn sign(secret: &WebhookSecret, msg_id: &str, timestamp_secs: i64, body: &[u8]) -> String {
    let tag = signed_mac(secret, msg_id, timestamp_secs, body).finalize().into_bytes();
    format!("{SCHEME},{}", STANDARD.encode(tag))
}

/// Whether any signature in a `webhook-signature` header (space-separated, as the spec allows
/// during key rotation) is a valid `v1` signature of this delivery.
///
/// The comparison is constant-time. Timestamp freshness is the caller's policy, not checked here.
pub fn verify(secret: &WebhookSecret, msg_id: &str, timestamp_secs: i64, body: &[u8], header_value: &str) -> bool {
    header_value.split(' ').filter_map(|candidate| candidate.split_once(',')).any(|(scheme, encoded)| {
        if scheme != SCHEME {
            return false;
        }
        let Ok(tag) = STANDARD.decode(encoded) else {
            return false;
        };
        signed_mac(secret, msg_id, timestamp_secs, body).verify_slice(&tag).is_ok()
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    // The Standard Webhooks / Svix published vector.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const MSG_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TIMESTAMP: i64 = 1_614_265_330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const EXPECTED: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn secret() -> WebhookSecret {
        WebhookSecret::parse(SECRET).unwrap()
    }

    #[test]
    fn sign_matches_the_standard_webhooks_vector() {
        assert_eq!(sign(&secret(), MSG_ID, TIMESTAMP, BODY), EXPECTED);
    }

    #[test]
    fn verify_accepts_the_vector_alone_and_among_other_signatures() {
        assert!(verify(&secret(), MSG_ID, TIMESTAMP, BODY, EXPECTED));
        let rotated = format!("v1,Zm9vYmFy v1a,c29tZXRoaW5n {EXPECTED}");
        assert!(verify(&secret(), MSG_ID, TIMESTAMP, BODY, &rotated));
    }

    #[test]
    fn verify_rejects_a_tampered_body() {
        assert!(!verify(&secret(), MSG_ID, TIMESTAMP, br#"{"test": 2432232315}"#, EXPECTED));
    }

    #[test]
    fn verify_rejects_a_wrong_secret() {
        let other = WebhookSecret::generate().unwrap();
        assert!(!verify(&other, MSG_ID, TIMESTAMP, BODY, EXPECTED));
    }

    #[test]
    fn verify_rejects_a_wrong_timestamp_or_id() {
        assert!(!verify(&secret(), MSG_ID, TIMESTAMP + 1, BODY, EXPECTED));
        assert!(!verify(&secret(), "msg_other", TIMESTAMP, BODY, EXPECTED));
    }

    #[test]
    fn verify_rejects_malformed_headers_and_other_schemes() {
        let bare = EXPECTED.trim_start_matches("v1,");
        for header in ["", " ", "v1,", "v1,!!!", bare, &format!("v2,{bare}"), &format!("v1a,{bare}")] {
            assert!(!verify(&secret(), MSG_ID, TIMESTAMP, BODY, header), "{header:?}");
        }
    }

    #[test]
    fn secret_round_trips_through_its_text_form() {
        assert_eq!(secret().to_string(), SECRET);
        let fresh = WebhookSecret::generate().unwrap();
        assert_eq!(WebhookSecret::parse(&fresh.to_string()).unwrap(), fresh);
        assert_ne!(WebhookSecret::generate().unwrap(), fresh);
    }

    #[test]
    fn parse_rejects_malformed_secrets() {
        assert_eq!(WebhookSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), Err(SecretError::MissingPrefix));
        assert_eq!(WebhookSecret::parse("whsec_not base64!"), Err(SecretError::NotBase64));
        assert_eq!(WebhookSecret::parse("whsec_c2hvcnQ="), Err(SecretError::BadLength(5)));
    }

    #[test]
    fn debug_does_not_print_the_key() {
        let shown = format!("{:?}", secret());
        assert_eq!(shown, "WebhookSecret(<redacted>)");
        assert!(!shown.contains("MfKQ"));
    }
}
