//! A program under test as a child process: started, waited for until it logs the URL it
//! listens on, its stderr kept, killed when dropped.
//!
//! It owns only the process and its log; what the program is and which arguments it gets is
//! the caller's (a test crate's binary path comes from `env!("CARGO_BIN_EXE_…")`, which only
//! that crate sees). Invariant: every wait is bounded, so a program that hangs fails its test
//! instead of stalling the run.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a program may take to start listening, and to stop after SIGTERM: long enough for
/// a loaded CI machine, short enough to fail a hung test.
const PATIENCE: Duration = Duration::from_secs(30);

/// What the stderr reader tells the test.
enum Heard {
    /// The program logged `listening on <url>`.
    Listening(String),
    /// Its stderr closed: every line is in the log.
    Closed,
}

/// A running child process; killed when dropped.
pub struct Process {
    /// The process, to signal and to reap.
    child: Child,
    /// Where it listens, as it logged it (`http://127.0.0.1:PORT` or `https://…`).
    pub base: String,
    /// Every stderr line so far, shared with the thread that reads them.
    log: Arc<Mutex<Vec<String>>>,
}

impl Process {
    /// Starts `command` (stdout discarded, stderr kept) and waits until it logs the URL it
    /// listens on; `Err` carries its log when it exits or stays silent first.
    pub fn spawn(mut command: Command) -> Result<Process, Vec<String>> {
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {:?}: {error}", command.get_program()));
        let stderr = child.stderr.take().expect("stderr is piped");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, heard) = mpsc::channel();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(base) = listening_url(&line) {
                    let _ = tx.send(Heard::Listening(base));
                }
                sink.lock().unwrap().push(line);
            }
            let _ = tx.send(Heard::Closed);
        });
        match heard.recv_timeout(PATIENCE) {
            Ok(Heard::Listening(base)) => Ok(Process { child, base, log }),
            silent => {
                let _ = child.kill();
                let _ = child.wait();
                // Killed, its stderr closes: wait for the reader to have taken the last lines.
                if matches!(silent, Err(RecvTimeoutError::Timeout)) {
                    await_closed(&heard);
                }
                Err(log.lock().unwrap().clone())
            }
        }
    }

    /// The URL of `path` on this process.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGKILL: no chance to flush or finish anything.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then waits (bounded) for the process to exit; returns its exit status. Async,
    /// so that receivers on the test's runtime keep answering while the process drains.
    pub async fn terminate(mut self) -> ExitStatus {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the process did not stop within {PATIENCE:?} of SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Its stderr so far, one line a line.
    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The URL in a `… listening on http(s)://ADDRESS[, …]` line. Only a URL counts: a warning can
/// say "listening on ADDRESS without TLS" before the line that announces the server.
fn listening_url(line: &str) -> Option<String> {
    let at = line.find("listening on http")?;
    let url = line[at + "listening on ".len()..]
        .split([',', ' '])
        .next()
        .unwrap_or("");
    Some(url.to_string())
}

/// Waits (bounded) until the stderr reader has seen the end of stderr.
fn await_closed(heard: &Receiver<Heard>) {
    let deadline = Instant::now() + PATIENCE;
    while let Ok(Heard::Listening(_)) =
        heard.recv_timeout(deadline.saturating_duration_since(Instant::now()))
    {}
}
