//! The real `assent` binary, driven as an operator and a client would.

mod commands;
mod crash;
mod support;
