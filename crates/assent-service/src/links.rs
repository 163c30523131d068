//! Signed, single-use links into the preference center, and the sessions they open.
//!
//! A link carries `controller, subject, expiry, nonce` and a MAC under a key derived from the
//! controller's ledger key. Opening it once (the nonce is recorded) starts a session: a cookie
//! carrying `subject, expiry` and its own MAC. Nothing about the customer is stored for a link.

use assent_core::crypto::{constant_time_eq, hmac, to_hex};
use assent_core::{ControllerId, SubjectId, Timestamp};
use assent_store::{Scope, Store};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;

use crate::{Assent, Principal, ServiceError, ServiceResult, random_bytes};

/// Links live 15 minutes unless asked otherwise, and at most a day.
pub const DEFAULT_LINK_SECONDS: u64 = 900;
pub const MAX_LINK_SECONDS: u64 = 86_400;
/// A session opened by a link lasts an hour.
pub const SESSION_SECONDS: i64 = 3600;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LinkOut {
    pub url: String,
    pub expires_at: Timestamp,
}

/// Why a link did not open. Each gets its own friendly page; none reveals anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkError {
    Invalid,
    Expired,
    Used,
}

/// A customer signed in through a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub controller: ControllerId,
    pub subject: SubjectId,
    pub expires_at: Timestamp,
}

fn b64(s: &str) -> String {
    B64URL.encode(s.as_bytes())
}

fn unb64(s: &str) -> Option<String> {
    B64URL.decode(s).ok().and_then(|b| String::from_utf8(b).ok())
}

impl<S: Store> Assent<S> {
    /// Encrypts a subject id for a link or cookie: XOR with an HMAC-SHA256 keystream under a
    /// derived key and the token's unique nonce (the token's MAC then covers the result). Links
    /// travel through mail scanners, proxies and browser history: the id must not be readable.
    fn seal(&self, controller: &ControllerId, nonce: &str, plain: &[u8]) -> ServiceResult<Vec<u8>> {
        let key = self.ledger_key(controller)?.mac_key("seal");
        Ok(plain
            .chunks(32)
            .zip(0u32..)
            .flat_map(|(chunk, block)| {
                let stream = hmac(&key, nonce.as_bytes(), &block.to_be_bytes());
                chunk.iter().zip(stream).map(|(p, k)| p ^ k).collect::<Vec<u8>>()
            })
            .collect())
    }

    fn seal_subject(&self, controller: &ControllerId, nonce: &str, subject: &SubjectId) -> ServiceResult<String> {
        Ok(B64URL.encode(self.seal(controller, nonce, subject.as_str().as_bytes())?))
    }

    fn unseal_subject(&self, controller: &ControllerId, nonce: &str, sealed: &str) -> Option<SubjectId> {
        let bytes = B64URL.decode(sealed).ok()?;
        let plain = self.seal(controller, nonce, &bytes).ok()?;
        SubjectId::parse(&String::from_utf8(plain).ok()?).ok()
    }

    fn mac(&self, controller: &ControllerId, purpose: &str, message: &str) -> ServiceResult<String> {
        let key = self.ledger_key(controller)?.mac_key(purpose);
        Ok(B64URL.encode(hmac(&key, b"", message.as_bytes())))
    }

    /// A signed, single-use link to the preference center for `subject`.
    pub fn create_link(
        &self,
        principal: &Principal,
        subject: &str,
        ttl_seconds: Option<u64>,
        base_url: &str,
    ) -> ServiceResult<LinkOut> {
        principal.require(Scope::Collect)?;
        let subject = SubjectId::parse(subject).map_err(|e| ServiceError::invalid("subject", e))?;
        let ttl = ttl_seconds.unwrap_or(DEFAULT_LINK_SECONDS);
        if !(1..=MAX_LINK_SECONDS).contains(&ttl) {
            return Err(ServiceError::invalid("ttl_seconds", format!("must be between 1 and {MAX_LINK_SECONDS}")));
        }
        let controller = principal.controller.id();
        let expires_at = self.now().plus_millis(i64::try_from(ttl * 1000).unwrap_or(i64::MAX));
        let nonce = to_hex(&random_bytes::<16>()?);
        let sealed = self.seal_subject(&controller, &nonce, &subject)?;
        let payload = format!("v1.{}.{sealed}.{}.{nonce}", b64(controller.as_str()), expires_at.unix_millis());
        let token = format!("{payload}.{}", self.mac(&controller, "link", &payload)?);
        let url = format!("{}/p/{controller}/open?token={token}", base_url.trim_end_matches('/'));
        Ok(LinkOut { url, expires_at })
    }

    /// Opens a link: checks it, spends it, and returns the session and its cookie value.
    pub async fn open_link(&self, controller: &str, token: &str) -> Result<(Session, String), LinkError> {
        let (controller, subject, nonce) = self.check_link(controller, token).await?;
        let now = self.now();
        match self.store().use_link(controller.clone(), nonce, now).await {
            Ok(true) => {}
            Ok(false) => return Err(LinkError::Used),
            Err(_) => return Err(LinkError::Invalid),
        }
        let session = Session { controller, subject, expires_at: now.plus_millis(SESSION_SECONDS * 1000) };
        let cookie = self.session_cookie(&session).map_err(|_| LinkError::Invalid)?;
        Ok((session, cookie))
    }

    /// Checks a link without spending it: looking at a link (a mail scanner, a preview) must not
    /// use it up; only the customer's own "continue" does.
    pub async fn check_link(
        &self,
        controller: &str,
        token: &str,
    ) -> Result<(ControllerId, SubjectId, String), LinkError> {
        let controller = ControllerId::parse(controller).map_err(|_| LinkError::Invalid)?;
        self.controller(&controller).await.map_err(|_| LinkError::Invalid)?;
        let (payload, mac) = token.rsplit_once('.').ok_or(LinkError::Invalid)?;
        let expected = self.mac(&controller, "link", payload).map_err(|_| LinkError::Invalid)?;
        if !constant_time_eq(mac.as_bytes(), expected.as_bytes()) {
            return Err(LinkError::Invalid);
        }
        let parts: Vec<&str> = payload.split('.').collect();
        let [version, c, sealed, expires, nonce] = parts.as_slice() else { return Err(LinkError::Invalid) };
        // A link for another controller never opens this one's pages, even with a valid MAC.
        if *version != "v1" || unb64(c).as_deref() != Some(controller.as_str()) {
            return Err(LinkError::Invalid);
        }
        let subject = self.unseal_subject(&controller, nonce, sealed).ok_or(LinkError::Invalid)?;
        let expires_at = Timestamp::from_unix_millis(expires.parse().map_err(|_| LinkError::Invalid)?);
        if self.now() >= expires_at {
            return Err(LinkError::Expired);
        }
        Ok((controller, subject, (*nonce).to_owned()))
    }

    fn session_cookie(&self, session: &Session) -> ServiceResult<String> {
        let nonce = to_hex(&random_bytes::<16>()?);
        let sealed = self.seal_subject(&session.controller, &nonce, &session.subject)?;
        let payload = format!("s2.{nonce}.{sealed}.{}", session.expires_at.unix_millis());
        Ok(format!("{payload}.{}", self.mac(&session.controller, "session", &payload)?))
    }

    /// The session a cookie value stands for, if it is authentic and current.
    pub fn session(&self, controller: &ControllerId, cookie: &str) -> Option<Session> {
        // Only controllers this node has loaded (a link was opened for them) can have sessions;
        // anything else must not reach the keyring, which creates keys on first use.
        if !self.controller_ids().contains(controller) {
            return None;
        }
        let (payload, mac) = cookie.rsplit_once('.')?;
        let expected = self.mac(controller, "session", payload).ok()?;
        if !constant_time_eq(mac.as_bytes(), expected.as_bytes()) {
            return None;
        }
        let mut parts = payload.split('.');
        let (Some("s2"), Some(nonce), Some(sealed), Some(expires), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let subject = self.unseal_subject(controller, nonce, sealed)?;
        let expires_at = Timestamp::from_unix_millis(expires.parse().ok()?);
        (self.now() < expires_at).then(|| Session { controller: controller.clone(), subject, expires_at })
    }

    /// The token a session's forms must echo: a request from another site cannot know it.
    pub fn csrf_token(&self, controller: &ControllerId, cookie: &str) -> ServiceResult<String> {
        self.mac(controller, "csrf", cookie)
    }
}
