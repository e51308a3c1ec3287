//! The Python tools of the EventBridge tests, boto3 scripts and the aws CLI from the venv that
//! `.ci/python-venv` makes, run as child processes against a server on 127.0.0.1.
//!
//! It owns finding the tools (`SWITCHYARD_TEST_PYTHON`, `SWITCHYARD_TEST_AWS`), the environment
//! they run in, and reading what they print. What a script does and what a test asserts belong
//! to the test crate. It must not let a tool reach AWS: a tool gets fixed test credentials, no
//! inherited `AWS_*` variable, no config or credentials file and no instance metadata, so it
//! talks only to the endpoint the caller gives it.
//! Invariants: every run is bounded by its timeout (after which the tool is killed and the
//! test fails, showing what it printed). With a variable unset, a test is skipped and says so,
//! except under `CI=true`, where it fails: CI must not pass because it ran none of these tests.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// What every tool runs with; a caller's `env` entry with the same key wins.
const BASE_ENV: [(&str, &str); 10] = [
    // Any key signs: the server decides what it accepts, and a test that checks keys sets its own.
    ("AWS_ACCESS_KEY_ID", "AKIDSWITCHYARDTEST"),
    ("AWS_SECRET_ACCESS_KEY", "switchyard-test-secret"),
    ("AWS_DEFAULT_REGION", "us-east-1"),
    // No credentials or settings from the machine: no metadata service, no files, no pager.
    ("AWS_EC2_METADATA_DISABLED", "true"),
    ("AWS_CONFIG_FILE", "/dev/null"),
    ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
    ("AWS_PAGER", ""),
    // What `run_aws` parses, whatever a developer's defaults say.
    ("AWS_DEFAULT_OUTPUT", "json"),
    // One attempt: a retried 5xx or throttle would hide the first answer behind backoff.
    ("AWS_MAX_ATTEMPTS", "1"),
    // Scripts and their helpers live in the source tree: no __pycache__ left beside them.
    ("PYTHONDONTWRITEBYTECODE", "1"),
];

/// How often a running tool is checked for having exited.
const POLL: Duration = Duration::from_millis(10);

/// How long a finished or killed tool's pipes may stay open (held by a process it started)
/// before its output is taken as it stands.
const DRAIN: Duration = Duration::from_secs(5);

/// The venv's Python (`SWITCHYARD_TEST_PYTHON`), or `None` after saying the test is skipped.
/// Panics when the variable is unset under `CI=true`, or names no file.
pub fn python_or_skip() -> Option<PathBuf> {
    tool_or_skip("SWITCHYARD_TEST_PYTHON")
}

/// The venv's aws CLI (`SWITCHYARD_TEST_AWS`), or `None` after saying the test is skipped.
/// Panics when the variable is unset under `CI=true`, or names no file.
pub fn aws_cli_or_skip() -> Option<PathBuf> {
    tool_or_skip("SWITCHYARD_TEST_AWS")
}

/// The Chromium the console's browser tests drive (`SWITCHYARD_TEST_CHROMIUM`, Debian's
/// `/usr/bin/chromium` as `.ci/run` installs it), or `None` after saying the test is skipped.
/// Panics when the variable is unset under `CI=true`, or names no file.
pub fn chromium_or_skip() -> Option<PathBuf> {
    tool_or_skip("SWITCHYARD_TEST_CHROMIUM")
}

fn tool_or_skip(variable: &str) -> Option<PathBuf> {
    match std::env::var_os(variable).filter(|path| !path.is_empty()) {
        Some(path) => {
            let path = PathBuf::from(path);
            assert!(
                path.is_file(),
                "{variable}={} is not a file: run .ci/python-venv (and for Chromium, .ci/run installs Debian's chromium)",
                path.display()
            );
            Some(path)
        }
        None if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("{variable} is unset: run .ci/python-venv")
        }
        None => {
            eprintln!("skipped: {variable} is unset (run .ci/python-venv; see README.md)");
            None
        }
    }
}

/// What a script that exited 0 printed.
#[derive(Debug)]
pub struct ScriptOutput {
    /// Its stdout, one JSON value per line, in order.
    pub lines: Vec<Value>,
    /// Its stderr (warnings, or what it logged), for a failing assertion's message.
    pub stderr: String,
}

/// Runs `python script` with `env` added to the tools' environment, waiting at most `timeout`.
/// Panics, showing the script's stdout and stderr, when it runs out of time (it is killed),
/// exits non-zero, or prints a stdout line that is not one JSON value.
pub fn run_python(
    python: &Path,
    script: &Path,
    env: &[(&str, String)],
    timeout: Duration,
) -> ScriptOutput {
    let mut command = Command::new(python);
    command.arg(script);
    let (status, output) = run(command, env, timeout);
    assert!(status.success(), "{output}\nexited with {status}");
    let lines = output
        .stdout
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|error| {
                panic!("{output}\nprinted a line that is not JSON ({error}): {line:?}")
            })
        })
        .collect();
    ScriptOutput {
        lines,
        stderr: output.stderr,
    }
}

/// Runs `aws ARGS` with `env` added to the tools' environment, waiting at most `timeout`:
/// its stdout parsed as JSON (`Null` when it printed nothing), or `Err` with its stderr when it
/// exited non-zero (the CLI's `An error occurred (Code) when calling …` line, to assert on).
/// Panics, showing its output, when it runs out of time (it is killed) or prints what is not
/// JSON.
pub fn run_aws(
    aws: &Path,
    args: &[&str],
    env: &[(&str, String)],
    timeout: Duration,
) -> Result<Value, String> {
    let mut command = Command::new(aws);
    command.args(args);
    let (status, output) = run(command, env, timeout);
    if !status.success() {
        return Err(output.stderr);
    }
    if output.stdout.trim().is_empty() {
        return Ok(Value::Null);
    }
    Ok(serde_json::from_str(&output.stdout)
        .unwrap_or_else(|error| panic!("{output}\nprinted what is not JSON ({error})")))
}

/// What a tool printed, shown whole by a failing run's panic.
struct Output {
    /// The command line, for the message.
    what: String,
    stdout: String,
    stderr: String,
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}\n--- stdout:\n{}\n--- stderr:\n{}",
            self.what, self.stdout, self.stderr
        )
    }
}

/// Runs `command` in the tools' environment, its stdin closed, until it exits or `timeout`
/// passes; panics (showing its output) when it had to be killed.
fn run(mut command: Command, env: &[(&str, String)], timeout: Duration) -> (ExitStatus, Output) {
    let what = std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|part| part.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    for (key, _) in std::env::vars_os() {
        if key.to_str().is_some_and(|key| key.starts_with("AWS_")) {
            command.env_remove(key);
        }
    }
    command
        .envs(BASE_ENV)
        .envs(env.iter().map(|(key, value)| (key, value.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start {what}: {error}"));
    // Both pipes are read while the tool runs: one it filled would block it.
    let (closed_tx, closed) = mpsc::channel();
    let stdout = drain(
        child.stdout.take().expect("stdout is piped"),
        closed_tx.clone(),
    );
    let stderr = drain(child.stderr.take().expect("stderr is piped"), closed_tx);
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        // A poll interval on a blocking call, not a wait for some condition to come true.
        std::thread::sleep(POLL);
    };
    for _ in 0..2 {
        if closed.recv_timeout(DRAIN).is_err() {
            break;
        }
    }
    let text =
        |buffer: &Mutex<Vec<u8>>| String::from_utf8_lossy(&buffer.lock().unwrap()).into_owned();
    let output = Output {
        what,
        stdout: text(&stdout),
        stderr: text(&stderr),
    };
    match status {
        Some(status) => (status, output),
        None => panic!("{output}\ndid not finish within {timeout:?}: killed"),
    }
}

/// Reads `pipe` to its end on a thread of its own, into the buffer it returns; says on `closed`
/// when the pipe is closed.
fn drain(mut pipe: impl Read + Send + 'static, closed: Sender<()>) -> Arc<Mutex<Vec<u8>>> {
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&buffer);
    std::thread::spawn(move || {
        let mut chunk = [0; 8192];
        loop {
            match pipe.read(&mut chunk) {
                Ok(0) => break,
                Ok(read) => sink.lock().unwrap().extend_from_slice(&chunk[..read]),
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let _ = closed.send(());
    });
    buffer
}
