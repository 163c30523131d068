//! Each controller's Ed25519 ledger key: it signs checkpoints and receipts.
//!
//! The private key lives in a file of its own (`<dir>/<controller>.ed25519`, mode 0600), never in
//! the database, so a database copy or backup cannot forge checkpoints. The file also records
//! the log's origin, which is the key's name in every note it signs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use assent_core::ControllerId;
use assent_core::note::verifier_key;
use ed25519_dalek::SigningKey;

use crate::memory::{read, write};
use crate::{ServiceError, ServiceResult, random_bytes};

/// One controller's log key.
pub struct LogKey {
    /// The log's origin, such as `assent.local/demo`; also the key name.
    pub origin: String,
    signing: SigningKey,
    /// The C2SP verifier key (`origin+keyid+base64`), published for auditors.
    pub verifier: String,
}

impl std::fmt::Debug for LogKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogKey").field("verifier", &self.verifier).finish_non_exhaustive()
    }
}

impl LogKey {
    pub fn signing_key(&self) -> &SigningKey {
        &self.signing
    }

    /// A MAC key for `purpose` derived from this key, so links and sessions need no second
    /// secret to manage, yet can never be confused with signatures.
    pub fn mac_key(&self, purpose: &str) -> [u8; 32] {
        assent_core::crypto::hmac(&self.signing.to_bytes(), b"assent/derive/v1\n", purpose.as_bytes())
    }

    fn from_parts(origin: String, seed: [u8; 32]) -> Self {
        let signing = SigningKey::from_bytes(&seed);
        let verifier = verifier_key(&origin, &signing.verifying_key());
        Self { origin, signing, verifier }
    }
}

/// The directory of key files, with the keys loaded so far.
#[derive(Debug)]
pub struct KeyRing {
    dir: PathBuf,
    origin_prefix: String,
    loaded: RwLock<HashMap<ControllerId, Arc<LogKey>>>,
}

fn key_error(path: &Path, what: &str, e: impl std::fmt::Display) -> ServiceError {
    ServiceError::Store(assent_store::StoreError::Backend(format!("{what} `{}`: {e}", path.display()).into()))
}

impl KeyRing {
    /// Keys in `dir`; new logs are named `<origin_prefix>/<controller>`.
    pub fn new(dir: impl Into<PathBuf>, origin_prefix: impl Into<String>) -> Self {
        Self { dir: dir.into(), origin_prefix: origin_prefix.into(), loaded: RwLock::new(HashMap::new()) }
    }

    pub fn path(&self, controller: &ControllerId) -> PathBuf {
        self.dir.join(format!("{controller}.ed25519"))
    }

    /// The controller's key, created on first use.
    pub fn key(&self, controller: &ControllerId) -> ServiceResult<Arc<LogKey>> {
        if let Some(key) = read(&self.loaded).get(controller) {
            return Ok(Arc::clone(key));
        }
        let path = self.path(controller);
        let key = match std::fs::read_to_string(&path) {
            Ok(text) => Self::parse(&path, &text)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => self.create(controller, &path)?,
            Err(e) => return Err(key_error(&path, "cannot read ledger key", e)),
        };
        let key = Arc::new(key);
        write(&self.loaded).insert(controller.clone(), Arc::clone(&key));
        Ok(key)
    }

    /// The controller's key if its file exists; never creates one (for auditing).
    pub fn existing(&self, controller: &ControllerId) -> ServiceResult<Option<LogKey>> {
        let path = self.path(controller);
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::parse(&path, &text).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(key_error(&path, "cannot read ledger key", e)),
        }
    }

    fn parse(path: &Path, text: &str) -> ServiceResult<LogKey> {
        let mut lines = text.lines();
        let (Some(origin), Some(seed_hex)) = (lines.next(), lines.next()) else {
            return Err(key_error(path, "malformed ledger key", "expected an origin line and a hex seed line"));
        };
        let seed = assent_core::crypto::from_hex32(seed_hex.trim())
            .ok_or_else(|| key_error(path, "malformed ledger key", "the seed is not 64 hex digits"))?;
        Ok(LogKey::from_parts(origin.trim().to_owned(), seed))
    }

    fn create(&self, controller: &ControllerId, path: &Path) -> ServiceResult<LogKey> {
        std::fs::create_dir_all(&self.dir).map_err(|e| key_error(&self.dir, "cannot create key directory", e))?;
        #[cfg(unix)]
        std::fs::set_permissions(&self.dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .map_err(|e| key_error(&self.dir, "cannot restrict key directory", e))?;
        let seed: [u8; 32] = random_bytes()?;
        let origin = format!("{}/{controller}", self.origin_prefix);
        // Write the key to a private temporary file, sync it, then link it into place: the key file
        // either does not exist or is complete, and a concurrent creator's key wins cleanly.
        let text = format!("{origin}\n{}\n", assent_core::crypto::to_hex(&seed));
        let temporary =
            self.dir.join(format!(".{controller}.{}.tmp", assent_core::crypto::to_hex(&random_bytes::<8>()?)));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&temporary).map_err(|e| key_error(&temporary, "cannot create ledger key", e))?;
        let written = std::io::Write::write_all(&mut file, text.as_bytes()).and_then(|()| file.sync_all());
        let linked = written.and_then(|()| std::fs::hard_link(&temporary, path));
        let _ = std::fs::remove_file(&temporary);
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let text = std::fs::read_to_string(path).map_err(|e| key_error(path, "cannot read ledger key", e))?;
                return Self::parse(path, &text);
            }
            Err(e) => return Err(key_error(path, "cannot create ledger key", e)),
        }
        Ok(LogKey::from_parts(origin, seed))
    }
}
