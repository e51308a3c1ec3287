//! Events: PutEvents and TestEventPattern. PutEvents is the REST publish with EventBridge's
//! names: each entry becomes the same event a REST publish of it would, grouped by bus through
//! the shared publish path, and the results go back in request order.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use switchyard_model::{ModelError, PublishContext, TraceContext, format_rfc3339_ms, now_ms};

use super::shapes::{ms_of, parse, required};
use super::{Call, EbError};
use crate::auth::Need;

/// PutEvents' own quota is 10 entries; switchyard takes as many as a REST publish does, within
/// the request and event size limits (docs/eventbridge.md).
const MAX_ENTRIES: usize = 500;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Put {
    entries: Option<Vec<Entry>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Entry {
    source: Option<String>,
    detail_type: Option<String>,
    detail: Option<String>,
    #[serde(default)]
    resources: Vec<String>,
    time: Option<f64>,
    event_bus_name: Option<String>,
    trace_header: Option<String>,
}

/// An entry's position in the request, and its event.
type Parsed = (usize, Result<switchyard_model::Event, ModelError>);

/// One entry's failure, as PutEvents reports it.
struct Failure {
    code: &'static str,
    message: String,
}

impl Failure {
    fn new(code: &'static str, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }
}

pub(super) async fn put(call: Call<'_>) -> Result<Value, EbError> {
    let input: Put = parse(call.input.clone())?;
    let entries = required(input.entries, "entries")?;
    if entries.is_empty() || entries.len() > MAX_ENTRIES {
        return Err(EbError::validation(format!(
            "Entries has {} entries; send 1 to {MAX_ENTRIES}",
            entries.len()
        )));
    }
    let ingested_ms = now_ms();
    let mut results: Vec<Option<Result<String, Failure>>> = Vec::with_capacity(entries.len());
    let mut by_bus: BTreeMap<String, Vec<Parsed>> = BTreeMap::new();
    for (position, entry) in entries.into_iter().enumerate() {
        match event_of(&call, entry, ingested_ms) {
            Ok((bus, event)) => {
                results.push(None);
                by_bus.entry(bus).or_default().push((position, event));
            }
            Err(failure) => results.push(Some(Err(failure))),
        }
    }
    for (bus, events) in by_bus {
        let (positions, events): (Vec<usize>, Vec<_>) = events.into_iter().unzip();
        let answers = if !call.caller.allows(&Need::Publish(bus.clone())) {
            let failure = || {
                Failure::new(
                    "AccessDeniedException",
                    format!("these credentials may not publish to event bus {bus}"),
                )
            };
            positions.iter().map(|_| Err(failure())).collect()
        } else if let Some(index) = call.app.catalog().bus(&bus) {
            crate::publish::publish(call.app, index, events)
                .await?
                .into_iter()
                .map(|answer| answer.map_err(|e| failure_of(&e)))
                .collect()
        } else {
            let failure = || {
                Failure::new(
                    "ResourceNotFoundException",
                    format!("Event bus {bus} does not exist."),
                )
            };
            positions.iter().map(|_| Err(failure())).collect::<Vec<_>>()
        };
        for (position, answer) in positions.into_iter().zip(answers) {
            results[position] = Some(answer);
        }
    }
    let failed = results.iter().filter(|r| matches!(r, Some(Err(_)))).count();
    let entries: Vec<Value> = results
        .into_iter()
        .map(|result| match result {
            Some(Ok(id)) => json!({"EventId": id}),
            Some(Err(failure)) => {
                json!({"ErrorCode": failure.code, "ErrorMessage": failure.message})
            }
            None => json!({"ErrorCode": "InternalException", "ErrorMessage": "not published"}),
        })
        .collect();
    Ok(json!({"FailedEntryCount": failed, "Entries": entries}))
}

fn failure_of(error: &ModelError) -> Failure {
    Failure::new("InvalidArgument", error.to_string())
}

/// An entry as the REST API's publish body.
#[derive(Serialize)]
struct RestEvent<'a> {
    source: &'a str,
    #[serde(rename = "detail-type")]
    detail_type: &'a str,
    detail: &'a serde_json::value::RawValue,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    resources: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    time: Option<String>,
}

/// The bus and the event an entry makes: the REST publish body of the same event, parsed by
/// the same parser.
fn event_of(
    call: &Call<'_>,
    entry: Entry,
    ingested_ms: u64,
) -> Result<(String, Result<switchyard_model::Event, ModelError>), Failure> {
    let bus = call
        .arns()
        .bus_name(entry.event_bus_name.as_deref())
        .map_err(|e| Failure::new("InvalidArgument", e.message))?;
    let source = entry.source.ok_or_else(|| {
        Failure::new(
            "InvalidArgument",
            "Parameter Source is not valid. Reason: Source is a required argument.",
        )
    })?;
    let detail_type = entry.detail_type.ok_or_else(|| {
        Failure::new(
            "InvalidArgument",
            "Parameter DetailType is not valid. Reason: DetailType is a required argument.",
        )
    })?;
    let detail = entry.detail.unwrap_or_else(|| "{}".to_string());
    let detail: &serde_json::value::RawValue = serde_json::from_str(&detail)
        .ok()
        .filter(|raw: &&serde_json::value::RawValue| raw.get().trim_start().starts_with('{'))
        .ok_or_else(|| {
            Failure::new(
                "MalformedDetail",
                "Detail is malformed: it must be a JSON object",
            )
        })?;
    let time = entry
        .time
        .map(|time| ms_of(time, "Time").map(format_rfc3339_ms))
        .transpose()
        .map_err(|e| Failure::new("InvalidArgument", e.message))?;
    // `detail` goes through as the publisher's JSON text, so numbers keep every digit, as
    // they do through the REST API.
    let body = RestEvent {
        source: &source,
        detail_type: &detail_type,
        detail,
        resources: &entry.resources,
        time,
    };
    let context = PublishContext {
        ingested_ms,
        max_event_bytes: call.app.config().max_event_bytes,
        hops: 0,
        trace: entry
            .trace_header
            .as_deref()
            .and_then(trace_of)
            .unwrap_or_else(TraceContext::new_root),
        aws: call.app.config().aws.clone(),
    };
    let text =
        serde_json::to_string(&body).map_err(|e| Failure::new("InvalidArgument", e.to_string()))?;
    let event = switchyard_model::parse_publish_request(&text, &context)
        .map(|request| request.entries.into_iter().next())
        .and_then(|event| {
            event.unwrap_or_else(|| Err(ModelError::Invalid("the entry made no event".into())))
        });
    Ok((bus, event))
}

/// An X-Ray trace header (`Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;
/// Sampled=1`) as a W3C trace context, so that attempts join the publisher's trace.
fn trace_of(header: &str) -> Option<TraceContext> {
    let mut root = None;
    let mut parent = None;
    let mut sampled = "00";
    for part in header.split(';') {
        match part.trim().split_once('=')? {
            ("Root", value) => {
                let mut pieces = value.split('-');
                let (version, time, id) = (pieces.next()?, pieces.next()?, pieces.next()?);
                if version != "1" || pieces.next().is_some() {
                    return None;
                }
                root = Some(format!("{time}{id}"));
            }
            ("Parent", value) => parent = Some(value.to_string()),
            ("Sampled", "1") => sampled = "01",
            _ => {}
        }
    }
    let traceparent = format!("00-{}-{}-{sampled}", root?, parent?);
    TraceContext::parse(&traceparent, None)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Test {
    event_pattern: Option<String>,
    event: Option<String>,
}

/// TestEventPattern: the matcher subscriptions use, on the event as given (EventBridge
/// requires its envelope fields; switchyard matches whatever JSON object it is given).
pub(super) async fn test_pattern(call: Call<'_>) -> Result<Value, EbError> {
    let input: Test = parse(call.input.clone())?;
    let pattern = required(input.event_pattern, "eventPattern")?;
    let event = required(input.event, "event")?;
    let bytes = pattern.len() + event.len();
    let result = call
        .app
        .cpu()
        .run(bytes, move || {
            let pattern = switchyard_pattern::Pattern::parse(&pattern).map_err(|e| {
                EbError::client(
                    "InvalidEventPatternException",
                    format!("Event pattern is not valid. Reason: {e}"),
                )
            })?;
            pattern
                .matches(&event)
                .map_err(|e| EbError::validation(format!("Parameter Event is not valid: {e}")))
        })
        .await?;
    Ok(json!({"Result": result}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_xray_trace_header_becomes_a_w3c_trace_context() {
        let trace =
            trace_of("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1")
                .unwrap();
        assert_eq!(trace.trace_id(), "5759e988bd862e3fe1be46a994272793");
        assert!(trace_of("Root=2-x-y;Parent=1").is_none());
        assert!(trace_of("garbage").is_none());
    }
}
