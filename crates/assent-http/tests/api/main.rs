//! The HTTP API, exercised through the real router in process, as a client would.
//! One integration-test binary; each module is one area of the contract.

mod bad_input;
mod flows;
mod helpers;
mod security;
