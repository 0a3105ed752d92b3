//! The hostile suite (issue 10): what an attacker, a broken client or a bad
//! file can do to ccfraud, each case ending in the documented refusal within
//! seconds — never a hang, a crash, a 5xx, invalid JSON, or a partial file.
//!
//! * [`train`]: hostile training channels and hyperparameters (symlink
//!   loops, FIFOs, decompression bombs, diverging fits, one class, values
//!   beyond f32) against the real `ccfraud train`.
//! * [`requests`]: hostile `/invocations` bodies in every format against
//!   the real server for every model kind, and the request parser fuzzed.
//! * [`transport`]: hostile clients (slow bodies, connection floods,
//!   oversized and malformed framing, SIGTERM under load).
//! * [`artifacts`]: tampered artifacts and model archives.

#[path = "../common/mod.rs"]
mod common;

mod artifacts;
mod requests;
mod train;
mod transport;
