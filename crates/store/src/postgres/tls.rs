//! TLS to PostgreSQL (rustls), with libpq's `sslmode` and `sslrootcert` read from the URL.
//!
//! tokio-postgres itself knows `disable`, `prefer` and `require` and refuses `sslrootcert`, so
//! this module takes both out of the URL, gives tokio-postgres the mode it knows, and verifies
//! the server's certificate itself as libpq does:
//!
//! | sslmode       | encrypted               | server certificate checked               |
//! |---------------|-------------------------|------------------------------------------|
//! | `disable`     | no                      | -                                        |
//! | `prefer` (default) | if the server offers TLS | no                                  |
//! | `require`     | yes                     | no; against `sslrootcert` when given (as libpq) |
//! | `verify-ca`   | yes                     | signed by `sslrootcert`                  |
//! | `verify-full` | yes                     | signed by `sslrootcert` and for the URL's host |
//!
//! Must not: accept an unverified certificate under `verify-ca` or `verify-full`, or a mode it
//! does not know (a typo must not silently mean "no TLS").

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};
use tokio_postgres::{Client, Config, Connection, Socket};

use crate::StoreError;

/// How long a connection attempt may take unless the URL says (`connect_timeout`).
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Where to connect and how: the URL's settings and the TLS connector its `sslmode` asks for.
#[derive(Clone)]

pub(super) struct Database {
    config: Config,
    tls: MakeRustls,
}

impl Database {
    /// Parses a `postgres://` URL or a key=value string (`sslmode` and `sslrootcert` as in libpq).
    pub(super) fn parse(url: &str) -> Result<Database, StoreError> {
        let invalid = |message: String| {
            StoreError::storage_message(format!("invalid PostgreSQL URL: {message}"))
        };
        let (rest, params) = TlsParams::take(url);
        let mode = match params.sslmode.as_deref() {
            None | Some("prefer") => Mode::Prefer,
            Some("disable") => Mode::Disable,
            Some("require") => Mode::Require,
            Some("verify-ca") => Mode::VerifyCa,
            Some("verify-full") => Mode::VerifyFull,
            Some(other) => {
                return Err(invalid(format!(
                    "sslmode={other}: use disable, prefer, require, verify-ca or verify-full"
                )));
            }
        };
        let roots = match &params.sslrootcert {
            Some(path) => {
                Some(load_roots(path).map_err(|e| invalid(format!("sslrootcert={path}: {e}")))?)
            }
            None if matches!(mode, Mode::VerifyCa | Mode::VerifyFull) => {
                return Err(invalid(format!(
                    "sslmode={} needs sslrootcert=FILE: the PEM file of the CA that signed the server's certificate",
                    params.sslmode.as_deref().unwrap_or_default()
                )));
            }
            None => None,
        };
        let known = match mode {
            Mode::Disable => "disable",
            Mode::Prefer => "prefer",
            Mode::Require | Mode::VerifyCa | Mode::VerifyFull => "require",
        };
        let separator = match (rest.contains("://"), rest.contains('?')) {
            (false, _) => " ",
            (true, true) => "&",
            (true, false) => "?",
        };
        let mut config =
            Config::from_str(&format!("{rest}{separator}sslmode={known}")).map_err(|e| {
                StoreError::Storage {
                    message: format!(
                        "invalid PostgreSQL URL: {}",
                        switchyard_model::error_chain(&e)
                    ),
                    cause: Some(crate::error::Cause::new(e)),
                }
            })?;
        // Reconnecting to a server that went away must fail soon, not after the system's TCP
        // timeout, so that writes during the outage are answered "unavailable" at once.
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let check = match (mode, roots) {
            (Mode::VerifyFull, Some(roots)) => Check::Full(verifier(roots)?),
            (_, Some(roots)) => Check::Chain(verifier(roots)?),
            (_, None) => Check::Nothing,
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Verifier { check, provider }))
            .with_no_client_auth();
        Ok(Database {
            config,
            tls: MakeRustls(Arc::new(tls)),
        })
    }

    pub(super) async fn connect(
        &self,
    ) -> Result<(Client, Connection<Socket, RustlsStream>), tokio_postgres::Error> {
        self.config.connect(self.tls.clone()).await
    }
}

#[derive(Clone, Copy)]
enum Mode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// `sslmode` and `sslrootcert`, taken out of a URL's query or a key=value string.
#[derive(Default)]
struct TlsParams {
    sslmode: Option<String>,
    sslrootcert: Option<String>,
}

impl TlsParams {
    /// The URL without the two parameters, and their values.
    fn take(url: &str) -> (String, TlsParams) {
        let mut params = TlsParams::default();
        let mut keep = |pair: &str| match pair.split_once('=') {
            Some(("sslmode", value)) => {
                params.sslmode = Some(value.to_string());
                false
            }
            Some(("sslrootcert", value)) => {
                params.sslrootcert = Some(value.to_string());
                false
            }
            _ => true,
        };
        let rest = if url.contains("://") {
            match url.split_once('?') {
                Some((base, query)) => {
                    let kept: Vec<&str> = query.split('&').filter(|p| keep(p)).collect();
                    if kept.is_empty() {
                        base.to_string()
                    } else {
                        format!("{base}?{}", kept.join("&"))
                    }
                }
                None => url.to_string(),
            }
        } else {
            url.split_whitespace()
                .filter(|p| keep(p))
                .collect::<Vec<_>>()
                .join(" ")
        };
        (rest, params)
    }
}

fn load_roots(path: &str) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| e.to_string())? {
        roots
            .add(cert.map_err(|e| e.to_string())?)
            .map_err(|e| format!("not a CA certificate: {e}"))?;
    }
    if roots.is_empty() {
        return Err("holds no PEM CERTIFICATE".into());
    }
    Ok(roots)
}

fn verifier(roots: RootCertStore) -> Result<Arc<WebPkiServerVerifier>, StoreError> {
    WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .map_err(|e| StoreError::storage("sslrootcert", e))
}

/// How much of the server's certificate is checked.
#[derive(Debug)]
enum Check {
    /// `prefer`, `require` without a CA: encryption against eavesdroppers, not impostors.
    Nothing,
    /// Signed by the CA; any host name (`verify-ca`, `require` with a CA).
    Chain(Arc<WebPkiServerVerifier>),
    /// Signed by the CA and issued for the host connected to (`verify-full`).
    Full(Arc<WebPkiServerVerifier>),
}

#[derive(Debug)]
struct Verifier {
    check: Check,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let (verifier, names_matter) = match &self.check {
            Check::Nothing => return Ok(ServerCertVerified::assertion()),
            Check::Chain(verifier) => (verifier, false),
            Check::Full(verifier) => (verifier, true),
        };
        match verifier.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !names_matter => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    // The handshake's signatures are checked in every mode: only the certificate's trust varies.
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// tokio-postgres's TLS hook, backed by tokio-rustls.
#[derive(Clone)]
pub(super) struct MakeRustls(Arc<ClientConfig>);

impl MakeTlsConnect<Socket> for MakeRustls {
    type Stream = RustlsStream;
    type TlsConnect = RustlsConnect;
    type Error = rustls::pki_types::InvalidDnsNameError;

    fn make_tls_connect(&mut self, host: &str) -> Result<RustlsConnect, Self::Error> {
        Ok(RustlsConnect {
            config: Arc::clone(&self.0),
            name: ServerName::try_from(host.to_string())?,
        })
    }
}

pub(super) struct RustlsConnect {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

impl TlsConnect<Socket> for RustlsConnect {
    type Stream = RustlsStream;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream>> + Send>>;

    fn connect(self, stream: Socket) -> Self::Future {
        Box::pin(async move {
            tokio_rustls::TlsConnector::from(self.config)
                .connect(self.name, stream)
                .await
                .map(RustlsStream)
        })
    }
}

pub(super) struct RustlsStream(tokio_rustls::client::TlsStream<Socket>);

impl tokio_postgres::tls::TlsStream for RustlsStream {
    /// No channel binding: SCRAM authenticates without it (tokio-postgres's default, `prefer`).
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

impl AsyncRead for RustlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for RustlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_settings_leave_the_url_and_a_typo_is_refused() {
        let (rest, params) = TlsParams::take(
            "postgres://app@db/events?sslmode=verify-full&options=-csearch_path%3Dx&sslrootcert=/etc/ca.pem",
        );
        assert_eq!(rest, "postgres://app@db/events?options=-csearch_path%3Dx");
        assert_eq!(params.sslmode.as_deref(), Some("verify-full"));
        assert_eq!(params.sslrootcert.as_deref(), Some("/etc/ca.pem"));
        let (rest, params) = TlsParams::take("host=db sslmode=require user=app");
        assert_eq!(rest, "host=db user=app");
        assert_eq!(params.sslmode.as_deref(), Some("require"));

        let error = |url: &str| {
            Database::parse(url)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(error("postgres://db/x?sslmode=verify_full").contains("use disable, prefer"));
        assert!(error("postgres://db/x?sslmode=verify-full").contains("needs sslrootcert=FILE"));
        assert!(
            error("postgres://db/x?sslmode=verify-ca&sslrootcert=/nonexistent")
                .contains("sslrootcert=/nonexistent")
        );
        assert!(Database::parse("postgres://db/x?sslmode=require").is_ok());
        assert!(Database::parse("postgres://db/x").is_ok());
    }
}
