//! The crate's one integration-test binary: each module exercises one adapter against a real
//! peer (a NATS server when `ASSENT_TEST_NATS_URL` names one, an in-process HTTP receiver).

mod nats;
mod webhook;
