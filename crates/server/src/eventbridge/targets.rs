//! Targets: PutTargets, ListTargetsByRule, RemoveTargets. Target `T` of rule `R` is the
//! subscription `R.T` on the rule's bus, whose destination is built from the target:
//!
//! - an API destination: its endpoint with the `*`s filled by `PathParameterValues`, its
//!   method, rate limit and connection, the target's header and query parameters;
//! - another bus of this server: a publish to that bus over the REST API (the loop guard of
//!   forwards applies);
//! - anything else (Lambda, SQS, another account's bus, …): kept so that existing definitions
//!   apply, but never invoked; its deliveries are dead letters `unsupported_target`.
//!
//! `Input`, `InputPath` and `InputTransformer` become the subscription's transform,
//! `RetryPolicy` its retry policy. The target is kept as put, so that ListTargetsByRule
//! answers it back unchanged.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use serde_json::{Value, json};
use switchyard_model::{SubscriptionSpec, parse_subscription_spec};
use switchyard_store::SubscriptionRecord;

use super::api_destinations::{self, ApiDestination};
use super::rules::{self, Rule};
use super::shapes::{Paging, check_name, parse, required, with_token};
use super::{Call, EbError, Resource, buses};

/// A rule has at most this many targets here (EventBridge: 5); protects the server, not a
/// quota of EventBridge's.
const MAX_TARGETS_PER_RULE: usize = 100;
/// Where an unsupported target's subscription points: a name that never resolves (RFC 2606),
/// though no request is ever made to it.
const UNSUPPORTED_URL: &str = "http://unsupported-target.invalid/";

/// What a path parameter or query value that is a constant must encode: everything but
/// unreserved characters, so that it stays one segment or one value.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Target {
    id: Option<String>,
    arn: Option<String>,
    input: Option<String>,
    input_path: Option<String>,
    input_transformer: Option<InputTransformer>,
    http_parameters: Option<HttpParameters>,
    retry_policy: Option<RetryPolicy>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InputTransformer {
    #[serde(default)]
    input_paths_map: BTreeMap<String, String>,
    input_template: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct HttpParameters {
    #[serde(default)]
    path_parameter_values: Vec<String>,
    #[serde(default)]
    header_parameters: BTreeMap<String, String>,
    #[serde(default)]
    query_string_parameters: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RetryPolicy {
    maximum_retry_attempts: Option<u32>,
    maximum_event_age_in_seconds: Option<u64>,
}

/// The `Arn` of the target a subscription stands for.
pub(super) fn arn_of(subscription: &SubscriptionRecord) -> Option<String> {
    let link = subscription.spec.eventbridge.as_ref()?;
    let target: Value = serde_json::from_str(link.target.get()).ok()?;
    target.get("Arn")?.as_str().map(str::to_string)
}

/// The name of target `id`'s subscription: `RULE.ID`, or, past the name limit, its start and
/// a hash of both, so that every pair has its own.
fn subscription_name(rule: &str, id: &str) -> String {
    let name = format!("{rule}.{id}");
    if name.len() <= 64 {
        return name;
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in rule.bytes().chain([0]).chain(id.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    let mut short: String = name.chars().take(64 - 17).collect();
    let _ = write!(short, ".{hash:016x}");
    short
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Put {
    rule: Option<String>,
    event_bus_name: Option<String>,
    targets: Option<Vec<Value>>,
}

pub(super) async fn put(call: Call<'_>) -> Result<Value, EbError> {
    let input: Put = parse(call.input.clone())?;
    let name = required(input.rule, "rule")?;
    let targets = required(input.targets, "targets")?;
    let bus = buses::find(&call, input.event_bus_name.as_deref())?.name;
    let rule = rules::find(&call, &bus, &name).await?;
    let new_ids: Vec<String> = targets
        .iter()
        .filter_map(|t| t.get("Id").and_then(Value::as_str).map(str::to_string))
        .filter(|id| !rule.targets.iter().any(|t| rules::target_id(t) == id))
        .collect();
    if rule.targets.len() + new_ids.len() > MAX_TARGETS_PER_RULE {
        return Err(EbError::limit_exceeded(format!(
            "a rule has at most {MAX_TARGETS_PER_RULE} targets here; rule {name} would have {}",
            rule.targets.len() + new_ids.len()
        )));
    }
    let mut failed = Vec::new();
    for raw in targets {
        let id = raw
            .get("Id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if let Err(error) = put_one(&call, &rule, raw).await {
            failed.push(
                json!({"TargetId": id, "ErrorCode": error.kind, "ErrorMessage": error.message}),
            );
        }
    }
    Ok(json!({"FailedEntryCount": failed.len(), "FailedEntries": failed}))
}

async fn put_one(call: &Call<'_>, rule: &Rule, raw: Value) -> Result<(), EbError> {
    let target: Target = parse(raw.clone())?;
    let id = required(target.id.clone(), "Id")?;
    check_name("Id", &id)?;
    let name = subscription_name(&rule.name, &id);
    if let Some(existing) = call
        .app
        .catalog()
        .bus(&rule.bus)
        .and_then(|index| index.subscription(&name).cloned())
    {
        let same = existing
            .spec
            .eventbridge
            .as_ref()
            .is_some_and(|l| l.rule == rule.name && l.target_id == id);
        if !same {
            return Err(EbError::validation(format!(
                "subscription {name:?} already exists on bus {} and is not this target; rename it or choose another Id",
                rule.bus
            )));
        }
    }
    let spec = spec_of(call, rule, &target, &raw).await?;
    call.app.put_subscription(&rule.bus, &name, spec).await?;
    Ok(())
}

/// The subscription a target is, written as a REST body and parsed by the REST parser, so
/// that both doors validate the same way.
async fn spec_of(
    call: &Call<'_>,
    rule: &Rule,
    target: &Target,
    raw: &Value,
) -> Result<SubscriptionSpec, EbError> {
    let arn = required(target.arn.clone(), "Arn")?;
    let id = target.id.clone().unwrap_or_default();
    let mut body = serde_json::Map::new();
    let mut unsupported = false;
    match call.arns().parse(&arn) {
        Some(Resource::ApiDestination(name)) => {
            let found = api_destinations::find(call, &name).await?;
            let parameters = target.http_parameters.as_ref();
            body.insert(
                "destination".into(),
                api_destination_json(&found.spec, parameters)?,
            );
            body.insert(
                "rate_limit_per_s".into(),
                json!(found.spec.rate_limit_per_s),
            );
        }
        Some(Resource::Bus(name)) => {
            if call.app.catalog().bus(&name).is_none() {
                return Err(EbError::not_found(format!(
                    "Event bus {name} does not exist."
                )));
            }
            // The identity token is the forward's credential when API tokens are configured
            // (the API takes it for this bus only: `api::forwarded_into`), and harmless without.
            body.insert(
                "destination".into(),
                json!({"url": call.app.config().bus_events_url(&name), "identity_token": {}}),
            );
        }
        _ => {
            unsupported = true;
            body.insert("destination".into(), json!({"url": UNSUPPORTED_URL}));
        }
    }
    if let Some(transform) = transform_json(target)? {
        body["destination"]["transform"] = transform;
    }
    if let Some(retry) = &target.retry_policy {
        let mut policy = serde_json::Map::new();
        if let Some(attempts) = retry.maximum_retry_attempts {
            if attempts > 185 {
                return Err(EbError::validation(
                    "RetryPolicy.MaximumRetryAttempts must be 0 to 185",
                ));
            }
            policy.insert("max_attempts".into(), json!(attempts + 1));
        }
        if let Some(age) = retry.maximum_event_age_in_seconds {
            if !(60..=86_400).contains(&age) {
                return Err(EbError::validation(
                    "RetryPolicy.MaximumEventAgeInSeconds must be 60 to 86400",
                ));
            }
            policy.insert("max_age_s".into(), json!(age));
        }
        body.insert("retry".into(), Value::Object(policy));
    }
    body.insert(
        "eventbridge".into(),
        json!({"rule": rule.name, "target_id": id, "target": raw, "unsupported": unsupported}),
    );
    let mut spec = parse_subscription_spec(&Value::Object(body).to_string())?;
    rules::apply(&rule.doc_now(), &mut spec)?;
    spec.validate()?;
    Ok(spec)
}

/// `Input`, `InputPath` or `InputTransformer` (at most one) as the destination's transform.
fn transform_json(target: &Target) -> Result<Option<Value>, EbError> {
    let given = [
        target.input.is_some(),
        target.input_path.is_some(),
        target.input_transformer.is_some(),
    ];
    if given.iter().filter(|g| **g).count() > 1 {
        return Err(EbError::validation(
            "a target takes only one of Input, InputPath and InputTransformer",
        ));
    }
    if let Some(input) = &target.input {
        return Ok(Some(json!({"input_template": input})));
    }
    if let Some(path) = &target.input_path {
        return Ok(Some(json!({"input_path": path})));
    }
    if let Some(transformer) = &target.input_transformer {
        let template = required(
            transformer.input_template.clone(),
            "InputTransformer.InputTemplate",
        )?;
        return Ok(Some(json!({
            "input_paths": transformer.input_paths_map,
            "input_template": template,
        })));
    }
    Ok(None)
}

/// A value of `HttpParameters`: a JSON path (`$.detail.id`) becomes a placeholder the
/// destination fills from each event; a constant is encoded in place.
fn parameter(value: &str, encode: bool) -> String {
    if value.starts_with("$.") || value == "$" {
        format!("{{{value}}}")
    } else if encode {
        utf8_percent_encode(value, COMPONENT).to_string()
    } else {
        value.to_string()
    }
}

/// The destination of a target that names an API destination.
fn api_destination_json(
    destination: &ApiDestination,
    parameters: Option<&HttpParameters>,
) -> Result<Value, EbError> {
    let empty = HttpParameters::default();
    let parameters = parameters.unwrap_or(&empty);
    // Braces are placeholders in a URL template; the endpoint's own are only text.
    let endpoint = destination.endpoint.replace('{', "%7B").replace('}', "%7D");
    let stars = endpoint.matches('*').count();
    if parameters.path_parameter_values.len() != stars {
        return Err(EbError::validation(format!(
            "the API destination's InvocationEndpoint has {stars} path parameter(s) (*); HttpParameters.PathParameterValues gives {}",
            parameters.path_parameter_values.len()
        )));
    }
    let mut url = String::with_capacity(endpoint.len());
    let mut values = parameters.path_parameter_values.iter();
    for (index, piece) in endpoint.split('*').enumerate() {
        if index > 0
            && let Some(value) = values.next()
        {
            url.push_str(&parameter(value, true));
        }
        url.push_str(piece);
    }
    for (key, value) in &parameters.query_string_parameters {
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&utf8_percent_encode(key, COMPONENT).to_string());
        url.push('=');
        url.push_str(&parameter(value, true));
    }
    let headers: BTreeMap<&String, String> = parameters
        .header_parameters
        .iter()
        .map(|(name, value)| (name, parameter(value, false)))
        .collect();
    Ok(json!({
        "url": url,
        "method": api_destinations::method_of(&destination.method)?,
        "headers": headers,
        "connection": destination.connection,
    }))
}

/// Rebuilds the targets of an API destination after it changed, so that they send where it
/// now says.
pub(super) async fn rebuild_for_api_destination(
    call: &Call<'_>,
    name: &str,
    destination: &ApiDestination,
) -> Result<(), EbError> {
    for subscription in users(call, name) {
        let Some(link) = subscription.spec.eventbridge.as_ref() else {
            continue;
        };
        let target: Target = parse(serde_json::from_str(link.target.get()).unwrap_or_default())?;
        let mut spec = subscription.spec.clone();
        let mut destination_json =
            api_destination_json(destination, target.http_parameters.as_ref())?;
        if let Some(transform) = transform_json(&target)? {
            destination_json["transform"] = transform;
        }
        spec.destination = serde_json::from_value(destination_json)
            .map_err(|e| EbError::validation(format!("the rebuilt destination: {e}")))?;
        spec.rate_limit_per_s = Some(destination.rate_limit_per_s);
        call.app
            .put_subscription(&subscription.bus, &subscription.name, spec)
            .await?;
    }
    Ok(())
}

fn users(call: &Call<'_>, name: &str) -> Vec<Arc<SubscriptionRecord>> {
    call.app
        .catalog()
        .all_subscriptions()
        .into_iter()
        .filter(|s| {
            arn_of(s).is_some_and(|arn| {
                call.arns().parse(&arn) == Some(Resource::ApiDestination(name.to_string()))
            })
        })
        .collect()
}

/// The rules and targets that send to an API destination, as `bus/rule.target`.
pub(super) fn users_of_api_destination(call: &Call<'_>, name: &str) -> Vec<String> {
    users(call, name)
        .iter()
        .map(|s| format!("{}/{}", s.bus, s.name))
        .collect()
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct List {
    rule: Option<String>,
    event_bus_name: Option<String>,
    #[serde(flatten)]
    paging: Paging,
}

pub(super) async fn list(call: Call<'_>) -> Result<Value, EbError> {
    let input: List = parse(call.input.clone())?;
    let name = required(input.rule, "rule")?;
    let bus = buses::find(&call, input.event_bus_name.as_deref())?.name;
    let rule = rules::find(&call, &bus, &name).await?;
    let mut targets = rule.targets;
    let token = input.paging.page(&mut targets, |t| rules::target_id(t))?;
    let items: Vec<Value> = targets
        .iter()
        .filter_map(|t| t.spec.eventbridge.as_ref())
        .filter_map(|link| serde_json::from_str(link.target.get()).ok())
        .collect();
    Ok(with_token(json!({"Targets": items}), token))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Remove {
    rule: Option<String>,
    event_bus_name: Option<String>,
    ids: Option<Vec<String>>,
}

pub(super) async fn remove(call: Call<'_>) -> Result<Value, EbError> {
    let input: Remove = parse(call.input.clone())?;
    let name = required(input.rule, "rule")?;
    let ids = required(input.ids, "ids")?;
    let bus = buses::find(&call, input.event_bus_name.as_deref())?.name;
    let rule = rules::find(&call, &bus, &name).await?;
    let mut failed = Vec::new();
    for id in ids {
        let Some(target) = rule.targets.iter().find(|t| rules::target_id(t) == id) else {
            // Removing a target that is not there succeeds, as in EventBridge.
            continue;
        };
        if let Err(error) = call.app.delete_subscription(&bus, &target.name).await {
            let error = EbError::from(error);
            failed.push(
                json!({"TargetId": id, "ErrorCode": error.kind, "ErrorMessage": error.message}),
            );
        }
    }
    Ok(json!({"FailedEntryCount": failed.len(), "FailedEntries": failed}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_rule_and_target_pair_gets_its_own_short_name() {
        assert_eq!(subscription_name("orders", "crm"), "orders.crm");
        let long = "r".repeat(60);
        let a = subscription_name(&long, "target-a");
        let b = subscription_name(&long, "target-b");
        assert_ne!(a, b);
        assert!(a.len() <= 64 && b.len() <= 64);
        assert!(switchyard_model::validate_name("subscription", &a).is_ok());
    }

    #[test]
    fn path_parameters_fill_the_stars_in_order_and_constants_stay_one_segment() {
        let destination = ApiDestination {
            connection: "c".into(),
            endpoint: "http://127.0.0.1:9/orders/*/items/*".into(),
            method: "POST".into(),
            rate_limit_per_s: 10,
            description: None,
        };
        let parameters = HttpParameters {
            path_parameter_values: vec!["$.detail.id".into(), "a/b c".into()],
            query_string_parameters: BTreeMap::from([("k".into(), "$.detail.k".into())]),
            ..HttpParameters::default()
        };
        let json = api_destination_json(&destination, Some(&parameters)).unwrap();
        assert_eq!(
            json["url"],
            "http://127.0.0.1:9/orders/{$.detail.id}/items/a%2Fb%20c?k={$.detail.k}"
        );
        let too_few = HttpParameters::default();
        assert!(api_destination_json(&destination, Some(&too_few)).is_err());
    }
}
