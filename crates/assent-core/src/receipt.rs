//! Offline receipt verification: everything a customer (or their tool) needs to check a
//! receipt with nothing but the controller's public key.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use crate::crypto::{from_hex32, leaf_hash, to_hex};
use crate::encoding::decode;
use crate::event::LedgerEntry;
use crate::merkle::verify_inclusion;
use crate::note::{Checkpoint, Verifier};

/// The step at which a receipt failed, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{step}: {reason}")]
pub struct ReceiptError {
    pub step: &'static str,
    pub reason: String,
}

/// A field of a JSON object, or null.
fn at<'a>(v: &'a serde_json::Value, key: &str) -> &'a serde_json::Value {
    v.get(key).unwrap_or(&serde_json::Value::Null)
}

fn fail(step: &'static str, reason: impl Into<String>) -> ReceiptError {
    ReceiptError { step, reason: reason.into() }
}

/// What a valid receipt proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedReceipt {
    pub subject: String,
    pub action: String,
    pub purpose: String,
    pub version: Option<u32>,
    pub recorded_at: String,
    pub leaf_index: u64,
    pub origin: String,
    pub tree_size: u64,
}

impl std::fmt::Display for VerifiedReceipt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let version = self.version.map(|v| format!(" (notice v{v})")).unwrap_or_default();
        write!(
            f,
            "valid: {} of `{}`{version} by `{}` at {}, entry {} of log {} (checkpoint size {})",
            self.action, self.purpose, self.subject, self.recorded_at, self.leaf_index, self.origin, self.tree_size
        )
    }
}

/// Checks, in order: the JWS signature, the entry's leaf hash, the checkpoint's signature, and
/// the inclusion proof of the leaf in the checkpoint.
pub fn verify(token: &str, verifier: &Verifier) -> Result<VerifiedReceipt, ReceiptError> {
    let payload = crate::jws::verify(token, &verifier.key).map_err(|e| fail("signature", e.to_string()))?;
    let payload: serde_json::Value =
        serde_json::from_slice(&payload).map_err(|e| fail("payload", format!("not JSON: {e}")))?;
    let a = at(&payload, "assent");
    let text = |v: &serde_json::Value, name: &'static str| {
        v.as_str().map(str::to_owned).ok_or_else(|| fail("payload", format!("`{name}` is missing")))
    };
    let number = |v: &serde_json::Value, name: &'static str| {
        v.as_u64().ok_or_else(|| fail("payload", format!("`{name}` is missing")))
    };
    let entry = B64
        .decode(text(at(a, "entry"), "assent.entry")?)
        .map_err(|_| fail("payload", "`assent.entry` is not base64"))?;
    let claimed = from_hex32(&text(at(a, "leaf_hash"), "assent.leaf_hash")?)
        .ok_or_else(|| fail("payload", "`assent.leaf_hash` is not 64 hex digits"))?;
    let leaf = leaf_hash(&entry);
    if leaf != claimed {
        return Err(fail("leaf hash", format!("the entry hashes to {}, not {}", to_hex(&leaf), to_hex(&claimed))));
    }
    let event = match decode(&entry) {
        Ok(LedgerEntry::Consent(e)) => e,
        Ok(_) => return Err(fail("entry", "not a consent event")),
        Err(e) => return Err(fail("entry", e.to_string())),
    };
    if text(at(a, "action"), "assent.action")? != event.action.as_str()
        || text(at(a, "purpose"), "assent.purpose")? != event.purpose.as_str()
    {
        return Err(fail("entry", "the receipt's action or purpose differs from the ledger entry"));
    }
    let checkpoint = Checkpoint::open(&text(at(a, "checkpoint"), "assent.checkpoint")?, verifier)
        .map_err(|e| fail("checkpoint signature", e.to_string()))?;
    let index = number(at(a, "leaf_index"), "assent.leaf_index")?;
    if number(at(a, "tree_size"), "assent.tree_size")? != checkpoint.size {
        return Err(fail("inclusion proof", "the tree size differs from the checkpoint's"));
    }
    let proof = at(a, "inclusion_proof")
        .as_array()
        .ok_or_else(|| fail("payload", "`assent.inclusion_proof` is missing"))?
        .iter()
        .map(|h| h.as_str().and_then(|s| B64.decode(s).ok()).and_then(|b| b.try_into().ok()))
        .collect::<Option<Vec<[u8; 32]>>>()
        .ok_or_else(|| fail("inclusion proof", "hashes must be 32 bytes of base64"))?;
    verify_inclusion(index, checkpoint.size, &leaf, &proof, &checkpoint.root)
        .map_err(|e| fail("inclusion proof", e.to_string()))?;
    Ok(VerifiedReceipt {
        subject: text(at(&payload, "piiPrincipalId"), "piiPrincipalId")?,
        action: event.action.as_str().to_owned(),
        purpose: event.purpose.to_string(),
        version: event.version,
        recorded_at: event.recorded_at.to_string(),
        leaf_index: index,
        origin: checkpoint.origin,
        tree_size: checkpoint.size,
    })
}
