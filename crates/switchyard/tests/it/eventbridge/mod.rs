//! The EventBridge door (docs/design/eventbridge.md §7), driven by the real boto3 and the real
//! aws CLI against the real binary.
//!
//! A case is a Python script in `crates/switchyard/tests/eventbridge/` that gets the server's
//! URL as `ENDPOINT` and prints one JSON line per result, or an aws CLI command whose JSON
//! output is parsed; Rust starts the server, runs the tool and asserts on what it printed (and,
//! where it applies, on what receivers got and on `/v1` state). The tools come from
//! `.ci/python-venv` through `SWITCHYARD_TEST_PYTHON` and `SWITCHYARD_TEST_AWS`: without them a
//! test says it skipped, and under `CI=true` it fails. Running them and their environment
//! (test credentials, nothing from the machine's AWS setup) is `switchyard-test-support`'s.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

mod auth;
mod cli;
mod connections;
mod example;
mod raw;
mod replay;
mod rules;
mod schedule;
mod smoke;

/// How long one run of a tool may take: Python's start and boto3's import are most of it, and
/// a loaded CI machine makes them slow; a hung tool still fails its test.
const TOOL_TIMEOUT: Duration = Duration::from_secs(60);

/// The script `name` of `crates/switchyard/tests/eventbridge/`.
fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/eventbridge")
        .join(name)
}

/// Makes connection `open` (a header, no auth), which the scripts' API destinations name as
/// `connection/open/x`: EventBridge has no API destination without a connection.
async fn open_connection(api: &crate::common::Api<'_>) {
    let (status, answer) = api
        .put(
            "/v1/connections/open",
            serde_json::json!({"headers": {"x": "1"}}),
        )
        .await;
    assert_eq!(status, 201, "{answer}");
}

/// Runs script `name` (whose lines come from `steps.py`'s `step`); returns its lines by step.
async fn run_steps(
    python: &Path,
    name: &str,
    env: Vec<(&'static str, String)>,
) -> HashMap<String, Value> {
    crate::common::script_steps(python, script(name), env, TOOL_TIMEOUT).await
}
