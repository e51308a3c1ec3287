//! switchyard's integration tests: the real `switchyard` binary, driven over HTTP and its CLI.
//!
//! One test binary with a module per area (as ripgrep does), because each test binary links
//! its own copy of everything it uses: one link instead of one per area is most of the test
//! build. The harness for the server, receivers and the API is in `common`; what other test
//! trees share (spawning a program and waiting until it listens, PostgreSQL schemas, temporary
//! directories) is in `switchyard-test-support`.
//!
//! Every wait is bounded; none asserts on speed. "Nothing more happened" is shown by a sentinel
//! that went the same way after the thing that must not arrive, never by a fixed sleep.

#![allow(
    clippy::disallowed_methods,
    clippy::print_stderr,
    reason = "a test harness: its receivers are untracked tasks, its deadlines are real time against real processes, its clients talk to loopback, and it tells the person running it why a test skipped"
)]

mod common;

mod backup;
mod bad_input;
mod cli;
mod cloudevents;
mod cluster;
mod connections;
mod console;
mod delivery;
mod destinations;
mod docs;
mod durability;
mod eventbridge;
mod flow_control;
mod history;
mod metrics;
mod ordering;
mod pubsub;
mod pull;
mod replay;
mod schedule;
mod setup;
mod slack;
mod sources;
mod stats;
mod trace_and_loops;
