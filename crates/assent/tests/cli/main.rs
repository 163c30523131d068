//! The real `assent` binary, driven as an operator and a client would.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail by panicking"
)]

mod catalog;
mod commands;
mod crash;
mod delivery;
mod postgres;
mod support;
mod verify;
