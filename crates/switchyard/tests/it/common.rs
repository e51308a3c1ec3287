//! The harness of the integration tests: the real `switchyard` binary ([`Server`]), receivers
//! on 127.0.0.1 that record what they get and answer as told ([`Receiver`]), and small helpers
//! over the REST API and `/metrics`.
//!
//! Starting a process and waiting until it listens, PostgreSQL schemas and temporary
//! directories are `switchyard-test-support`'s; this module adds what only switchyard's tests
//! know (its command line, its API). Every wait is bounded; none asserts on speed.

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use switchyard_test_support::Process;
pub(crate) use switchyard_test_support::{TestDatabase, temp_dir};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_switchyard");

/// The tokens of [`admin_and_reader_tokens`]: an `admin` named `admin` and a `read` named
/// `reader`.
pub(crate) const ADMIN_TOKEN: &str = "admin-token-0123456789";
pub(crate) const READER_TOKEN: &str = "reader-token-0123456789";

/// Writes a tokens file (`serve --api-tokens-file`) into `dir` with [`ADMIN_TOKEN`] and
/// [`READER_TOKEN`]: what the tests of scopes start a server with.
pub(crate) fn admin_and_reader_tokens(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("tokens.toml");
    std::fs::write(
        &path,
        format!(
            "[tokens.admin]\ntoken = \"{ADMIN_TOKEN}\"\nscopes = [\"admin\"]\n\n\
             [tokens.reader]\ntoken = \"{READER_TOKEN}\"\nscopes = [\"read\"]\n"
        ),
    )
    .unwrap();
    path
}

/// A running `switchyard serve`; killed when dropped.
pub(crate) struct Server {
    process: Process,
    /// Where the server listens (`http://127.0.0.1:PORT`, or `https://…` with TLS).
    pub base: String,
}

impl Server {
    pub(crate) fn start(data_dir: &Path, extra: &[&str]) -> Server {
        Server::start_with_env(data_dir, extra, &[])
    }

    /// As [`Server::start`], with these environment variables set for the process.
    pub(crate) fn start_with_env(data_dir: &Path, extra: &[&str], env: &[(&str, &Path)]) -> Server {
        let mut args = vec![
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data_dir.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        Server::spawn_with_env(&args, env)
            .unwrap_or_else(|log| panic!("switchyard did not start:\n{}", log.join("\n")))
    }

    /// Starts `switchyard ARGS`; Err carries its log when it exits before listening.
    pub(crate) fn spawn(args: &[&str]) -> Result<Server, Vec<String>> {
        Server::spawn_with_env(args, &[])
    }

    fn spawn_with_env(args: &[&str], env: &[(&str, &Path)]) -> Result<Server, Vec<String>> {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .envs(env.iter().copied())
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1");
        let process = Process::spawn(command)?;
        Ok(Server {
            base: process.base.clone(),
            process,
        })
    }

    pub(crate) fn url(&self, path: &str) -> String {
        self.process.url(path)
    }

    /// SIGKILL: no chance to flush or finish anything.
    pub(crate) fn kill(self) {
        self.process.kill();
    }

    /// SIGTERM, then waits (bounded) for the process to exit; returns its exit status. Async,
    /// so that receivers on the test's runtime keep answering while the server drains.
    pub(crate) async fn terminate(self) -> std::process::ExitStatus {
        self.process.terminate().await
    }

    pub(crate) fn log_text(&self) -> String {
        self.process.log_text()
    }
}

/// One request a receiver got.
#[derive(Debug, Clone)]
pub(crate) struct Hit {
    pub path: String,
    /// The query string, without the `?`.
    pub query: String,
    pub headers: HeaderMap,
    pub body: Value,
    /// The body byte for byte, for checks over exactly what was sent (signatures).
    pub raw_body: Vec<u8>,
    pub at: Instant,
}

impl Hit {
    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
    pub(crate) fn event_id(&self) -> String {
        self.body["id"].as_str().unwrap_or_default().to_string()
    }
}

/// What a receiver answers: status, extra headers, and how long it waits first.
pub(crate) struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub delay: Duration,
    pub body: String,
}

impl Reply {
    pub(crate) fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            delay: Duration::ZERO,
            body: String::new(),
        }
    }

    pub(crate) fn json(status: u16, body: serde_json::Value) -> Reply {
        Reply {
            headers: vec![("content-type", "application/json".into())],
            body: body.to_string(),
            ..Reply::status(status)
        }
    }
}

type Behaviour = Arc<dyn Fn(&Hit, usize) -> Reply + Send + Sync>;

/// An HTTP endpoint on 127.0.0.1 that records every request and answers as told.
#[derive(Clone)]
pub(crate) struct Receiver {
    pub url: String,
    hits: Arc<Mutex<Vec<Hit>>>,
    behaviour: Arc<Mutex<Behaviour>>,
}

impl Receiver {
    pub(crate) async fn start(
        behaviour: impl Fn(&Hit, usize) -> Reply + Send + Sync + 'static,
    ) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let receiver = Receiver {
            url,
            hits: Arc::new(Mutex::new(Vec::new())),
            behaviour: Arc::new(Mutex::new(Arc::new(behaviour))),
        };
        let state = receiver.clone();
        let app = axum::Router::new().fallback(
            move |uri: axum::http::Uri, headers: HeaderMap, body: Bytes| {
                let state = state.clone();
                async move {
                    state
                        .handle(
                            uri.path().to_string(),
                            uri.query().unwrap_or("").to_string(),
                            headers,
                            body,
                        )
                        .await
                }
            },
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        receiver
    }

    pub(crate) async fn ok() -> Receiver {
        Receiver::start(|_, _| Reply::status(200)).await
    }

    async fn handle(
        &self,
        path: String,
        query: String,
        headers: HeaderMap,
        body: Bytes,
    ) -> Response {
        let raw_body = body.to_vec();
        let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let hit = Hit {
            path,
            query,
            headers,
            body,
            raw_body,
            at: Instant::now(),
        };
        let (reply, n) = {
            let mut hits = self.hits.lock().unwrap();
            hits.push(hit.clone());
            let n = hits.len() - 1;
            let behaviour = Arc::clone(&self.behaviour.lock().unwrap());
            (behaviour(&hit, n), n)
        };
        let _ = n;
        if !reply.delay.is_zero() {
            tokio::time::sleep(reply.delay).await;
        }
        let mut response =
            (StatusCode::from_u16(reply.status).unwrap(), reply.body).into_response();
        for (name, value) in reply.headers {
            response.headers_mut().insert(name, value.parse().unwrap());
        }
        response
    }

    pub(crate) fn set(&self, behaviour: impl Fn(&Hit, usize) -> Reply + Send + Sync + 'static) {
        *self.behaviour.lock().unwrap() = Arc::new(behaviour);
    }

    pub(crate) fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    pub(crate) fn count(&self) -> usize {
        self.hits.lock().unwrap().len()
    }
}

/// Polls `condition` until it holds or `limit` passes; a liveness bound, not a speed check.
pub(crate) async fn wait_for(
    what: &str,
    limit: Duration,
    mut condition: impl AsyncFnMut() -> bool,
) {
    let deadline = Instant::now() + limit;
    while !condition().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub(crate) fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// Sends a request and returns (status, JSON body or Null).
pub(crate) async fn call(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Small helpers over the REST API.
pub(crate) struct Api<'a> {
    pub server: &'a Server,
    pub client: reqwest::Client,
}

impl<'a> Api<'a> {
    pub(crate) fn new(server: &'a Server) -> Api<'a> {
        Api {
            server,
            client: client(),
        }
    }

    pub(crate) async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        call(
            self.client
                .put(self.server.url(path))
                .body(body.to_string()),
        )
        .await
    }

    pub(crate) async fn put_raw(&self, path: &str, body: &str) -> (u16, Value) {
        call(
            self.client
                .put(self.server.url(path))
                .body(body.to_string()),
        )
        .await
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        call(
            self.client
                .post(self.server.url(path))
                .body(body.to_string()),
        )
        .await
    }

    pub(crate) async fn post_raw(&self, path: &str, body: impl Into<String>) -> (u16, Value) {
        call(self.client.post(self.server.url(path)).body(body.into())).await
    }

    pub(crate) async fn get(&self, path: &str) -> (u16, Value) {
        call(self.client.get(self.server.url(path))).await
    }

    pub(crate) async fn delete(&self, path: &str) -> (u16, Value) {
        call(self.client.delete(self.server.url(path))).await
    }

    pub(crate) async fn bus(&self, bus: &str) {
        let (status, body) = self
            .put(&format!("/v1/buses/{bus}"), serde_json::json!({}))
            .await;
        assert!(status == 200 || status == 201, "{status} {body}");
    }

    pub(crate) async fn subscribe(&self, bus: &str, name: &str, spec: Value) {
        let (status, body) = self
            .put(&format!("/v1/buses/{bus}/subscriptions/{name}"), spec)
            .await;
        assert!(status == 200 || status == 201, "{status} {body}");
    }

    /// Publishes and returns the accepted ids; panics on any refused entry.
    pub(crate) async fn publish(&self, bus: &str, events: Vec<Value>) -> Vec<String> {
        let (status, body) = self
            .post(
                &format!("/v1/buses/{bus}/events"),
                serde_json::json!({ "entries": events }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["failed_entry_count"], 0, "{body}");
        body["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_string())
            .collect()
    }

    pub(crate) async fn stats(&self, bus: &str, name: &str) -> Value {
        let (status, body) = self
            .get(&format!("/v1/buses/{bus}/subscriptions/{name}/stats"))
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }
}

pub(crate) fn event(source: &str, detail: Value) -> Value {
    serde_json::json!({ "source": source, "detail-type": "test", "detail": detail })
}

/// `accepted = delivered + dead + pending + purged`, the accounting rule of DESIGN.md.
pub(crate) fn assert_accounting(stats: &Value) {
    let n = |k: &str| {
        stats[k]
            .as_u64()
            .unwrap_or_else(|| panic!("{k} missing in {stats}"))
    };
    assert_eq!(
        n("accepted"),
        n("delivered") + n("dead") + n("pending") + n("purged"),
        "accounting broken: {stats}"
    );
}

/// Whether any file under `dir` holds `needle`: plain secrets must be nowhere at rest.
pub(crate) fn contains_anywhere(dir: &Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).unwrap().flatten().any(|entry| {
        let path = entry.path();
        if path.is_dir() {
            contains_anywhere(&path, needle)
        } else {
            std::fs::read(&path).is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
        }
    })
}

/// `/metrics` as text.
pub(crate) async fn scrape(api: &Api<'_>) -> String {
    let response = api
        .client
        .get(api.server.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    response.text().await.unwrap()
}

/// The value of one series (`name{labels}`) in Prometheus text; 0 when absent.
pub(crate) fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| {
            line.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

/// A certificate authority made for one test, and certificates it signs (PEM).
pub(crate) struct TestCa {
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

/// A certificate signed by a [`TestCa`] and its private key, both PEM.
pub(crate) struct TestCert {
    pub cert: String,
    pub key: String,
}

impl TestCa {
    pub(crate) fn new(name: &str) -> TestCa {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = rcgen::KeyPair::generate().unwrap();
        TestCa {
            issuer: rcgen::CertifiedIssuer::self_signed(params, key).unwrap(),
        }
    }

    pub(crate) fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server certificate for `localhost` and 127.0.0.1.
    pub(crate) fn server(&self) -> TestCert {
        self.sign(
            vec!["localhost".into(), "127.0.0.1".into()],
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    pub(crate) fn client(&self, name: &str) -> TestCert {
        self.sign(
            vec![name.to_string()],
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        )
    }

    fn sign(&self, names: Vec<String>, usage: rcgen::ExtendedKeyUsagePurpose) -> TestCert {
        let mut params = rcgen::CertificateParams::new(names).unwrap();
        params.extended_key_usages = vec![usage];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        TestCert {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    /// A client that trusts only this CA.
    pub(crate) fn https_client(&self) -> reqwest::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(self.pem().as_bytes()).unwrap()])
            .build()
            .unwrap()
    }
}

/// Runs a Python `script` off the test's runtime (it blocks, and receivers on the runtime must
/// keep answering), and returns the JSON lines it printed by their `step`.
pub(crate) async fn script_steps(
    python: &Path,
    script: std::path::PathBuf,
    env: Vec<(&'static str, String)>,
    timeout: Duration,
) -> std::collections::HashMap<String, Value> {
    let python = python.to_path_buf();
    tokio::task::spawn_blocking(move || {
        switchyard_test_support::run_python(&python, &script, &env, timeout)
            .lines
            .into_iter()
            .map(|line| (line["step"].as_str().unwrap_or_default().to_string(), line))
            .collect()
    })
    .await
    .unwrap()
}
