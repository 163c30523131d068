//! Compact JWS (RFC 7515) with EdDSA (RFC 8037), for receipts a customer can verify offline.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwsError {
    #[error("not a compact JWS (three base64url parts)")]
    Malformed,
    #[error("the JWS header is not EdDSA")]
    WrongAlgorithm,
    #[error("the signature does not verify with this key")]
    BadSignature,
}

/// Signs `payload` (JSON bytes) with `key`; `kid` names the key (Assent uses the C2SP
/// verifier key, so one string identifies the key for checkpoints and receipts alike).
pub fn sign(payload: &[u8], key: &SigningKey, kid: &str) -> String {
    let header = serde_json::json!({"alg": "EdDSA", "typ": "JWT", "kid": kid});
    let signing_input = format!("{}.{}", B64URL.encode(header.to_string()), B64URL.encode(payload));
    let signature = key.sign(signing_input.as_bytes());
    format!("{signing_input}.{}", B64URL.encode(signature.to_bytes()))
}

/// Verifies a compact JWS and returns its payload bytes.
pub fn verify(token: &str, key: &VerifyingKey) -> Result<Vec<u8>, JwsError> {
    let mut parts = token.trim().split('.');
    let (Some(header), Some(payload), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwsError::Malformed);
    };
    let header_json: serde_json::Value =
        B64URL.decode(header).ok().and_then(|h| serde_json::from_slice(&h).ok()).ok_or(JwsError::Malformed)?;
    if header_json.get("alg").and_then(|a| a.as_str()) != Some("EdDSA") {
        return Err(JwsError::WrongAlgorithm);
    }
    let signature = B64URL.decode(signature).map_err(|_| JwsError::Malformed)?;
    let signature = Signature::from_slice(&signature).map_err(|_| JwsError::Malformed)?;
    let signing_input = format!("{header}.{payload}");
    key.verify_strict(signing_input.as_bytes(), &signature).map_err(|_| JwsError::BadSignature)?;
    B64URL.decode(payload).map_err(|_| JwsError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_payloads_verify_and_tampering_is_caught() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let token = sign(br#"{"a":1}"#, &key, "k");
        assert_eq!(verify(&token, &key.verifying_key()).unwrap(), br#"{"a":1}"#);
        let other = SigningKey::from_bytes(&[4; 32]);
        assert_eq!(verify(&token, &other.verifying_key()), Err(JwsError::BadSignature));
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = B64URL.encode(br#"{"a":2}"#);
        parts[1] = &forged;
        assert_eq!(verify(&parts.join("."), &key.verifying_key()), Err(JwsError::BadSignature));
        assert_eq!(verify("a.b", &key.verifying_key()), Err(JwsError::Malformed));
    }
}
