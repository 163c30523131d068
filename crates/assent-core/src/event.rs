//! Ledger entries: consent events and notice publications.

use std::fmt;

use crate::catalog::ContentHash;
use crate::crypto::{Hash32, to_hex};
use crate::id::{ControllerId, Language, PurposeId};
use crate::time::Timestamp;

/// What a consent event does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Grant,
    Withdraw,
    /// A grant lapsed. Reserved for Assent itself; clients send only `grant` and `withdraw`.
    Expire,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Grant => "grant",
            Self::Withdraw => "withdraw",
            Self::Expire => "expire",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "grant" => Ok(Self::Grant),
            "withdraw" => Ok(Self::Withdraw),
            "expire" => Ok(Self::Expire),
            other => Err(format!("action `{other}` must be `grant` or `withdraw`")),
        }
    }
}

/// How the choice reached us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    Api,
    Web,
    Phone,
    Email,
    InPerson,
    Import,
    /// The browser's Global Privacy Control signal.
    Gpc,
    /// Assent itself (for example an expiry).
    System,
}

impl Method {
    pub const CLIENT_METHODS: [Method; 7] =
        [Self::Api, Self::Web, Self::Phone, Self::Email, Self::InPerson, Self::Import, Self::Gpc];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Web => "web",
            Self::Phone => "phone",
            Self::Email => "email",
            Self::InPerson => "in_person",
            Self::Import => "import",
            Self::Gpc => "gpc",
            Self::System => "system",
        }
    }

    /// Parses a method a client may claim; `system` is reserved for Assent itself.
    pub fn parse_client(s: &str) -> Result<Self, String> {
        Self::CLIENT_METHODS
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| format!("method `{s}` must be one of api, web, phone, email, in_person, import, gpc"))
    }

    pub fn parse_any(s: &str) -> Result<Self, String> {
        if s == "system" { Ok(Self::System) } else { Self::parse_client(s) }
    }
}

/// A subject's keyed pseudonym, the only subject identifier that enters the ledger.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pseudonym(pub Hash32);

impl fmt::Debug for Pseudonym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pseudonym({})", to_hex(&self.0))
    }
}

/// A recorded choice of one subject about one purpose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentEvent {
    pub controller: ControllerId,
    pub subject: Pseudonym,
    pub purpose: PurposeId,
    /// The notice version the choice was about. Always set for grants.
    pub version: Option<u32>,
    pub notice_hash: Option<ContentHash>,
    pub action: Action,
    pub method: Method,
    pub recorded_at: Timestamp,
    /// Where the customer was, such as `US-ME`, when the controller tells us.
    pub jurisdiction: Option<String>,
    pub language: Option<Language>,
    /// Keyed commitment to the evidence kept (erasably) outside the ledger.
    pub evidence: Option<Hash32>,
}

/// A notice version entering force; a grant's `notice_hash` points back to one of these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticePublication {
    pub controller: ControllerId,
    pub purpose: PurposeId,
    pub version: u32,
    pub hash: ContentHash,
    pub published_at: Timestamp,
}

/// A subject was erased. It deliberately names no one: the entry records that an erasure
/// happened and when, so the log shows it, without keeping the link it destroyed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Erasure {
    pub controller: ControllerId,
    pub recorded_at: Timestamp,
}

/// One leaf of a controller's ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerEntry {
    Consent(ConsentEvent),
    Notice(NoticePublication),
    Erasure(Erasure),
}

impl LedgerEntry {
    pub fn as_consent(&self) -> Option<&ConsentEvent> {
        match self {
            Self::Consent(e) => Some(e),
            Self::Notice(_) | Self::Erasure(_) => None,
        }
    }
}

/// Checks a jurisdiction code such as `US`, `US-ME` or `ES-CT` (ISO 3166-1 alpha-2, optionally
/// with an ISO 3166-2 subdivision).
pub fn parse_jurisdiction(s: &str) -> Result<String, String> {
    let mut parts = s.splitn(2, '-');
    let country = parts.next().unwrap_or_default();
    let country_ok = country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase());
    let sub_ok = parts.next().is_none_or(|sub| {
        (1..=3).contains(&sub.len()) && sub.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    });
    if country_ok && sub_ok {
        Ok(s.to_owned())
    } else {
        Err(format!("jurisdiction `{s}` must look like `US` or `US-ME`"))
    }
}
