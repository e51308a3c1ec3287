//! Connections: basic, API key (with extra headers and query parameters) and OAuth client
//! credentials against real receivers and a token endpoint on 127.0.0.1; secrets stay sealed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::common::*;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

const PASSWORD: &str = "pw-secret-8d1f";
const API_KEY: &str = "key-secret-77aa";
const CLIENT_SECRET: &str = "client-secret-c0ffee";

#[tokio::test]
async fn connections_authenticate_deliveries_and_keep_their_secrets() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    let server = Server::start(&data, &[]);
    let api = Api::new(&server);
    let receiver = Receiver::ok().await;
    // The token endpoint issues tok-1, tok-2, ...; the API accepts only the newest token, as if
    // tok-1 had been revoked as soon as tok-2 existed, and refuses tok-1 from its third use on.
    let issued = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&issued);
    let tokens = Receiver::start(move |_, _| {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        Reply::json(
            200,
            json!({"access_token": format!("tok-{n}"), "token_type": "Bearer", "expires_in": 3600}),
        )
    })
    .await;
    let seen_tok1 = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&seen_tok1);
    let oauth_api = Receiver::start(move |hit, _| match hit.header("authorization") {
        "Bearer tok-1" if seen.fetch_add(1, Ordering::SeqCst) < 2 => Reply::status(200),
        "Bearer tok-2" => Reply::status(200),
        _ => Reply::status(401),
    })
    .await;

    let (status, view) = api
        .put(
            "/v1/connections/basic",
            json!({"auth": {"type": "basic", "username": "svc", "password": PASSWORD}}),
        )
        .await;
    assert_eq!(status, 201, "{view}");
    assert!(!view.to_string().contains(PASSWORD), "{view}");
    api.put(
        "/v1/connections/keyed",
        json!({
            "auth": {"type": "api_key", "header": "X-API-Key", "value": API_KEY},
            "headers": {"X-Team": "billing"},
            "query": {"tenant": "acme"}
        }),
    )
    .await;
    let (status, view) = api.put("/v1/connections/oauth", json!({"auth": {
        "type": "oauth2_client_credentials", "token_url": format!("{}/token", tokens.url),
        "client_id": "switchyard", "client_secret": CLIENT_SECRET, "scopes": ["orders.write"]
    }}))
    .await;
    assert_eq!(status, 201, "{view}");

    api.bus("b").await;
    let (status, body) = api
        .put(
            "/v1/buses/b/subscriptions/none",
            json!({"destination": {"url": receiver.url, "connection": "missing"}}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    api.subscribe("b", "basic", json!({"pattern": {"source": ["basic"]}, "destination": {"url": format!("{}/basic", receiver.url), "connection": "basic"}})).await;
    api.subscribe("b", "keyed", json!({"pattern": {"source": ["keyed"]}, "destination": {"url": format!("{}/keyed?x=1", receiver.url), "connection": "keyed"}})).await;
    api.subscribe(
        "b",
        "oauth",
        json!({
            "pattern": {"source": ["oauth"]},
            "destination": {"url": oauth_api.url, "connection": "oauth"},
            "max_concurrency": 1
        }),
    )
    .await;
    api.publish(
        "b",
        vec![event("basic", json!({})), event("keyed", json!({}))],
    )
    .await;
    api.publish(
        "b",
        (0..4).map(|i| event("oauth", json!({"i": i}))).collect(),
    )
    .await;
    wait_for("deliveries", Duration::from_secs(30), async || {
        receiver.count() == 2 && api.stats("b", "oauth").await["delivered"] == 4
    })
    .await;

    let hits = receiver.hits();
    let basic = hits.iter().find(|h| h.path == "/basic").unwrap();
    assert_eq!(
        basic.header("authorization"),
        format!("Basic {}", STANDARD.encode(format!("svc:{PASSWORD}")))
    );
    let keyed = hits.iter().find(|h| h.path == "/keyed").unwrap();
    assert_eq!(keyed.header("x-api-key"), API_KEY);
    assert_eq!(keyed.header("x-team"), "billing");
    assert!(
        keyed.query.contains("x=1") && keyed.query.contains("tenant=acme"),
        "{}",
        keyed.query
    );

    // One token for the first deliveries, shared; one refresh after the 401, retried at once.
    assert_eq!(
        issued.load(Ordering::SeqCst),
        2,
        "tokens are cached and refreshed once on a 401"
    );
    let token_request = &tokens.hits()[0];
    assert!(token_request.header("authorization").starts_with("Basic "));
    let form = String::from_utf8_lossy(&token_request.raw_body).to_string();
    assert!(form.contains("grant_type=client_credentials"), "{form}");
    let oauth_stats = api.stats("b", "oauth").await;
    assert_eq!(oauth_stats["dead"], 0, "{oauth_stats}");

    assert_eq!(
        api.delete("/v1/connections/basic").await.0,
        409,
        "a connection in use cannot be deleted"
    );
    let (_, listed) = api.get("/v1/connections").await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 3);
    let log = server.log_text();
    drop(server);
    for secret in [PASSWORD, API_KEY, CLIENT_SECRET] {
        assert!(
            !contains_anywhere(&data, secret.as_bytes()),
            "{secret} is in the data directory"
        );
        assert!(!log.contains(secret), "{secret} is in the log");
    }
}

/// A `file:` secret named any file the server could read and sent it to the destination: the
/// master key in a Basic header, `/etc/shadow` in a query parameter.
#[tokio::test]
async fn file_secret_cannot_read_the_master_key_or_files_outside_the_allowed_directories() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    let secrets = dir.path().join("secrets");
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&secrets).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(secrets.join("password"), "allowed-secret-5e1f\n").unwrap();
    std::fs::write(outside.join("shadow"), "root:not-for-you").unwrap();
    let master_key = data.join("master.key");
    let basic = |path: &std::path::Path| json!({"auth": {"type": "basic", "username": "u", "password": format!("file:{}", path.display())}});
    let in_query = |path: &std::path::Path| json!({"query": {"k": {"secret": format!("file:{}", path.display())}}});

    // By default no directory is allowed: every file: reference is refused, naming the flag.
    {
        let server = Server::start(&data, &[]);
        let api = Api::new(&server);
        for body in [basic(&master_key), in_query(&secrets.join("password"))] {
            let (status, answer) = api.put("/v1/connections/c", body).await;
            assert_eq!(status, 400, "{answer}");
            assert_eq!(answer["error"]["code"], "invalid");
            let message = answer["error"]["message"].as_str().unwrap();
            assert!(message.contains("--secret-files-dir"), "{message}");
        }
    }

    // Allowing the whole temporary directory still protects the data directory and the key;
    // `..` and symlinks are resolved before the check.
    let server = Server::start(&data, &["--secret-files-dir", dir.path().to_str().unwrap()]);
    let api = Api::new(&server);
    let (status, answer) = api.put("/v1/connections/c", basic(&master_key)).await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("never readable"),
        "{answer}"
    );
    let climbing = secrets.join("../data/master.key");
    assert_eq!(api.put("/v1/connections/c", basic(&climbing)).await.0, 400);
    let link = secrets.join("key-link");
    std::os::unix::fs::symlink(&master_key, &link).unwrap();
    assert_eq!(api.put("/v1/connections/c", basic(&link)).await.0, 400);
    drop(server);

    let server = Server::start(&data, &["--secret-files-dir", secrets.to_str().unwrap()]);
    let api = Api::new(&server);
    let (status, answer) = api
        .put("/v1/connections/c", in_query(&outside.join("shadow")))
        .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not inside a directory allowed"),
        "{answer}"
    );
    let escape = secrets.join("../outside/shadow");
    assert_eq!(api.put("/v1/connections/c", in_query(&escape)).await.0, 400);

    // An allowed file works, and a symlink swapped in after the PUT is refused at the attempt.
    let receiver = Receiver::ok().await;
    let (status, answer) = api
        .put("/v1/connections/c", basic(&secrets.join("password")))
        .await;
    assert_eq!(status, 201, "{answer}");
    api.bus("b").await;
    api.subscribe(
        "b",
        "s",
        json!({"destination": {"url": receiver.url, "connection": "c"}, "retry": {"max_attempts": 1}}),
    )
    .await;
    api.publish("b", vec![event("shop", json!({}))]).await;
    wait_for("delivery", Duration::from_secs(20), async || {
        receiver.count() == 1
    })
    .await;
    let expected = format!("Basic {}", STANDARD.encode("u:allowed-secret-5e1f"));
    assert_eq!(receiver.hits()[0].header("authorization"), expected);
    std::fs::remove_file(secrets.join("password")).unwrap();
    std::os::unix::fs::symlink(&master_key, secrets.join("password")).unwrap();
    api.publish("b", vec![event("shop", json!({}))]).await;
    wait_for("dead letter", Duration::from_secs(20), async || {
        api.stats("b", "s").await["dead"] == 1
    })
    .await;
    assert_eq!(receiver.count(), 1, "the swapped-in key was never sent");
    let (_, page) = api.get("/v1/buses/b/subscriptions/s/dead-letters").await;
    assert_eq!(page["items"][0]["reason"], "invalid_destination");
    let key = std::fs::read_to_string(&master_key).unwrap();
    let first_key = key.lines().find(|l| !l.starts_with('#')).unwrap();
    assert!(!server.log_text().contains(first_key));
    assert!(!page.to_string().contains(first_key));
}

/// A receiver that echoed the request's headers left the connection's credentials in the
/// attempt log, the dead letter and the server's log.
#[tokio::test]
async fn a_receiver_echoing_credentials_leaves_them_nowhere() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    let server = Server::start(&data, &[]);
    let api = Api::new(&server);
    let echo = Receiver::start(|hit, _| {
        let mut text = String::new();
        for (name, value) in &hit.headers {
            text.push_str(&format!("{name}: {} ", value.to_str().unwrap_or("")));
        }
        text.push_str(&format!("query: {}", hit.query));
        Reply {
            status: 400,
            headers: vec![],
            delay: Duration::ZERO,
            body: text,
        }
    })
    .await;
    let (status, answer) = api
        .put(
            "/v1/connections/c",
            json!({
                "auth": {"type": "basic", "username": "svc", "password": PASSWORD},
                "headers": {"X-Api-Key": {"secret": API_KEY}},
                "query": {"sig": {"secret": "q secret/77"}}
            }),
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    api.bus("b").await;
    api.subscribe(
        "b",
        "s",
        json!({"destination": {"url": echo.url, "connection": "c"}}),
    )
    .await;
    api.publish("b", vec![event("shop", json!({}))]).await;
    wait_for("dead letter", Duration::from_secs(20), async || {
        api.stats("b", "s").await["dead"] == 1
    })
    .await;
    let (_, dead) = api.get("/v1/buses/b/subscriptions/s/dead-letters").await;
    let (_, attempts) = api.get("/v1/buses/b/subscriptions/s/attempts").await;
    let last_error = dead["items"][0]["last_error"].as_str().unwrap().to_string();
    assert!(
        last_error.contains("x-api-key: ********"),
        "the excerpt is kept, redacted: {last_error}"
    );
    let basic = STANDARD.encode(format!("svc:{PASSWORD}"));
    let log = server.log_text();
    assert!(
        log.contains("x-api-key: ********"),
        "the attempt is logged: {log}"
    );
    drop(server);
    for secret in [
        PASSWORD,
        API_KEY,
        basic.as_str(),
        "q secret/77",
        "q+secret%2F77",
    ] {
        for (what, text) in [
            ("dead letter", dead.to_string()),
            ("attempts", attempts.to_string()),
            ("log", log.clone()),
        ] {
            assert!(!text.contains(secret), "{secret:?} in the {what}: {text}");
        }
        assert!(
            !contains_anywhere(&data, secret.as_bytes()),
            "{secret:?} is in the data directory"
        );
    }
}

/// A receiver on 127.0.0.1 that serves HTTPS and completes no handshake without a client
/// certificate signed by `ca`; returns its URL and the number of requests it answered.
async fn mutual_tls_receiver(ca: &TestCa) -> (String, Arc<AtomicUsize>) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let leaf = ca.server();
    let chain = CertificateDer::pem_slice_iter(leaf.cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(leaf.key.as_bytes()).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.pem().as_bytes()).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let clients = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(clients)
        .with_single_cert(chain, key)
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    let app = axum::Router::new().fallback(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        async { "ok" }
    });
    let listener = switchyard_server::tls::TlsListener::new(listener, Arc::new(config));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, hits)
}

#[tokio::test]
async fn a_connection_presents_its_client_certificate_to_a_receiver_that_requires_one() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    let ca = TestCa::new("peer CA");
    let ca_file = dir.path().join("peer-ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let (url, answered) = mutual_tls_receiver(&ca).await;
    // The receiver's certificate is signed by the peer's CA; the system trust store is replaced
    // by it the way an operator would add a private CA.
    let server = Server::start_with_env(&data, &[], &[("SSL_CERT_FILE", &ca_file)]);
    let api = Api::new(&server);

    let client = ca.client("switchyard");
    let key_line = client.key.lines().nth(1).unwrap().to_string();
    let (status, view) = api
        .put(
            "/v1/connections/peer",
            json!({"client_certificate": {"certificate": client.cert, "key": client.key}}),
        )
        .await;
    assert_eq!(status, 201, "{view}");
    assert_eq!(view["client_certificate"]["key"], "********", "{view}");
    assert!(
        view["client_certificate"]["certificate"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----")
    );
    let other = ca.client("someone else");
    let (status, body) = api
        .put(
            "/v1/connections/mismatched",
            json!({"client_certificate": {"certificate": client.cert, "key": other.key}}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("client_certificate: the key is not the certificate's own"),
        "{message}"
    );

    api.bus("b").await;
    api.subscribe(
        "b",
        "with-certificate",
        json!({"pattern": {"source": ["mtls"]}, "destination": {"url": url, "connection": "peer"}}),
    )
    .await;
    api.subscribe(
        "b",
        "without",
        json!({"pattern": {"source": ["anonymous"]}, "destination": {"url": url}, "retry": {"max_attempts": 1}}),
    )
    .await;
    api.publish(
        "b",
        vec![event("mtls", json!({})), event("anonymous", json!({}))],
    )
    .await;
    wait_for("both outcomes", Duration::from_secs(30), async || {
        api.stats("b", "with-certificate").await["delivered"] == 1
            && api.stats("b", "without").await["dead"] == 1
    })
    .await;
    assert_eq!(
        answered.load(Ordering::SeqCst),
        1,
        "only the certified request got through"
    );
    let (_, page) = api
        .get("/v1/buses/b/subscriptions/without/dead-letters")
        .await;
    assert!(page["items"][0]["last_error"].is_string(), "{page}");

    drop(server);
    assert!(
        !contains_anywhere(&data, key_line.as_bytes()),
        "the client key is in the data directory"
    );
}
