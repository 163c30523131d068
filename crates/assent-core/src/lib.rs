//! Assent's pure core.
//!
//! Everything that decides what a consent *means* lives here: validated identifiers, the
//! catalog (data categories, purposes, notice versions), ledger entries and their frozen
//! canonical encoding, the fold from events to state, and the decision function.
//!
//! Architecture invariant: this crate does no I/O, has no async, and never reads the clock.
//! Time arrives as a [`Timestamp`] parameter, randomness as bytes. Adapters (storage, HTTP,
//! CLI) wrap it; nothing here knows they exist.

pub mod catalog;
pub mod crypto;
pub mod decision;
pub mod encoding;
pub mod error;
pub mod event;
pub mod id;
pub mod jws;
pub mod lint;
pub mod merkle;
pub mod note;
pub mod receipt;
pub mod state;
pub mod time;

pub use catalog::{ConsentModel, DataCategory, NoticeContent, NoticeText, Purpose, Recipient};
pub use decision::{Decision, Reason, Status, decide};
pub use error::{FieldError, ValidationErrors};
pub use event::{Action, ConsentEvent, LedgerEntry, Method, NoticePublication};
pub use id::{ControllerId, DataCategoryId, Language, PurposeId, SubjectId};
pub use state::ConsentState;
pub use time::Timestamp;
