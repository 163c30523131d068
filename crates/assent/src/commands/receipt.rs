//! `assent receipt verify`: needs no data directory, only the receipt and the public key.

use std::path::Path;

use assent_core::note::Verifier;

pub fn verify(file: &Path, public_key: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read `{}`: {e}", file.display()))?;
    let token = match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(v) => v
            .get("receipt")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
            .ok_or("the JSON file has no `receipt` field")?,
        Err(_) => text.trim().to_owned(),
    };
    let verifier = verifier(public_key)?;
    let verified = assent_core::receipt::verify(&token, &verifier).map_err(|e| format!("invalid receipt: {e}"))?;
    println!("{verified}");
    Ok(())
}

/// The key may be given inline or as a file holding it.
fn verifier(public_key: &str) -> Result<Verifier, String> {
    let key_text = if Path::new(public_key).is_file() {
        std::fs::read_to_string(public_key).map_err(|e| format!("cannot read `{public_key}`: {e}"))?
    } else {
        public_key.to_owned()
    };
    Verifier::parse(key_text.trim()).map_err(|e| format!("public key: {e}"))
}

/// `assent checkpoint verify`: the note's signature, then its contents.
pub fn verify_checkpoint(file: &Path, public_key: &str) -> Result<(), String> {
    let note = std::fs::read_to_string(file).map_err(|e| format!("cannot read `{}`: {e}", file.display()))?;
    let checkpoint = assent_core::note::Checkpoint::open(&note, &verifier(public_key)?)
        .map_err(|e| format!("invalid checkpoint: {e}"))?;
    println!(
        "valid: {} has {} entries, root {}",
        checkpoint.origin,
        checkpoint.size,
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, checkpoint.root)
    );
    Ok(())
}
