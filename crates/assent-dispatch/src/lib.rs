//! The I/O adapters the outbox dispatcher delivers through: NATS JetStream and signed webhooks,
//! plus the pure retry policy.
//!
//! - `nats`: a minimal NATS client for JetStream publishing with `Nats-Msg-Id` deduplication,
//!   so a redelivered outbox row is stored once.
//! - `webhook`: one signed HTTP POST per delivery attempt, classified into an `Outcome`.
//! - `signature`: Standard Webhooks signing and verification.
//! - `backoff`: when to retry and when to give up; no clock, no randomness of its own.
//!
//! The dispatcher loop itself (reading the outbox, recording attempts) lives elsewhere: this
//! crate knows nothing about the ledger or the store.
//!
//! HTTPS uses reqwest's `rustls` feature, whose crypto provider is aws-lc-rs. `ring` through
//! `rustls-no-provider` would build lighter, but reqwest then panics in every `Client` built
//! before a process-wide provider is installed, and feature unification would switch that on
//! for every crate in a workspace build, including tests that never touch this one.

pub mod backoff;
pub mod nats;
pub mod signature;
pub mod webhook;

pub use backoff::RetryPolicy;
pub use nats::{Message, NatsClient, NatsError, PubAck, StreamInfo};
pub use signature::{SecretError, WebhookSecret, sign, verify};
pub use webhook::{Outcome, WebhookError, WebhookSender};
