//! What switchyard's test trees share, so that each is written once: a program under test as a
//! child process that is waited for until it listens ([`Process`]), a PostgreSQL schema per
//! test ([`TestDatabase`]), the Python tools of the EventBridge tests (boto3 scripts and the
//! aws CLI, [`run_python`] and [`run_aws`]), AWS SigV4 signing of raw EventBridge requests
//! ([`sign_eventbridge`]) and temporary directories.
//!
//! Dev-only (`publish = false`, used only as a dev-dependency): nothing here may be reached by a
//! shipped crate. It holds no knowledge of switchyard's API or command line; the test crates own
//! that. Everything is on 127.0.0.1, and every wait is bounded.

#![allow(
    clippy::disallowed_methods,
    clippy::print_stderr,
    reason = "a test harness: its receivers are untracked tasks, its deadlines are real time against real processes, its clients talk to loopback, and it tells the person running it why a test skipped"
)]

mod postgres;
mod process;
mod python;
mod sigv4;

pub use postgres::TestDatabase;
pub use process::Process;
pub use python::{
    ScriptOutput, aws_cli_or_skip, chromium_or_skip, python_or_skip, run_aws, run_python,
};
pub use sigv4::{AwsKey, sign_eventbridge};

/// A temporary directory, removed when dropped.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}
