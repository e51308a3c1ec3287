//! Connections as the dispatcher uses them: each with its OAuth access token cache and, with a
//! client certificate, its own HTTP client.
//!
//! A connection's secrets stay sealed in memory too; they are opened for each attempt (so that a
//! rotated `file:` secret is picked up) and dropped with it. An OAuth token is fetched once,
//! shared by every delivery that uses the connection, kept until shortly before it expires, and
//! fetched again once when a destination answers 401 to it. The client that presents a client
//! certificate is built on first use and again when the certificate or key (a rotated file)
//! changes; it holds the key for as long as it pools connections.
//!
//! Must not: keep an opened secret past the attempt that needed it, or fetch a token from an
//! address the destination policy refuses.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use switchyard_destination::oauth2::{AccessToken, parse_token_response};
use switchyard_destination::{ConnectionAuth, ConnectionSpec};
use switchyard_secrets::{Keyring, Secret};

use crate::address::AddressPolicy;
use crate::attempt::transport_error;
use crate::{DeliveryError, DispatchError, ErrorKind};

/// One connection: its sealed configuration and the token fetched for it.
pub struct LiveConnection {
    /// The connection as stored, secrets still sealed; resolved again for each attempt.
    pub(crate) spec: ConnectionSpec,
    /// One fetch at a time: concurrent attempts wait for the same token instead of each asking.
    token: tokio::sync::Mutex<Option<AccessToken>>,
    /// The client presenting the client certificate, with the PEM it was built from.
    client: std::sync::Mutex<Option<(Secret, reqwest::Client)>>,
}

impl LiveConnection {
    /// A connection with no token fetched and no client built yet: both come at first use.
    pub fn new(spec: ConnectionSpec) -> LiveConnection {
        LiveConnection {
            spec,
            token: tokio::sync::Mutex::new(None),
            client: std::sync::Mutex::new(None),
        }
    }

    /// The client that presents `identity` (the resolved certificate and key), built once for
    /// each identity; `shared` when the connection has no client certificate.
    pub(crate) fn client(
        &self,
        identity: Option<&Secret>,
        shared: &reqwest::Client,
        policy: &Arc<AddressPolicy>,
    ) -> Result<reqwest::Client, DeliveryError> {
        let Some(identity) = identity else {
            return Ok(shared.clone());
        };
        let mut cached = self.client.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((built_from, client)) = cached.as_ref()
            && built_from == identity
        {
            return Ok(client.clone());
        }
        let client = identity_client(identity, policy)
            .map_err(|e| failure(ErrorKind::InvalidDestination, &e.to_string()))?;
        *cached = Some((identity.clone(), client.clone()));
        Ok(client)
    }

    /// The access token for an `oauth2_client_credentials` connection, from the cache unless it
    /// is due for refresh or `stale` (the one the destination just refused).
    pub(crate) async fn access_token(
        &self,
        client: &reqwest::Client,
        policy: &AddressPolicy,
        keyring: &Arc<Keyring>,
        stale: Option<&Secret>,
    ) -> Result<Secret, DeliveryError> {
        let Some(ConnectionAuth::OAuth2ClientCredentials(oauth)) = &self.spec.auth else {
            return Err(failure(
                ErrorKind::InvalidDestination,
                "the connection does not use OAuth",
            ));
        };
        let now_s = switchyard_model::now_ms() / 1000;
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref() {
            let refused = stale.is_some_and(|s| *s == token.token);
            if token.is_fresh(now_s) && !refused {
                return Ok(token.token.clone());
            }
        }
        let request = crate::attempt::off_runtime_if(oauth.client_secret.is_file(), keyring, {
            let oauth = oauth.clone();
            move |keyring| oauth.token_request(keyring)
        })
        .await
        .map_err(|e| {
            failure(
                ErrorKind::InvalidDestination,
                &format!("OAuth client secret: {e}"),
            )
        })?;
        // Checked at each fetch, not only when the connection was written: the policy may have
        // changed since, and a connection loaded from the store was never checked by this node.
        let url = reqwest::Url::parse(&request.url)
            .map_err(|e| e.to_string())
            .and_then(|url| {
                policy
                    .check_url(&url)
                    .map(|()| url)
                    .map_err(|e| e.to_string())
            })
            .map_err(|e| {
                failure(
                    ErrorKind::InvalidDestination,
                    &format!("OAuth token_url: {e}"),
                )
            })?;
        let mut post = client.post(url).timeout(Duration::from_secs(30));
        for header in &request.headers {
            post = post.header(header.name.as_str(), header.value.as_str());
        }
        let response = post
            .body(request.body().to_vec())
            .send()
            .await
            .map_err(|e| {
                let error = transport_error(e);
                failure(
                    error.kind,
                    &format!("OAuth token endpoint: {}", error.message),
                )
            })?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(|e| {
            failure(
                ErrorKind::Connection,
                &format!("OAuth token endpoint: {}", e.without_url()),
            )
        })?;
        // A refused client is a configuration error; a failing endpoint may recover.
        let token = parse_token_response(status, &body, now_s).map_err(|e| {
            let kind = if (400..500).contains(&status) {
                ErrorKind::InvalidDestination
            } else {
                ErrorKind::Connection
            };
            failure(kind, &request.redact(&format!("OAuth token: {e}")))
        })?;
        let secret = token.token.clone();
        *cached = Some(token);
        Ok(secret)
    }
}

/// A client presenting the certificate chain and key in `pem`.
pub(crate) fn identity_client(
    pem: &Secret,
    policy: &Arc<AddressPolicy>,
) -> Result<reqwest::Client, DispatchError> {
    let identity = reqwest::Identity::from_pem(pem.expose().as_bytes())
        .map_err(|e| DispatchError::ClientCertificate(switchyard_model::error_chain(&e)))?;
    crate::http_client(policy, Some(identity)).map_err(|e| {
        let mismatch = std::iter::successors(std::error::Error::source(&e), |e| e.source())
            .any(|cause| {
                matches!(
                    cause.downcast_ref::<rustls::Error>(),
                    Some(rustls::Error::InconsistentKeys(_))
                )
            });
        DispatchError::ClientCertificate(if mismatch {
            "the key is not the certificate's own; give the private key the certificate was issued for".into()
        } else {
            switchyard_model::error_chain(&e)
        })
    })
}

fn failure(kind: ErrorKind, message: &str) -> DeliveryError {
    DeliveryError {
        kind,
        message: message.to_string(),
    }
}

/// Every connection by name; the server keeps it in step with the store.
#[derive(Default)]
pub struct Connections {
    map: RwLock<HashMap<String, Arc<LiveConnection>>>,
}

impl Connections {
    /// The connection of this name, or `None` when it does not exist (or is not loaded yet).
    pub fn get(&self, name: &str) -> Option<Arc<LiveConnection>> {
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// Replaces a connection; its cached token goes with the old definition.
    pub fn insert(&self, name: &str, connection: LiveConnection) {
        self.map
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), Arc::new(connection));
    }

    /// Forgets a deleted connection with its cached token and client.
    pub fn remove(&self, name: &str) {
        self.map
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
    }

    /// The names of the loaded connections, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        names.sort();
        names
    }
}
