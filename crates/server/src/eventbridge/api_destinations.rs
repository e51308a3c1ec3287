//! API destinations: Create/Describe/List/Update/DeleteApiDestination. An API destination is a
//! destination template (endpoint with `*` path parameters, method, rate limit, connection)
//! kept in an `EventBridgeApiDestination` document; every target that names it is a
//! subscription whose destination is built from it (`targets`), rebuilt when it changes.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use switchyard_store::{DocumentKind, DocumentRecord};

use super::shapes::{Named, Paging, check_name, epoch_s, parse, required, with_token};
use super::{Call, EbError, Resource};

/// EventBridge's default `InvocationRateLimitPerSecond`.
const DEFAULT_RATE_PER_S: u32 = 300;
const MAX_ENDPOINT_LEN: usize = 2048;

/// What is stored for one API destination.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct ApiDestination {
    pub(super) connection: String,
    /// `https://api.example.com/orders/*`: each `*` is filled by a target's
    /// `PathParameterValues`, in order.
    pub(super) endpoint: String,
    pub(super) method: String,
    pub(super) rate_limit_per_s: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) description: Option<String>,
}

/// One stored API destination with its document's times.
pub(super) struct Found {
    pub(super) name: String,
    pub(super) spec: ApiDestination,
    pub(super) record: DocumentRecord,
}

fn decode(record: DocumentRecord) -> Result<Found, EbError> {
    let spec = serde_json::from_str(&record.body).map_err(|e| {
        EbError::from(switchyard_store::StoreError::Corrupt {
            table: "documents",
            detail: format!("API destination {}: {e}", record.name),
        })
    })?;
    Ok(Found {
        name: record.name.clone(),
        spec,
        record,
    })
}

pub(super) async fn all(call: &Call<'_>) -> Result<Vec<Found>, EbError> {
    call.app
        .documents(DocumentKind::EventBridgeApiDestination)
        .await?
        .into_iter()
        .map(decode)
        .collect()
}

pub(super) async fn find(call: &Call<'_>, name: &str) -> Result<Found, EbError> {
    all(call)
        .await?
        .into_iter()
        .find(|found| found.name == name)
        .ok_or_else(|| EbError::not_found(format!("Failed to describe the api-destination(s). An api-destination '{name}' does not exist.")))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Input {
    name: Option<String>,
    description: Option<String>,
    connection_arn: Option<String>,
    invocation_endpoint: Option<String>,
    http_method: Option<String>,
    invocation_rate_limit_per_second: Option<i64>,
}

impl Input {
    /// The document this request makes, on top of `current` for an update.
    async fn spec(
        &self,
        call: &Call<'_>,
        current: Option<&ApiDestination>,
    ) -> Result<ApiDestination, EbError> {
        let connection = match (&self.connection_arn, current) {
            (Some(arn), _) => match call.arns().parse(arn) {
                Some(Resource::Connection(name)) => {
                    super::connections::find(call, &name).await?;
                    name
                }
                _ => {
                    return Err(EbError::validation(format!(
                        "ConnectionArn {arn:?} is not a connection ARN of this server"
                    )));
                }
            },
            (None, Some(current)) => current.connection.clone(),
            (None, None) => required(None, "connectionArn")?,
        };
        let endpoint = match (&self.invocation_endpoint, current) {
            (Some(endpoint), _) => endpoint.clone(),
            (None, Some(current)) => current.endpoint.clone(),
            (None, None) => required(None, "invocationEndpoint")?,
        };
        check_endpoint(&endpoint)?;
        let method = match (&self.http_method, current) {
            (Some(method), _) => method.to_ascii_uppercase(),
            (None, Some(current)) => current.method.clone(),
            (None, None) => required(None, "httpMethod")?,
        };
        method_of(&method)?;
        let rate_limit_per_s = match (self.invocation_rate_limit_per_second, current) {
            (Some(rate), _) if (1..=300).contains(&rate) => rate as u32,
            (Some(rate), _) => {
                return Err(EbError::validation(format!(
                    "InvocationRateLimitPerSecond must be 1 to 300, not {rate}"
                )));
            }
            (None, Some(current)) => current.rate_limit_per_s,
            (None, None) => DEFAULT_RATE_PER_S,
        };
        let description = self
            .description
            .clone()
            .or_else(|| current.and_then(|c| c.description.clone()));
        switchyard_model::validate_description(description.as_deref())?;
        Ok(ApiDestination {
            connection,
            endpoint,
            method,
            rate_limit_per_s,
            description,
        })
    }
}

fn check_endpoint(endpoint: &str) -> Result<(), EbError> {
    let probe = endpoint.replace('*', "x");
    let valid = endpoint.len() <= MAX_ENDPOINT_LEN
        && url::Url::parse(&probe).is_ok_and(|url| matches!(url.scheme(), "https" | "http"));
    if valid {
        Ok(())
    } else {
        Err(EbError::validation(format!(
            "InvocationEndpoint {endpoint:?} must be an http(s) URL of at most {MAX_ENDPOINT_LEN} characters, with * for path parameters"
        )))
    }
}

/// The destination method of an API destination's `HttpMethod`.
pub(super) fn method_of(method: &str) -> Result<&'static str, EbError> {
    match method {
        "POST" => Ok("POST"),
        "PUT" => Ok("PUT"),
        "PATCH" => Ok("PATCH"),
        "GET" => Ok("GET"),
        "DELETE" => Ok("DELETE"),
        other => Err(EbError::validation(format!(
            "HttpMethod {other:?} is not one switchyard sends: use POST, PUT, PATCH, GET or DELETE"
        ))),
    }
}

async fn store(call: &Call<'_>, name: &str, spec: &ApiDestination) -> Result<Found, EbError> {
    let body = serde_json::to_string(spec).map_err(|e| EbError::validation(e.to_string()))?;
    let (record, _) = call
        .app
        .put_document(DocumentKind::EventBridgeApiDestination, name, body)
        .await?;
    decode(record)
}

fn short_answer(call: &Call<'_>, found: &Found) -> Value {
    json!({
        "ApiDestinationArn": call.arns().api_destination(&found.name, found.record.created_ms),
        "ApiDestinationState": "ACTIVE",
        "CreationTime": epoch_s(found.record.created_ms),
        "LastModifiedTime": epoch_s(found.record.updated_ms),
    })
}

/// Describe's answer. `connections` are the stored connections, read once per call: the
/// connection's ARN carries its creation time.
fn view(call: &Call<'_>, found: &Found, connections: &[DocumentRecord]) -> Value {
    let mut view = short_answer(call, found);
    view["Name"] = json!(found.name);
    if let Some(connection) = connections.iter().find(|c| c.name == found.spec.connection) {
        view["ConnectionArn"] = json!(
            call.arns()
                .connection(&connection.name, connection.created_ms)
        );
    }
    view["InvocationEndpoint"] = json!(found.spec.endpoint);
    view["HttpMethod"] = json!(found.spec.method);
    view["InvocationRateLimitPerSecond"] = json!(found.spec.rate_limit_per_s);
    if let Some(description) = &found.spec.description {
        view["Description"] = json!(description);
    }
    view
}

pub(super) async fn create(call: Call<'_>) -> Result<Value, EbError> {
    let input: Input = parse(call.input.clone())?;
    let name = required(input.name.clone(), "name")?;
    check_name("Name", &name)?;
    if find(&call, &name).await.is_ok() {
        return Err(EbError::already_exists(format!(
            "api-destination {name} already exists"
        )));
    }
    let spec = input.spec(&call, None).await?;
    let found = store(&call, &name, &spec).await?;
    Ok(short_answer(&call, &found))
}

pub(super) async fn update(call: Call<'_>) -> Result<Value, EbError> {
    let input: Input = parse(call.input.clone())?;
    let name = required(input.name.clone(), "name")?;
    let current = find(&call, &name).await?;
    let spec = input.spec(&call, Some(&current.spec)).await?;
    // Targets first: a refused rebuild (an endpoint the address policy denies, say) changes
    // nothing, and the document never says what the targets do not do.
    super::targets::rebuild_for_api_destination(&call, &name, &spec).await?;
    let found = store(&call, &name, &spec).await?;
    Ok(short_answer(&call, &found))
}

pub(super) async fn describe(call: Call<'_>) -> Result<Value, EbError> {
    let input: Named = parse(call.input.clone())?;
    let found = find(&call, &required(input.name, "name")?).await?;
    let connections = call.app.documents(DocumentKind::Connection).await?;
    Ok(view(&call, &found, &connections))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct List {
    name_prefix: Option<String>,
    connection_arn: Option<String>,
    #[serde(flatten)]
    paging: Paging,
}

pub(super) async fn list(call: Call<'_>) -> Result<Value, EbError> {
    let input: List = parse(call.input.clone())?;
    let prefix = input.name_prefix.unwrap_or_default();
    let connection = match &input.connection_arn {
        None => None,
        Some(arn) => match call.arns().parse(arn) {
            Some(Resource::Connection(name)) => Some(name),
            _ => {
                return Err(EbError::validation(format!(
                    "ConnectionArn {arn:?} is not a connection ARN"
                )));
            }
        },
    };
    let mut found: Vec<Found> = all(&call)
        .await?
        .into_iter()
        .filter(|f| f.name.starts_with(&prefix))
        .filter(|f| connection.as_ref().is_none_or(|c| *c == f.spec.connection))
        .collect();
    let token = input.paging.page(&mut found, |f| &f.name)?;
    let connections = call.app.documents(DocumentKind::Connection).await?;
    let items: Vec<Value> = found.iter().map(|f| view(&call, f, &connections)).collect();
    Ok(with_token(json!({"ApiDestinations": items}), token))
}

pub(super) async fn delete(call: Call<'_>) -> Result<Value, EbError> {
    let input: Named = parse(call.input.clone())?;
    let name = required(input.name, "name")?;
    let found = find(&call, &name).await?;
    let users = super::targets::users_of_api_destination(&call, &name);
    if !users.is_empty() {
        return Err(EbError::client(
            "ConcurrentModificationException",
            format!(
                "api-destination {name} is the target of {}; remove those targets first",
                users.join(", ")
            ),
        ));
    }
    call.app
        .delete_document(DocumentKind::EventBridgeApiDestination, &name)
        .await?;
    super::tags::forget(
        &call,
        &call.arns().api_destination(&name, found.record.created_ms),
    )
    .await?;
    Ok(json!({}))
}
