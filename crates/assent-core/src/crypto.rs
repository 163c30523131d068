//! Hashes and keyed commitments. Pure functions over bytes; randomness is passed in.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// A SHA-256 digest.
pub type Hash32 = [u8; 32];

pub fn sha256(bytes: &[u8]) -> Hash32 {
    Sha256::digest(bytes).into()
}

/// RFC 9162 leaf hash: SHA-256(0x00 || entry bytes). The 0x00 prefix keeps leaves and interior
/// nodes in separate domains.
pub fn leaf_hash(entry_bytes: &[u8]) -> Hash32 {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(entry_bytes);
    h.finalize().into()
}

/// HMAC-SHA256 of `domain || message` under `key`: domain strings keep each use of a key apart.
pub fn hmac(key: &[u8; 32], domain: &[u8], message: &[u8]) -> Hash32 {
    // A 32-byte key is always a valid HMAC key, so this cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return [0; 32];
    };
    mac.update(domain);
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// The keyed pseudonym that stands for a subject in the ledger. The key is random per subject
/// and kept outside the log: destroying it leaves the pseudonym attributable to no one.
pub fn subject_pseudonym(subject_key: &[u8; 32], subject_id: &str) -> Hash32 {
    hmac(subject_key, b"assent/subject/v1\n", subject_id.as_bytes())
}

/// Commits to a piece of evidence (IP, user agent, ...) under the subject's key, so the
/// ledger binds the evidence without revealing it, and erasure makes it unguessable.
pub fn evidence_commitment(subject_key: &[u8; 32], evidence_bytes: &[u8]) -> Hash32 {
    hmac(subject_key, b"assent/evidence/v1\n", evidence_bytes)
}

/// Compares two MACs in time that does not depend on where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub fn to_hex(bytes: &[u8]) -> String {
    let digit = |n: u8| char::from_digit(u32::from(n), 16).unwrap_or('0');
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(digit(b >> 4));
        out.push(digit(b & 0x0f));
    }
    out
}

pub fn from_hex32(s: &str) -> Option<Hash32> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (slot, pair) in out.iter_mut().zip(s.as_bytes().chunks_exact(2)) {
        let hi = char::from(*pair.first()?).to_digit(16)?;
        let lo = char::from(*pair.get(1)?).to_digit(16)?;
        *slot = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaf_hash_matches_rfc6962_empty_leaf_vector() {
        // transparency-dev testonly: the leaf hash of the empty entry.
        assert_eq!(to_hex(&leaf_hash(b"")), "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
    }

    #[test]
    fn pseudonyms_differ_per_key_and_per_subject() {
        let a = subject_pseudonym(&[1; 32], "cust-1");
        assert_ne!(a, subject_pseudonym(&[2; 32], "cust-1"));
        assert_ne!(a, subject_pseudonym(&[1; 32], "cust-2"));
        assert_eq!(a, subject_pseudonym(&[1; 32], "cust-1"));
    }

    #[test]
    fn hex_round_trips() {
        let h = sha256(b"abc");
        assert_eq!(from_hex32(&to_hex(&h)), Some(h));
        assert_eq!(from_hex32("zz"), None);
    }
}
