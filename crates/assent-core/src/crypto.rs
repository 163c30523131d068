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

/// The value of each lowercase hex digit; 0xff for every other byte.
#[allow(clippy::indexing_slicing)] // Const evaluation: an out-of-range index fails the build.
const LOWER_HEX_VALUE: [u8; 256] = {
    let mut table = [0xff; 256];
    let mut i = 0;
    while i < 16 {
        let digit = if i < 10 { b'0' + i } else { b'a' + i - 10 };
        table[digit as usize] = i;
        i += 1;
    }
    table
};

/// Exactly 64 lowercase hex digits, as the ledger writes them, read without branching per digit.
pub fn from_lower_hex32(s: &[u8]) -> Option<Hash32> {
    if s.len() != 64 {
        return None;
    }
    let value = |b: u8| LOWER_HEX_VALUE.get(usize::from(b)).copied().unwrap_or(0xff);
    let mut out = [0u8; 32];
    let mut invalid = 0u8;
    for (slot, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        if let [hi, lo] = pair {
            let (hi, lo) = (value(*hi), value(*lo));
            invalid |= (hi | lo) & 0xf0;
            *slot = hi << 4 | (lo & 0x0f);
        }
    }
    (invalid == 0).then_some(out)
}

pub fn from_hex32(s: &str) -> Option<Hash32> {
    if s.len() != 64 {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let mut out = [0u8; 32];
    for (slot, pair) in out.iter_mut().zip(s.as_bytes().chunks_exact(2)) {
        if let [hi, lo] = pair {
            *slot = digit(*hi)? << 4 | digit(*lo)?;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower_hex_reads_only_lowercase_digits() {
        let hash = sha256(b"x");
        assert_eq!(from_lower_hex32(to_hex(&hash).as_bytes()), Some(hash));
        assert_eq!(from_lower_hex32(to_hex(&hash).to_uppercase().as_bytes()), None);
        for bad in ["g", "G", " ", "/", ":", "`", "\u{ff}"] {
            let text = format!("{}{bad}", "0".repeat(63));
            assert_eq!(from_lower_hex32(text.as_bytes()), None, "{bad}");
        }
        assert_eq!(from_lower_hex32(&[b'0'; 62]), None);
    }

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
