//! C2SP signed notes and tlog checkpoints, with Ed25519 keys.
//!
//! PROTOCOL CONTRACT: the formats are C2SP `signed-note` and `tlog-checkpoint`, so any tool
//! that reads those (Go's `sumdb/note`, transparency-dev witnesses) verifies Assent's
//! checkpoints with nothing but the verifier key.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use crate::crypto::{Hash32, sha256};

const ED25519: u8 = 0x01;
const EM_DASH: &str = "\u{2014}";

/// Why a note, key or checkpoint was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("malformed verifier key: {0}")]
    BadKey(&'static str),
    #[error("malformed note: {0}")]
    Malformed(&'static str),
    #[error("no signature by key `{0}` verifies this note")]
    NotSigned(String),
    #[error("malformed checkpoint: {0}")]
    BadCheckpoint(&'static str),
}

/// `SHA-256(name || 0x0A || 0x01 || public key)[:4]`.
pub fn key_id(name: &str, key: &VerifyingKey) -> [u8; 4] {
    let mut material = Vec::with_capacity(name.len() + 34);
    material.extend_from_slice(name.as_bytes());
    material.push(b'\n');
    material.push(ED25519);
    material.extend_from_slice(key.as_bytes());
    let h = sha256(&material);
    [h[0], h[1], h[2], h[3]]
}

/// The C2SP verifier key: `name+hex(key id)+base64(0x01 || public key)`.
pub fn verifier_key(name: &str, key: &VerifyingKey) -> String {
    let mut typed = vec![ED25519];
    typed.extend_from_slice(key.as_bytes());
    format!("{name}+{}+{}", crate::crypto::to_hex(&key_id(name, key)), B64.encode(typed))
}

/// A parsed verifier key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verifier {
    pub name: String,
    pub id: [u8; 4],
    pub key: VerifyingKey,
}

impl Verifier {
    pub fn parse(vkey: &str) -> Result<Self, NoteError> {
        let mut parts = vkey.trim().splitn(3, '+');
        let (Some(name), Some(id_hex), Some(key_b64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(NoteError::BadKey("expected name+keyid+key"));
        };
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(NoteError::BadKey("bad key name"));
        }
        let typed = B64.decode(key_b64).map_err(|_| NoteError::BadKey("key is not base64"))?;
        let (Some(&ED25519), Some(raw)) = (typed.first(), typed.get(1..)) else {
            return Err(NoteError::BadKey("not an Ed25519 key"));
        };
        let raw: [u8; 32] = raw.try_into().map_err(|_| NoteError::BadKey("Ed25519 keys are 32 bytes"))?;
        let key = VerifyingKey::from_bytes(&raw).map_err(|_| NoteError::BadKey("not a valid Ed25519 point"))?;
        let id = key_id(name, &key);
        if crate::crypto::to_hex(&id) != id_hex {
            return Err(NoteError::BadKey("key id does not match the key"));
        }
        Ok(Self { name: name.to_owned(), id, key })
    }

    /// Returns the note's text when a signature by this key verifies it. Signatures by other
    /// keys are ignored, as the spec requires.
    pub fn open<'a>(&self, note: &'a str) -> Result<&'a str, NoteError> {
        let split = note.rfind("\n\n").ok_or(NoteError::Malformed("no blank line before the signatures"))?;
        let (text, signatures) = (&note[..=split], &note[split + 2..]);
        if text.chars().any(|c| c.is_control() && c != '\n') {
            return Err(NoteError::Malformed("control characters in the text"));
        }
        if !signatures.ends_with('\n') {
            return Err(NoteError::Malformed("signature lines must end with a newline"));
        }
        for line in signatures.lines() {
            let Some(rest) = line.strip_prefix(EM_DASH).and_then(|r| r.strip_prefix(' ')) else {
                return Err(NoteError::Malformed("signature line does not start with an em dash"));
            };
            let Some((name, sig_b64)) = rest.split_once(' ') else {
                return Err(NoteError::Malformed("signature line lacks a signature"));
            };
            if name != self.name {
                continue;
            }
            let Ok(blob) = B64.decode(sig_b64) else { continue };
            let (Some(id), Some(sig)) = (blob.get(..4), blob.get(4..)) else { continue };
            if id != self.id {
                continue;
            }
            let Ok(sig) = Signature::from_slice(sig) else { continue };
            if self.key.verify_strict(text.as_bytes(), &sig).is_ok() {
                return Ok(text);
            }
            return Err(NoteError::NotSigned(self.name.clone()));
        }
        Err(NoteError::NotSigned(self.name.clone()))
    }
}

/// Signs `text` (which must end with a newline) as a note named `name`.
pub fn sign_note(text: &str, name: &str, key: &SigningKey) -> String {
    let signature = key.sign(text.as_bytes());
    let mut blob = key_id(name, &key.verifying_key()).to_vec();
    blob.extend_from_slice(&signature.to_bytes());
    format!("{text}\n{EM_DASH} {name} {}\n", B64.encode(blob))
}

/// A tlog checkpoint: the log's identity, size and root hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash32,
}

impl Checkpoint {
    /// `origin\nsize\nbase64(root)\n`.
    pub fn body(&self) -> String {
        format!("{}\n{}\n{}\n", self.origin, self.size, B64.encode(self.root))
    }

    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let mut lines = text.split_terminator('\n');
        let origin = lines.next().filter(|o| !o.is_empty()).ok_or(NoteError::BadCheckpoint("no origin line"))?;
        let size_text = lines.next().ok_or(NoteError::BadCheckpoint("no size line"))?;
        if size_text.len() > 1 && size_text.starts_with('0') {
            return Err(NoteError::BadCheckpoint("size has leading zeros"));
        }
        let size = size_text.parse().map_err(|_| NoteError::BadCheckpoint("size is not a number"))?;
        let root_b64 = lines.next().ok_or(NoteError::BadCheckpoint("no root line"))?;
        let root: Hash32 = B64
            .decode(root_b64)
            .ok()
            .and_then(|r| r.try_into().ok())
            .ok_or(NoteError::BadCheckpoint("root is not 32 bytes of base64"))?;
        Ok(Self { origin: origin.to_owned(), size, root })
    }

    /// Signs this checkpoint as a note under the origin's name.
    pub fn sign(&self, key: &SigningKey) -> String {
        sign_note(&self.body(), &self.origin, key)
    }

    /// Verifies a signed checkpoint note and returns the checkpoint.
    pub fn open(note: &str, verifier: &Verifier) -> Result<Self, NoteError> {
        let checkpoint = Self::parse(verifier.open(note)?)?;
        if checkpoint.origin != verifier.name {
            return Err(NoteError::BadCheckpoint("origin differs from the key name"));
        }
        Ok(checkpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC_VKEY: &str = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";
    const SPEC_NOTE: &str = "This is an example message.\n\n\u{2014} example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n";

    #[test]
    fn the_c2sp_signed_note_vector_verifies() {
        let verifier = Verifier::parse(SPEC_VKEY).unwrap();
        assert_eq!(verifier.open(SPEC_NOTE).unwrap(), "This is an example message.\n");
        assert_eq!(verifier_key(&verifier.name, &verifier.key), SPEC_VKEY);
        let tampered = SPEC_NOTE.replace("example message", "exemplary message");
        assert!(verifier.open(&tampered).is_err());
    }

    #[test]
    fn checkpoints_round_trip_and_reject_other_keys() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let checkpoint = Checkpoint { origin: "assent.example/demo".into(), size: 42, root: [9; 32] };
        let note = checkpoint.sign(&key);
        let verifier = Verifier::parse(&verifier_key("assent.example/demo", &key.verifying_key())).unwrap();
        assert_eq!(Checkpoint::open(&note, &verifier).unwrap(), checkpoint);
        let other = SigningKey::from_bytes(&[8; 32]);
        let stranger = Verifier::parse(&verifier_key("assent.example/demo", &other.verifying_key())).unwrap();
        assert!(Checkpoint::open(&note, &stranger).is_err());
        let replaced = note.replace("\n42\n", "\n43\n");
        assert!(Checkpoint::open(&replaced, &verifier).is_err());
        assert!(Checkpoint::parse("origin\n042\nAAAA\n").is_err());
    }
}
