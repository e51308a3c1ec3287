//! One HTTP attempt of one delivery, and nothing else: render the request (format, templates,
//! transform, signature: `switchyard-destination`), send it, classify the answer. Deciding what
//! the answer means for the delivery is [`crate::policy`]'s job.
//!
//! Must not: put a secret in an error. A rendered URL may carry secret query values, so transport
//! errors never quote it.

use std::time::Duration;

use std::sync::Arc;

use reqwest::header::HeaderValue;
use switchyard_destination::{
    Attempt, Credentials, Destination, Identity, IdentityKey, ResolvedConnection, render,
};
use switchyard_model::{now, now_ms};
use switchyard_secrets::{Keyring, Secret};
use switchyard_store::{PendingDelivery, SubscriptionRecord};

use crate::address::{AddressPolicy, AddressRefused};
use crate::otlp::SpanExporter;
use crate::outbound::Outbound;
use crate::{Connections, DeliveryError, ErrorKind};

/// Bytes of a failed answer's body kept for the dead letter and logs: enough to see the
/// receiver's error message, too little to copy a large payload around.
const EXCERPT_BYTES: usize = 256;
/// Bytes of a failed answer's body searched for the request's credentials before the excerpt is
/// cut from it: more than the excerpt, so a credential that starts inside the excerpt is found
/// whole.
const REDACT_WINDOW_BYTES: usize = 4 * 1024;
/// Bytes of an answer's body read at most; reading drains the connection for reuse, and the cap
/// keeps a receiver that streams forever from holding the attempt open.
const MAX_DRAIN_BYTES: usize = 64 * 1024;

/// What every attempt shares, whichever lane makes it.
pub(crate) struct Context {
    pub(crate) client: reqwest::Client,
    /// Opens sealed signing secrets and connection credentials at attempt time, and reads the
    /// `file:` ones its policy allows.
    pub(crate) keyring: Arc<Keyring>,
    pub(crate) connections: Connections,
    /// Bounds the sockets every attempt of every lane may hold at once.
    pub(crate) outbound: Outbound,
    pub(crate) policy: Arc<AddressPolicy>,
    /// Signs identity tokens, with the issuer (switchyard's public URL).
    pub(crate) identity: Option<Arc<IdentitySigner>>,
    /// Exports attempt spans, when an OTLP endpoint is configured.
    pub(crate) spans: Option<SpanExporter>,
}

/// switchyard's identity-token key and the issuer its tokens name. (`IdentityKey`'s Debug shows
/// only its key id.)
#[derive(Debug)]
pub struct IdentitySigner {
    /// The key tokens are signed with; its public half is served at `/.well-known/jwks.json`.
    pub key: IdentityKey,
    /// The tokens' `iss`: switchyard's public base URL, under which receivers find
    /// `/.well-known/jwks.json` to verify them.
    pub issuer: String,
}

/// Sends the delivery's next attempt. Ok is the 2xx status. With an OAuth connection, a 401
/// fetches a new token and tries once more within the same attempt: the token, not the
/// delivery, was what failed.
pub(crate) async fn send(
    context: &Context,
    subscription: &SubscriptionRecord,
    delivery: &PendingDelivery,
    span_id: &str,
) -> Result<u16, DeliveryError> {
    // A pull subscription has no lane, so this is a push subscription, which validation gave
    // a destination; a record that lacks one anyway is refused, not retried.
    let destination = subscription
        .spec
        .destination
        .as_ref()
        .ok_or_else(|| invalid("the subscription has no destination to push to".to_string()))?;
    let connection = match &destination.connection {
        Some(name) => Some(
            context
                .connections
                .get(name)
                .ok_or_else(|| invalid(format!("connection {name:?} does not exist")))?,
        ),
        None => None,
    };
    let resolved = match &connection {
        Some(live) => {
            let resolved = off_runtime_if(live.spec.reads_files(), &context.keyring, {
                let live = Arc::clone(live);
                move |keyring| live.spec.resolve(keyring)
            })
            .await;
            Some(resolved.map_err(|e| invalid(format!("connection credentials: {e}")))?)
        }
        None => None,
    };
    let client = match &connection {
        Some(live) => live.client(
            resolved.as_ref().and_then(|r| r.client_identity()),
            &context.client,
            &context.policy,
        )?,
        None => context.client.clone(),
    };
    let oauth = resolved.as_ref().is_some_and(|r| r.needs_access_token());
    let mut token = None;
    if let (true, Some(live)) = (oauth, &connection) {
        token = Some(
            live.access_token(&client, &context.policy, &context.keyring, None)
                .await?,
        );
    }
    let first = send_once(
        context,
        &client,
        subscription,
        delivery,
        span_id,
        resolved.as_ref(),
        token.as_ref(),
    )
    .await;
    match (&first, &connection) {
        (Err(e), Some(live)) if oauth && e.status() == Some(401) => {
            let fresh = live
                .access_token(&client, &context.policy, &context.keyring, token.as_ref())
                .await?;
            send_once(
                context,
                &client,
                subscription,
                delivery,
                span_id,
                resolved.as_ref(),
                Some(&fresh),
            )
            .await
        }
        _ => first,
    }
}

async fn send_once(
    context: &Context,
    client: &reqwest::Client,
    subscription: &SubscriptionRecord,
    delivery: &PendingDelivery,
    span_id: &str,
    connection: Option<&ResolvedConnection>,
    access_token: Option<&Secret>,
) -> Result<u16, DeliveryError> {
    let destination = destination_of(subscription)?;
    // Resolved at each attempt, so that a rotated `file:` secret is picked up without a restart.
    let signing = match &destination.signing {
        Some(spec) => off_runtime_if(spec.reads_files(), &context.keyring, {
            let spec = spec.clone();
            move |keyring| spec.resolve(keyring)
        })
        .await
        .map_err(|e| invalid(format!("signing secrets: {e}")))?,
        None => Vec::new(),
    };
    let attempt = Attempt {
        envelope: &delivery.event.envelope,
        bus: &subscription.bus,
        subscription: &subscription.name,
        rule: subscription
            .spec
            .eventbridge
            .as_ref()
            .map_or(&subscription.name, |link| &link.rule),
        attempt: delivery.attempts + 1,
        ingested_ms: delivery.event.ingested_ms,
        now_s: now_ms() / 1000,
    };
    let identity = match (&destination.identity_token, &context.identity) {
        (None, _) => None,
        (Some(_), Some(signer)) => Some(Identity {
            key: &signer.key,
            issuer: &signer.issuer,
        }),
        (Some(_), None) => {
            return Err(invalid(
                "identity tokens are not configured on this server".into(),
            ));
        }
    };
    let credentials = Credentials {
        connection,
        access_token,
        signing: &signing,
        identity,
    };
    let mut rendered =
        render(destination, &attempt, &credentials).map_err(|e| invalid(e.to_string()))?;
    let url = reqwest::Url::parse(&rendered.url).map_err(|e| invalid(format!("url: {e}")))?;
    context
        .policy
        .check_url(&url)
        .map_err(|e| invalid(e.to_string()))?;
    let method = reqwest::Method::from_bytes(rendered.method.as_str().as_bytes())
        .map_err(|e| invalid(format!("method: {e}")))?;
    let mut request = client
        .request(method, url)
        .timeout(Duration::from_millis(destination.timeout_ms));
    for header in &rendered.headers {
        let mut value = HeaderValue::from_str(&header.value).map_err(|_| {
            invalid(format!(
                "header {:?} has a value that cannot be sent",
                header.name
            ))
        })?;
        value.set_sensitive(header.sensitive);
        request = request.header(header.name.as_str(), value);
    }
    if let Some(key) = &delivery.event.ordering_key {
        request = request.header("switchyard-ordering-key", key.as_str());
    }
    if let Some(tracestate) = &delivery.event.trace.tracestate {
        request = request.header("tracestate", tracestate.as_str());
    }
    let request = request
        .header("switchyard-hops", (delivery.event.hops + 1).to_string())
        .header(
            "traceparent",
            delivery.event.trace.child_traceparent(span_id),
        )
        .body(std::mem::take(&mut rendered.body));
    let mut response = request.send().await.map_err(transport_error)?;
    let status = response.status().as_u16();
    let retry_after_ms = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after_ms);
    let mut excerpt = Vec::new();
    let mut read = 0usize;
    while read < MAX_DRAIN_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                read += chunk.len();
                let room = REDACT_WINDOW_BYTES.saturating_sub(excerpt.len());
                excerpt.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) => break,
            // The status is known; a body cut short does not change it.
            Err(e) if e.is_timeout() => {
                return Err(DeliveryError {
                    kind: ErrorKind::Timeout,
                    message: "timed out reading the response".into(),
                });
            }
            Err(_) => break,
        }
    }
    if (200..300).contains(&status) {
        return Ok(status);
    }
    let body = rendered.redact(&String::from_utf8_lossy(&excerpt));
    let body = truncate(body.trim(), EXCERPT_BYTES);
    let message = if body.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {body}")
    };
    Err(DeliveryError {
        kind: ErrorKind::Status {
            status,
            retry_after_ms,
        },
        message,
    })
}

/// Runs `resolve` on the blocking pool when it reads files, so that a slow file system never
/// stalls the runtime's workers (and with them every other lane); inline when it only opens
/// sealed values, which is pure computation.
pub(crate) async fn off_runtime_if<T: Send + 'static, E: Send + 'static>(
    reads_files: bool,
    keyring: &Arc<Keyring>,
    resolve: impl FnOnce(&Keyring) -> Result<T, E> + Send + 'static,
) -> Result<T, E> {
    if !reads_files {
        return resolve(keyring);
    }
    let keyring = Arc::clone(keyring);
    match tokio::task::spawn_blocking(move || resolve(&keyring)).await {
        Ok(result) => result,
        Err(panic) => std::panic::resume_unwind(panic.into_panic()),
    }
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// A pull subscription has no lane, so an attempt's subscription is a push one, which validation
/// gave a destination; a record that lacks one anyway is refused, not retried.
fn destination_of(subscription: &SubscriptionRecord) -> Result<&Destination, DeliveryError> {
    subscription
        .spec
        .destination
        .as_ref()
        .ok_or_else(|| invalid("the subscription has no destination to push to".to_string()))
}

fn invalid(message: String) -> DeliveryError {
    DeliveryError {
        kind: ErrorKind::InvalidDestination,
        message,
    }
}

/// Never quotes the URL: a rendered one may hold secret query values.
pub(crate) fn transport_error(error: reqwest::Error) -> DeliveryError {
    let error = error.without_url();
    let refused = std::iter::successors(std::error::Error::source(&error), |e| e.source())
        .any(|cause| cause.downcast_ref::<AddressRefused>().is_some());
    let kind = if refused {
        ErrorKind::InvalidDestination
    } else if error.is_timeout() {
        ErrorKind::Timeout
    } else if error.is_builder() {
        ErrorKind::InvalidDestination
    } else {
        ErrorKind::Connection
    };
    // The top-level message is generic ("error sending request"); the causes say what failed.
    let mut message = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    DeliveryError { kind, message }
}

/// `Retry-After` as delay-seconds or an HTTP-date (RFC 9110 §10.2.3).
pub(crate) fn parse_retry_after_ms(value: &str) -> Option<u64> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(seconds.saturating_mul(1000));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(now())
            .map_or(0, |d| d.as_millis() as u64),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        assert_eq!(parse_retry_after_ms("3"), Some(3_000));
        assert_eq!(parse_retry_after_ms(" 0 "), Some(0));
        assert_eq!(
            parse_retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(0)
        );
        let later = httpdate::fmt_http_date(switchyard_model::now() + Duration::from_secs(120));
        let ms = parse_retry_after_ms(&later).unwrap();
        assert!((100_000..=120_000).contains(&ms), "{ms}");
        assert_eq!(parse_retry_after_ms("soon"), None);
        assert_eq!(parse_retry_after_ms("-1"), None);
    }
}
