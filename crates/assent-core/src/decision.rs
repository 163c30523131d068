//! The decision function: may this subject's data be used for this purpose, now?
//!
//! Default deny: only an unexpired grant of a notice version that is still current in every
//! material respect allows an opt-in purpose. Unknown means no.

use crate::catalog::{ConsentModel, Purpose};
use crate::event::Action;
use crate::state::ConsentState;
use crate::time::Timestamp;

/// A subject's standing on a purpose, as shown to people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Granted,
    Withdrawn,
    NotAsked,
    Expired,
    ReconsentRequired,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Granted => "granted",
            Self::Withdrawn => "withdrawn",
            Self::NotAsked => "not_asked",
            Self::Expired => "expired",
            Self::ReconsentRequired => "reconsent_required",
        }
    }
}

/// Why a decision came out the way it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Granted,
    Necessary,
    NotObjected,
    NotAsked,
    Withdrawn,
    Expired,
    ReconsentRequired,
    UnknownPurpose,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Granted => "granted",
            Self::Necessary => "necessary",
            Self::NotObjected => "not_objected",
            Self::NotAsked => "not_asked",
            Self::Withdrawn => "withdrawn",
            Self::Expired => "expired",
            Self::ReconsentRequired => "reconsent_required",
            Self::UnknownPurpose => "unknown_purpose",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub reason: Reason,
    pub status: Status,
}

/// What the decision needs to know about a purpose.
#[derive(Debug, Clone, Copy)]
pub struct PurposeTerms<'a> {
    pub purpose: &'a Purpose,
    /// The newest published notice version, if any.
    pub current_version: Option<u32>,
    /// The newest version published as (or detected to be) a material change.
    pub last_material_version: Option<u32>,
    /// A grant lapses this many days after it was given: the purpose's own `max_age_days`, or
    /// the refresh period of a profile the controller is bound by.
    pub max_age_days: Option<u32>,
}

/// The status of a subject on a purpose at `now`, from its recorded state alone.
pub fn status(terms: &PurposeTerms<'_>, state: Option<&ConsentState>, now: Timestamp) -> Status {
    let Some(state) = state else {
        return Status::NotAsked;
    };
    match state.action {
        Action::Withdraw => Status::Withdrawn,
        Action::Expire => Status::Expired,
        Action::Grant => {
            let lapsed = lapses_at(terms, state).is_some_and(|at| now >= at);
            let stale = match (state.version, terms.last_material_version) {
                (Some(granted), Some(material)) => granted < material,
                (None, Some(_)) => true,
                (_, None) => false,
            };
            if lapsed {
                Status::Expired
            } else if stale {
                Status::ReconsentRequired
            } else {
                Status::Granted
            }
        }
    }
}

/// When a grant recorded in `state` lapses under `terms`, if it does. The expiry sweeper records
/// an `expire` event for every grant whose moment has passed; decisions say `expired` from that
/// moment on, swept or not.
pub fn lapses_at(terms: &PurposeTerms<'_>, state: &ConsentState) -> Option<Timestamp> {
    match state.action {
        Action::Grant => terms.max_age_days.map(|days| state.since.plus_days(days)),
        Action::Withdraw | Action::Expire => None,
    }
}

/// Decides whether data may be used for the purpose. `terms` is `None` for a purpose the
/// controller does not have.
pub fn decide(terms: Option<&PurposeTerms<'_>>, state: Option<&ConsentState>, now: Timestamp) -> Decision {
    let Some(terms) = terms else {
        return Decision { allowed: false, reason: Reason::UnknownPurpose, status: Status::NotAsked };
    };
    let status = status(terms, state, now);
    let (allowed, reason) = match (terms.purpose.model, status) {
        (ConsentModel::Necessary, _) => (true, Reason::Necessary),
        (ConsentModel::OptOut, Status::Withdrawn) => (false, Reason::Withdrawn),
        (ConsentModel::OptOut, Status::Granted) => (true, Reason::Granted),
        (ConsentModel::OptOut, _) => (true, Reason::NotObjected),
        (ConsentModel::OptIn, Status::Granted) => (true, Reason::Granted),
        (ConsentModel::OptIn, Status::Withdrawn) => (false, Reason::Withdrawn),
        (ConsentModel::OptIn, Status::NotAsked) => (false, Reason::NotAsked),
        (ConsentModel::OptIn, Status::Expired) => (false, Reason::Expired),
        (ConsentModel::OptIn, Status::ReconsentRequired) => (false, Reason::ReconsentRequired),
    };
    Decision { allowed, reason, status }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Method;
    use crate::id::PurposeId;

    fn purpose(model: ConsentModel, max_age_days: Option<u32>) -> Purpose {
        Purpose {
            id: PurposeId::parse("p").unwrap(),
            model,
            data_categories: vec![],
            sale_or_sharing: false,
            targeted_advertising: false,
            max_age_days,
            condition_of_service: false,
        }
    }

    fn state(action: Action, version: u32, since_ms: i64) -> ConsentState {
        ConsentState {
            action,
            version: Some(version),
            since: Timestamp::from_unix_millis(since_ms),
            method: Method::Api,
            seq: 0,
        }
    }

    const NOW: Timestamp = Timestamp::from_unix_millis(10 * 86_400_000);

    #[test]
    fn opt_in_denies_without_a_record_and_for_unknown_purposes() {
        let p = purpose(ConsentModel::OptIn, None);
        let terms = PurposeTerms {
            purpose: &p,
            current_version: Some(1),
            last_material_version: None,
            max_age_days: p.max_age_days,
        };
        let d = decide(Some(&terms), None, NOW);
        assert_eq!((d.allowed, d.reason), (false, Reason::NotAsked));
        let d = decide(None, None, NOW);
        assert_eq!((d.allowed, d.reason), (false, Reason::UnknownPurpose));
    }

    #[test]
    fn grants_allow_until_they_lapse() {
        let p = purpose(ConsentModel::OptIn, Some(5));
        let terms = PurposeTerms {
            purpose: &p,
            current_version: Some(1),
            last_material_version: None,
            max_age_days: p.max_age_days,
        };
        let fresh = state(Action::Grant, 1, 6 * 86_400_000);
        assert_eq!(decide(Some(&terms), Some(&fresh), NOW).reason, Reason::Granted);
        let old = state(Action::Grant, 1, 5 * 86_400_000);
        let d = decide(Some(&terms), Some(&old), NOW);
        assert_eq!((d.allowed, d.reason, d.status), (false, Reason::Expired, Status::Expired));
    }

    #[test]
    fn a_newer_material_version_requires_consent_again() {
        let p = purpose(ConsentModel::OptIn, None);
        let terms = PurposeTerms {
            purpose: &p,
            current_version: Some(3),
            last_material_version: Some(2),
            max_age_days: p.max_age_days,
        };
        assert_eq!(decide(Some(&terms), Some(&state(Action::Grant, 1, 0)), NOW).reason, Reason::ReconsentRequired);
        assert_eq!(decide(Some(&terms), Some(&state(Action::Grant, 2, 0)), NOW).reason, Reason::Granted);
    }

    #[test]
    fn opt_out_and_necessary_purposes() {
        let p = purpose(ConsentModel::OptOut, None);
        let terms = PurposeTerms {
            purpose: &p,
            current_version: Some(1),
            last_material_version: None,
            max_age_days: p.max_age_days,
        };
        assert_eq!(decide(Some(&terms), None, NOW).reason, Reason::NotObjected);
        let d = decide(Some(&terms), Some(&state(Action::Withdraw, 1, 0)), NOW);
        assert_eq!((d.allowed, d.reason), (false, Reason::Withdrawn));
        let n = purpose(ConsentModel::Necessary, None);
        let terms = PurposeTerms {
            purpose: &n,
            current_version: Some(1),
            last_material_version: None,
            max_age_days: n.max_age_days,
        };
        assert!(decide(Some(&terms), Some(&state(Action::Withdraw, 1, 0)), NOW).allowed);
    }
}
