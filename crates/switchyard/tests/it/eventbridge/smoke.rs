//! That the tools reach the server: a boto3 script and the aws CLI each make one call to a
//! fresh server and report in the form the EventBridge tests read (JSON lines, JSON output).
//!
//! The call's answer is not checked: until the door exists it is an error. What is checked is
//! that the tool ran, that the call reached the server (an answer, not a connection failure),
//! and that what it printed parses.

use switchyard_test_support::{aws_cli_or_skip, python_or_skip, run_aws, run_python, temp_dir};

use super::{TOOL_TIMEOUT, script};
use crate::common::Server;

#[test]
fn a_boto3_script_gets_an_answer_from_the_server_and_prints_it_as_one_json_line() {
    let Some(python) = python_or_skip() else {
        return;
    };
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let output = run_python(
        &python,
        &script("smoke.py"),
        &[("ENDPOINT", server.base.clone())],
        TOOL_TIMEOUT,
    );
    let [line] = output.lines.as_slice() else {
        panic!(
            "one JSON line expected: {:?}\n{}",
            output.lines, output.stderr
        );
    };
    assert!(
        line["boto3"]
            .as_str()
            .is_some_and(|version| version.starts_with("1.")),
        "no boto3 version: {line}"
    );
    assert!(
        line.get("result").is_some() || line.get("error").is_some(),
        "neither a result nor an error: {line}"
    );
}

#[test]
fn the_aws_cli_calls_list_event_buses_on_the_server() {
    let Some(aws) = aws_cli_or_skip() else {
        return;
    };
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let outcome = run_aws(
        &aws,
        &["events", "list-event-buses", "--endpoint-url", &server.base],
        &[],
        TOOL_TIMEOUT,
    );
    match outcome {
        Ok(buses) => assert!(buses.get("EventBuses").is_some(), "{buses}"),
        // The CLI names the operation only once the server has answered it: a CLI that could
        // not start, or could not connect, says something else.
        Err(stderr) => assert!(
            stderr.contains("when calling the ListEventBuses operation"),
            "{stderr}"
        ),
    }
}
