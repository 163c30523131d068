//! The HTTP API, exercised through the real router in process, as a client would.
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
mod security;
