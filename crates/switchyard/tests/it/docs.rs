//! The documentation's examples, run, so that they cannot drift from the binary.
//!
//! In README.md and docs/*.md:
//! - a fenced block whose info string is `sh runnable` is run with bash, in the order of the
//!   file, against a server and a sink (`switchyard sink`) started for that file, in a directory
//!   of its own that the file's blocks share; `localhost:8700` and `127.0.0.1:8700` are the
//!   server, `127.0.0.1:9000` is the sink, `switchyard` is the binary under test. Each runs
//!   with `set -euo pipefail`, and `curl` fails on an HTTP error unless it shows the status
//!   line itself (`-i`), so an example that gets a 400 fails. `sh runnable fails` must fail.
//! - a `text output` block right after a runnable one shows what it prints (stdout and stderr):
//!   each of its lines must be in one line of the output, `…` standing for anything.
//! - a `text log-lines` block shows log lines (`LEVEL target: message key=value …`): each
//!   message must be logged, with those fields, by the module the target names.
//! - a `toml` block with buses, sources, connections or `[server]` is a config file: it must
//!   parse as `serve --config` parses it.
//!
//! A failure names the file, the line of the block and what it printed. Blocks that cannot run
//! here (TLS certificates, PostgreSQL, systemd, a Slack workspace) are left unmarked.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::*;

/// How long one block may run: far above any example's needs.
const BLOCK_TIMEOUT_S: &str = "120";

/// What every block runs first.
const PRELUDE: &str = r#"set -euo pipefail
exec 2>&1
curl() {
    case " $* " in
        *" -i "* | *" --include "*) command curl -sS "$@" ;;
        *) command curl -sS --fail-with-body "$@" ;;
    esac
}
"#;

struct Block {
    /// The line of the opening fence, from 1.
    line: usize,
    /// The info string's words (`sh`, `runnable`, …).
    info: Vec<String>,
    body: String,
}

impl Block {
    fn is(&self, words: &[&str]) -> bool {
        self.info.len() >= words.len() && self.info.iter().zip(words).all(|(a, b)| a == b)
    }
}

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// README.md and every docs/*.md, by name.
fn documents() -> Vec<PathBuf> {
    let root = repository();
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .collect();
    files.sort();
    files.insert(0, root.join("README.md"));
    files
}

/// The fenced blocks of a Markdown text (fences of three or more backticks, indented or not).
fn blocks(text: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut open: Option<(Block, String, usize)> = None;
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        match &mut open {
            None => {
                if let Some(rest) = trimmed.strip_prefix("```") {
                    let fence = format!(
                        "```{}",
                        rest.chars().take_while(|c| *c == '`').collect::<String>()
                    );
                    let info = rest.trim_start_matches('`');
                    open = Some((
                        Block {
                            line: n + 1,
                            info: info.split_whitespace().map(str::to_string).collect(),
                            body: String::new(),
                        },
                        fence,
                        indent,
                    ));
                }
            }
            Some((block, fence, fence_indent)) => {
                if trimmed.starts_with(fence.as_str())
                    && trimmed.trim_start_matches('`').trim().is_empty()
                {
                    blocks.push(open.take().unwrap().0);
                } else {
                    // Indented blocks (in a list) lose the fence's indentation.
                    block.body.push_str(&line[indent.min(*fence_indent)..]);
                    block.body.push('\n');
                }
            }
        }
    }
    assert!(open.is_none(), "an unclosed fenced block");
    blocks
}

/// Whether `expected` (with `…` for anything) is within `line`.
fn line_matches(line: &str, expected: &str) -> bool {
    let mut rest = line;
    for part in expected.split('…') {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

/// A server and a sink for one document's examples.
struct Setup {
    server: Server,
    sink: Server,
    dir: tempfile::TempDir,
}

impl Setup {
    fn start() -> Setup {
        let dir = temp_dir();
        let server = Server::start(&dir.path().join("server-data"), &[]);
        let sink = Server::spawn(&["sink", "--listen", "127.0.0.1:0"])
            .unwrap_or_else(|log| panic!("the sink did not start:\n{}", log.join("\n")));
        let work = dir.path().join("work");
        std::fs::create_dir(&work).unwrap();
        Setup { server, sink, dir }
    }

    fn rewrite(&self, text: &str) -> String {
        let server = self.server.base.trim_start_matches("http://");
        let sink = self.sink.base.trim_start_matches("http://");
        text.replace("localhost:8700", server)
            .replace("127.0.0.1:8700", server)
            .replace("127.0.0.1:9000", sink)
    }

    /// Runs a block; its exit status and what it printed.
    fn run(&self, body: &str) -> (bool, String) {
        let bin_dir = Path::new(BIN).parent().unwrap();
        let path = format!(
            "{}:{}",
            bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let output = Command::new("timeout")
            .args([BLOCK_TIMEOUT_S, "bash", "-c"])
            .arg(format!("{PRELUDE}{}", self.rewrite(body)))
            .current_dir(self.dir.path().join("work"))
            .env("PATH", path)
            .env("SWITCHYARD_URL", &self.server.base)
            .env_remove("SWITCHYARD_API_TOKEN_FILE")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let mut printed = String::from_utf8_lossy(&output.stdout).to_string();
        printed.push_str(&String::from_utf8_lossy(&output.stderr));
        (output.status.success(), printed)
    }
}

/// Runs one document's runnable blocks; what went wrong, if anything.
fn run_document(path: &Path, text: &str) -> Result<usize, String> {
    let blocks = blocks(text);
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    let runnable: Vec<usize> = (0..blocks.len())
        .filter(|&i| blocks[i].is(&["sh", "runnable"]))
        .collect();
    if runnable.is_empty() {
        return Ok(0);
    }
    let setup = Setup::start();
    for &i in &runnable {
        let block = &blocks[i];
        let must_fail = block.info.iter().any(|w| w == "fails");
        let (succeeded, printed) = setup.run(&block.body);
        let at = format!("{name}:{}", block.line);
        if succeeded == must_fail {
            let expected = if must_fail { "fail" } else { "succeed" };
            return Err(format!(
                "{at}: the block did not {expected}:\n{}\n--- it printed:\n{printed}\n--- server log:\n{}",
                block.body,
                setup.server.log_text()
            ));
        }
        if let Some(shown) = blocks.get(i + 1).filter(|b| b.is(&["text", "output"])) {
            for expected in shown.body.lines().filter(|l| !l.trim().is_empty()) {
                let expected = setup.rewrite(expected);
                if !printed.lines().any(|line| line_matches(line, &expected)) {
                    return Err(format!(
                        "{name}:{}: the output shown is not what the block at line {} printed:\nshown:   {expected}\nprinted:\n{printed}",
                        shown.line, block.line
                    ));
                }
            }
        }
    }
    Ok(runnable.len())
}

#[test]
fn every_runnable_example_in_the_docs_runs_and_prints_what_is_shown() {
    let mut failures = Vec::new();
    let mut ran = 0;
    for path in documents() {
        let text = std::fs::read_to_string(&path).unwrap();
        match run_document(&path, &text) {
            Ok(count) => ran += count,
            Err(failure) => failures.push(failure),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(
        ran >= 15,
        "only {ran} runnable blocks: are the markers gone?"
    );
}

/// The source file of a log target (`switchyard_server::cluster`).
fn module_source(target: &str) -> Option<PathBuf> {
    let mut parts = target.split("::");
    let krate = parts.next()?;
    let dir = match krate.strip_prefix("switchyard_") {
        Some(name) => name.replace('_', "-"),
        None if krate == "switchyard" => "switchyard".into(),
        None => return None,
    };
    let mut path = repository().join("crates").join(dir).join("src");
    let modules: Vec<&str> = parts.collect();
    if modules.is_empty() {
        return Some(path.join("lib.rs"));
    }
    for module in &modules[..modules.len() - 1] {
        path.push(module);
    }
    let last = modules[modules.len() - 1];
    let file = path.join(format!("{last}.rs"));
    Some(if file.exists() {
        file
    } else {
        path.join(last).join("mod.rs")
    })
}

/// Whether `source` logs `message` with `fields`, at `level`: the message as a string literal
/// in a `tracing::LEVEL!` call that names each field before it.
fn logs(source: &str, level: &str, message: &str, fields: &[&str]) -> bool {
    let macro_call = format!("{}!(", level.to_lowercase());
    source
        .match_indices(&format!("\"{message}\""))
        .any(|(at, _)| {
            let Some(start) = source[..at].rfind(&macro_call) else {
                return false;
            };
            let call = &source[start..at];
            !call.contains(';') && fields.iter().all(|field| call.contains(field))
        })
}

#[test]
fn the_log_lines_the_docs_show_are_logged_as_shown() {
    let mut checked = 0;
    for path in documents() {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        for block in blocks(&std::fs::read_to_string(&path).unwrap()) {
            if !block.is(&["text", "log-lines"]) {
                continue;
            }
            for line in block.body.lines().filter(|l| !l.trim().is_empty()) {
                let at = format!("{name}:{}: {line}", block.line);
                let mut words = line.split_whitespace();
                let level = words.next().unwrap_or_default();
                let target = words
                    .next()
                    .and_then(|t| t.strip_suffix(':'))
                    .unwrap_or_else(|| panic!("{at}: no `target:`"));
                let rest: Vec<&str> = words.collect();
                let message: Vec<&str> = rest
                    .iter()
                    .take_while(|w| !w.contains('='))
                    .copied()
                    .collect();
                let fields: Vec<&str> = rest[message.len()..]
                    .iter()
                    .map(|w| w.split('=').next().unwrap())
                    .collect();
                let source = module_source(target)
                    .and_then(|file| std::fs::read_to_string(file).ok())
                    .unwrap_or_else(|| panic!("{at}: no source file for target {target}"));
                assert!(
                    logs(&source, level, &message.join(" "), &fields),
                    "{at}: {target} logs no {level} {:?} with the fields {fields:?}",
                    message.join(" ")
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 2, "only {checked} log lines checked");
}

/// Config-file examples (`toml` blocks with buses, sources, connections or `[server]`) are
/// files `serve --config` takes: `switchyard lint` (offline) parses each as `serve` does.
#[test]
fn every_config_file_example_in_the_docs_parses() {
    let dir = temp_dir();
    let mut checked = 0;
    for path in documents() {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        for block in blocks(&std::fs::read_to_string(&path).unwrap()) {
            let config = ["[server]", "[buses.", "[sources.", "[connections."]
                .iter()
                .any(|table| block.body.contains(table));
            if !block.is(&["toml"]) || !config {
                continue;
            }
            let file = dir.path().join(format!("{name}-{}.toml", block.line));
            std::fs::write(&file, &block.body).unwrap();
            let output = Command::new(BIN).arg("lint").arg(&file).output().unwrap();
            assert_ne!(
                output.status.code(),
                Some(2),
                "{name}:{}: the config file example does not parse:\n{}\n{}",
                block.line,
                block.body,
                String::from_utf8_lossy(&output.stderr)
            );
            checked += 1;
        }
    }
    assert!(checked >= 4, "only {checked} config file examples checked");
}
