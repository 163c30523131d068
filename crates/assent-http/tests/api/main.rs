//! The HTTP API, served on a real port (0, chosen by the OS) against a temporary data dir, and
//! used over HTTP as a client would.
//! One integration-test binary; each module is one area of the contract.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail by panicking"
)]

mod bad_input;
mod flows;
mod helpers;
mod ledger;
mod notices;
mod pages;
mod security;
