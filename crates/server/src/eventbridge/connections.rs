//! Connections: CreateConnection, DescribeConnection, ListConnections, UpdateConnection,
//! DeleteConnection, DeauthorizeConnection. An EventBridge connection is a switchyard
//! connection of the same name, written through the same parser and operation as a REST `PUT
//! /v1/connections/{name}`: secrets are sealed before they are stored and never answered.
//!
//! | EventBridge `AuthParameters` | switchyard `auth` |
//! |---|---|
//! | `BasicAuthParameters{Username, Password}` | `basic` |
//! | `ApiKeyAuthParameters{ApiKeyName, ApiKeyValue}` | `api_key` (the name is the header) |
//! | `OAuthParameters{AuthorizationEndpoint, HttpMethod: POST, ClientParameters}` | `oauth2_client_credentials` |
//! | `InvocationHttpParameters{HeaderParameters, QueryStringParameters, BodyParameters}` | `headers`, `query`, `body` (`IsValueSecret` values sealed) |

use serde::Deserialize;
use serde_json::{Map, Value, json};
use switchyard_destination::parse_connection_spec;
use switchyard_store::{DocumentKind, DocumentRecord};

use super::shapes::{Named, Paging, check_name, epoch_s, parse, required, with_token};
use super::{Call, EbError};

/// The connection of that name, or `ResourceNotFoundException`.
pub(super) async fn find(call: &Call<'_>, name: &str) -> Result<DocumentRecord, EbError> {
    call.app
        .documents(DocumentKind::Connection)
        .await?
        .into_iter()
        .find(|d| d.name == name)
        .ok_or_else(|| EbError::not_found(format!("Connection '{name}' does not exist.")))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct Input {
    name: Option<String>,
    description: Option<String>,
    authorization_type: Option<String>,
    auth_parameters: Option<AuthParameters>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct AuthParameters {
    basic_auth_parameters: Option<Basic>,
    api_key_auth_parameters: Option<ApiKey>,
    #[serde(rename = "OAuthParameters")]
    oauth_parameters: Option<OAuth>,
    invocation_http_parameters: Option<HttpParameters>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Basic {
    username: Option<String>,
    password: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ApiKey {
    api_key_name: Option<String>,
    api_key_value: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct OAuth {
    authorization_endpoint: Option<String>,
    http_method: Option<String>,
    client_parameters: Option<ClientParameters>,
    #[serde(rename = "OAuthHttpParameters")]
    oauth_http_parameters: Option<HttpParameters>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ClientParameters {
    #[serde(rename = "ClientID")]
    client_id: Option<String>,
    client_secret: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct HttpParameters {
    #[serde(default)]
    header_parameters: Vec<Parameter>,
    #[serde(default)]
    query_string_parameters: Vec<Parameter>,
    #[serde(default)]
    body_parameters: Vec<Parameter>,
}

impl HttpParameters {
    fn is_empty(&self) -> bool {
        self.header_parameters.is_empty()
            && self.query_string_parameters.is_empty()
            && self.body_parameters.is_empty()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Parameter {
    key: Option<String>,
    value: Option<String>,
    #[serde(default)]
    is_value_secret: bool,
}

/// A secret as EventBridge takes it: the value itself. switchyard reads `file:` and `sealed:`
/// texts as references, so such a value is refused rather than read as one.
fn secret(value: Option<String>, member: &str) -> Result<Value, EbError> {
    let value = required(value, member)?;
    if value.starts_with("file:") || value.starts_with("sealed:") {
        return Err(EbError::validation(format!(
            "{member} starts with file: or sealed:, which switchyard would read as a reference: put such a secret in a file and give it as a file: reference through the REST API (docs/secrets.md)"
        )));
    }
    Ok(json!(value))
}

/// The `auth` of a request's `AuthParameters`, `None` when it gives none.
fn auth_json(kind: &str, parameters: &AuthParameters) -> Result<Option<Value>, EbError> {
    let missing = |what: &str| {
        EbError::validation(format!(
            "AuthorizationType {kind} needs AuthParameters.{what}"
        ))
    };
    match kind {
        "BASIC" => {
            let Some(basic) = &parameters.basic_auth_parameters else {
                return Ok(None);
            };
            Ok(Some(json!({
                "type": "basic",
                "username": required(basic.username.clone(), "Username")?,
                "password": secret(basic.password.clone(), "Password")?,
            })))
        }
        "API_KEY" => {
            let Some(key) = &parameters.api_key_auth_parameters else {
                return Ok(None);
            };
            Ok(Some(json!({
                "type": "api_key",
                "header": required(key.api_key_name.clone(), "ApiKeyName")?,
                "value": secret(key.api_key_value.clone(), "ApiKeyValue")?,
            })))
        }
        "OAUTH_CLIENT_CREDENTIALS" => {
            let Some(oauth) = &parameters.oauth_parameters else {
                return Ok(None);
            };
            if oauth
                .http_method
                .as_deref()
                .is_some_and(|m| !m.eq_ignore_ascii_case("POST"))
            {
                return Err(EbError::validation(
                    "OAuthParameters.HttpMethod: switchyard asks for tokens with POST (RFC 6749 §4.4) only",
                ));
            }
            if oauth
                .oauth_http_parameters
                .as_ref()
                .is_some_and(|p| !p.is_empty())
            {
                return Err(EbError::validation(
                    "OAuthParameters.OAuthHttpParameters are not supported: the token request carries the client credentials only",
                ));
            }
            let client = oauth
                .client_parameters
                .as_ref()
                .ok_or_else(|| missing("OAuthParameters.ClientParameters"))?;
            Ok(Some(json!({
                "type": "oauth2_client_credentials",
                "token_url": required(oauth.authorization_endpoint.clone(), "AuthorizationEndpoint")?,
                "client_id": required(client.client_id.clone(), "ClientID")?,
                "client_secret": secret(client.client_secret.clone(), "ClientSecret")?,
            })))
        }
        other => Err(EbError::validation(format!(
            "AuthorizationType {other:?} is not one of BASIC, API_KEY, OAUTH_CLIENT_CREDENTIALS"
        ))),
    }
}

/// `InvocationHttpParameters` as the connection's headers, query parameters and body members.
fn apply_invocation(
    body: &mut Map<String, Value>,
    parameters: &HttpParameters,
) -> Result<(), EbError> {
    for (field, list) in [
        ("headers", &parameters.header_parameters),
        ("query", &parameters.query_string_parameters),
        ("body", &parameters.body_parameters),
    ] {
        let mut map = Map::new();
        for parameter in list {
            let key = required(parameter.key.clone(), "Key")?;
            let value = if parameter.is_value_secret {
                json!({"secret": secret(parameter.value.clone(), "Value")?})
            } else {
                json!(required(parameter.value.clone(), "Value")?)
            };
            map.insert(key, value);
        }
        body.insert(field.into(), Value::Object(map));
    }
    Ok(())
}

/// The authorization type of a stored connection: its auth's, or what DeauthorizeConnection
/// remembered.
async fn authorization_type(
    call: &Call<'_>,
    record: &DocumentRecord,
    body: &Value,
) -> Option<String> {
    let kind = match body["auth"]["type"].as_str() {
        Some("basic") => Some("BASIC"),
        Some("api_key") => Some("API_KEY"),
        Some("oauth2_client_credentials") => Some("OAUTH_CLIENT_CREDENTIALS"),
        _ => None,
    };
    if let Some(kind) = kind {
        return Some(kind.to_string());
    }
    let remembered = call
        .app
        .documents(DocumentKind::EventBridgeConnection)
        .await
        .ok()?
        .into_iter()
        .find(|d| d.name == record.name)?;
    serde_json::from_str::<Value>(&remembered.body).ok()?["authorization_type"]
        .as_str()
        .map(str::to_string)
}

fn state(body: &Value) -> &'static str {
    if body.get("auth").is_some_and(|a| !a.is_null()) {
        "AUTHORIZED"
    } else {
        "DEAUTHORIZED"
    }
}

fn stored(record: &DocumentRecord) -> Value {
    serde_json::from_str(&record.body).unwrap_or(Value::Null)
}

fn short_answer(call: &Call<'_>, record: &DocumentRecord) -> Value {
    let body = stored(record);
    json!({
        "ConnectionArn": call.arns().connection(&record.name, record.created_ms),
        "ConnectionState": state(&body),
        "CreationTime": epoch_s(record.created_ms),
        "LastModifiedTime": epoch_s(record.updated_ms),
        "LastAuthorizedTime": epoch_s(record.updated_ms),
    })
}

/// Describe's answer: everything but the secrets.
async fn view(call: &Call<'_>, record: &DocumentRecord) -> Value {
    let body = stored(record);
    let mut view = short_answer(call, record);
    view["Name"] = json!(record.name);
    if let Some(description) = body["description"].as_str() {
        view["Description"] = json!(description);
    }
    if let Some(kind) = authorization_type(call, record, &body).await {
        view["AuthorizationType"] = json!(kind);
    }
    let auth = &body["auth"];
    let mut parameters = Map::new();
    match auth["type"].as_str() {
        Some("basic") => {
            parameters.insert(
                "BasicAuthParameters".into(),
                json!({"Username": auth["username"]}),
            );
        }
        Some("api_key") => {
            parameters.insert(
                "ApiKeyAuthParameters".into(),
                json!({"ApiKeyName": auth["header"]}),
            );
        }
        Some("oauth2_client_credentials") => {
            parameters.insert(
                "OAuthParameters".into(),
                json!({
                    "AuthorizationEndpoint": auth["token_url"],
                    "HttpMethod": "POST",
                    "ClientParameters": {"ClientID": auth["client_id"]},
                }),
            );
        }
        _ => {}
    }
    let listed = |field: &str| -> Vec<Value> {
        body[field]
            .as_object()
            .map(|map| {
                map.iter()
                    .map(|(key, value)| match value.as_str() {
                        Some(text) => json!({"Key": key, "Value": text, "IsValueSecret": false}),
                        None => json!({"Key": key, "IsValueSecret": true}),
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let (headers, query, body_members) = (listed("headers"), listed("query"), listed("body"));
    if !headers.is_empty() || !query.is_empty() || !body_members.is_empty() {
        parameters.insert(
            "InvocationHttpParameters".into(),
            json!({"HeaderParameters": headers, "QueryStringParameters": query, "BodyParameters": body_members}),
        );
    }
    view["AuthParameters"] = Value::Object(parameters);
    view
}

/// Writes a connection from its JSON body through the REST API's parser and operation.
async fn put(
    call: &Call<'_>,
    name: &str,
    body: Map<String, Value>,
) -> Result<DocumentRecord, EbError> {
    let spec = parse_connection_spec(&Value::Object(body).to_string())
        .map_err(|e| EbError::validation(e.to_string()))?;
    let (record, _) = call.app.put_connection(name, spec).await?;
    Ok(record)
}

pub(super) async fn create(call: Call<'_>) -> Result<Value, EbError> {
    let input: Input = parse(call.input.clone())?;
    let name = required(input.name, "name")?;
    check_name("Name", &name)?;
    if find(&call, &name).await.is_ok() {
        return Err(EbError::already_exists(format!(
            "Connection {name} already exists."
        )));
    }
    let kind = required(input.authorization_type, "authorizationType")?;
    let parameters = required(input.auth_parameters, "authParameters")?;
    let auth = auth_json(&kind, &parameters)?.ok_or_else(|| {
        EbError::validation(format!("AuthorizationType {kind} needs its AuthParameters"))
    })?;
    let mut body = Map::new();
    body.insert("auth".into(), auth);
    if let Some(description) = input.description {
        body.insert("description".into(), json!(description));
    }
    if let Some(invocation) = &parameters.invocation_http_parameters {
        apply_invocation(&mut body, invocation)?;
    }
    let record = put(&call, &name, body).await?;
    Ok(short_answer(&call, &record))
}

pub(super) async fn update(call: Call<'_>) -> Result<Value, EbError> {
    let input: Input = parse(call.input.clone())?;
    let name = required(input.name, "name")?;
    let current = find(&call, &name).await?;
    // The stored body keeps secrets sealed; sealed texts parse back as themselves, so what the
    // update does not give stays as it was.
    let mut body = match stored(&current) {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    let parameters = input.auth_parameters.unwrap_or_default();
    let kind = match input.authorization_type {
        Some(kind) => Some(kind),
        None => authorization_type(&call, &current, &Value::Object(body.clone())).await,
    };
    if let Some(kind) = kind
        && let Some(auth) = auth_json(&kind, &parameters)?
    {
        body.insert("auth".into(), auth);
    }
    if let Some(description) = input.description {
        body.insert("description".into(), json!(description));
    }
    if let Some(invocation) = &parameters.invocation_http_parameters {
        apply_invocation(&mut body, invocation)?;
    }
    let record = put(&call, &name, body).await?;
    Ok(short_answer(&call, &record))
}

pub(super) async fn describe(call: Call<'_>) -> Result<Value, EbError> {
    let input: Named = parse(call.input.clone())?;
    let record = find(&call, &required(input.name, "name")?).await?;
    Ok(view(&call, &record).await)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct List {
    name_prefix: Option<String>,
    connection_state: Option<String>,
    #[serde(flatten)]
    paging: Paging,
}

pub(super) async fn list(call: Call<'_>) -> Result<Value, EbError> {
    let input: List = parse(call.input.clone())?;
    let prefix = input.name_prefix.unwrap_or_default();
    let mut records: Vec<DocumentRecord> = call
        .app
        .documents(DocumentKind::Connection)
        .await?
        .into_iter()
        .filter(|r| r.name.starts_with(&prefix))
        .filter(|r| {
            input
                .connection_state
                .as_deref()
                .is_none_or(|wanted| state(&stored(r)) == wanted)
        })
        .collect();
    let token = input.paging.page(&mut records, |r| &r.name)?;
    let mut items = Vec::with_capacity(records.len());
    for record in &records {
        let mut item = view(&call, record).await;
        if let Some(object) = item.as_object_mut() {
            object.remove("AuthParameters");
            object.remove("Description");
        }
        items.push(item);
    }
    Ok(with_token(json!({"Connections": items}), token))
}

pub(super) async fn delete(call: Call<'_>) -> Result<Value, EbError> {
    let input: Named = parse(call.input.clone())?;
    let name = required(input.name, "name")?;
    let record = find(&call, &name).await?;
    let users: Vec<String> = super::api_destinations::all(&call)
        .await?
        .into_iter()
        .filter(|d| d.spec.connection == name)
        .map(|d| d.name)
        .collect();
    if !users.is_empty() {
        return Err(EbError::client(
            "ConcurrentModificationException",
            format!(
                "connection {name} is used by API destination(s) {}; delete them first",
                users.join(", ")
            ),
        ));
    }
    let mut answer = short_answer(&call, &record);
    call.app.delete_connection(&name).await?;
    call.forget(DocumentKind::EventBridgeConnection, &name)
        .await?;
    super::tags::forget(&call, &call.arns().connection(&name, record.created_ms)).await?;
    answer["ConnectionState"] = json!("DELETING");
    Ok(answer)
}

/// DeauthorizeConnection: the credentials are dropped (attempts then go out without them, and
/// fail as the receiver decides, as in EventBridge); the type is remembered for Describe.
pub(super) async fn deauthorize(call: Call<'_>) -> Result<Value, EbError> {
    let input: Named = parse(call.input.clone())?;
    let name = required(input.name, "name")?;
    let current = find(&call, &name).await?;
    let mut body = match stored(&current) {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    if let Some(kind) = authorization_type(&call, &current, &Value::Object(body.clone())).await {
        call.app
            .put_document(
                DocumentKind::EventBridgeConnection,
                &name,
                json!({"authorization_type": kind}).to_string(),
            )
            .await?;
    }
    body.remove("auth");
    let record = put(&call, &name, body).await?;
    Ok(short_answer(&call, &record))
}
