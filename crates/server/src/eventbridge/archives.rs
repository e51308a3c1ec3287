//! Archives and replays: Create/Describe/List/Update/DeleteArchive, StartReplay,
//! DescribeReplay, ListReplays, CancelReplay. An EventBridge archive is a switchyard archive of
//! the bus in its `EventSourceArn`; archive names are unique across buses here, as they are
//! account-wide in EventBridge. A replay is a switchyard replay: `Destination.FilterArns`
//! (rules) becomes the replay's subscriptions, the rules' targets.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};
use switchyard_model::{ArchiveSpec, ReplaySpec};
use switchyard_store::ArchiveRecord;

use super::shapes::{Paging, check_name, epoch_s, ms_of, parse, required, with_token};
use super::{Call, EbError, Resource};
use crate::replay::{ReplayRecord, ReplayState};

/// The archive of that name on whichever bus holds it, or `ResourceNotFoundException`.
pub(super) fn find(call: &Call<'_>, name: &str) -> Result<Arc<ArchiveRecord>, EbError> {
    all(call)
        .into_iter()
        .find(|a| a.name == name)
        .ok_or_else(|| EbError::not_found(format!("Archive {name} does not exist.")))
}

fn all(call: &Call<'_>) -> Vec<Arc<ArchiveRecord>> {
    call.app
        .catalog()
        .buses()
        .iter()
        .flat_map(|bus| bus.archives().cloned().collect::<Vec<_>>())
        .collect()
}

/// The bus an `EventSourceArn` names, which must exist.
fn bus_of(call: &Call<'_>, arn: &str) -> Result<String, EbError> {
    match call.arns().parse(arn) {
        Some(Resource::Bus(name)) if call.app.catalog().bus(&name).is_some() => Ok(name),
        Some(Resource::Bus(name)) => Err(EbError::not_found(format!(
            "Event bus {name} does not exist."
        ))),
        _ => Err(EbError::validation(format!(
            "EventSourceArn {arn:?} is not an event bus ARN of this server"
        ))),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Input {
    archive_name: Option<String>,
    event_source_arn: Option<String>,
    event_pattern: Option<String>,
    retention_days: Option<f64>,
    description: Option<String>,
}

fn spec_of(input: &Input, current: Option<&ArchiveSpec>) -> Result<ArchiveSpec, EbError> {
    let pattern = match &input.event_pattern {
        Some(text) if !text.trim().is_empty() => {
            switchyard_pattern::Pattern::parse(text).map_err(|e| {
                EbError::client(
                    "InvalidEventPatternException",
                    format!("Event pattern is not valid. Reason: {e}"),
                )
            })?;
            Some(
                serde_json::value::RawValue::from_string(text.clone())
                    .map_err(|e| EbError::client("InvalidEventPatternException", e.to_string()))?,
            )
        }
        Some(_) => None,
        None => current.and_then(|c| c.pattern.clone()),
    };
    let retention_days = input
        .retention_days
        .or(current.map(|c| c.retention_days))
        .unwrap_or(0.0);
    let description = input
        .description
        .clone()
        .or_else(|| current.and_then(|c| c.description.clone()));
    let spec = ArchiveSpec {
        pattern,
        retention_days,
        description,
    };
    let text = serde_json::to_string(&spec).map_err(|e| EbError::validation(e.to_string()))?;
    switchyard_model::parse_archive_spec(&text).map_err(EbError::from)
}

fn short_answer(call: &Call<'_>, archive: &ArchiveRecord) -> Value {
    json!({
        "ArchiveArn": call.arns().archive(&archive.name),
        "State": "ENABLED",
        "CreationTime": epoch_s(archive.created_ms),
    })
}

async fn view(call: &Call<'_>, archive: &ArchiveRecord) -> Result<Value, EbError> {
    let stats = call.app.archive_stats(archive.id).await?;
    let mut view = short_answer(call, archive);
    view["ArchiveName"] = json!(archive.name);
    view["EventSourceArn"] = json!(call.arns().bus(&archive.bus));
    view["RetentionDays"] = json!(archive.spec.retention_days.ceil() as u64);
    view["EventCount"] = json!(stats.events);
    view["SizeBytes"] = json!(stats.bytes);
    if let Some(pattern) = &archive.spec.pattern {
        view["EventPattern"] = json!(pattern.get());
    }
    if let Some(description) = &archive.spec.description {
        view["Description"] = json!(description);
    }
    Ok(view)
}

pub(super) async fn create(call: Call<'_>) -> Result<Value, EbError> {
    let input: Input = parse(call.input.clone())?;
    let name = required(input.archive_name.clone(), "archiveName")?;
    check_name("ArchiveName", &name)?;
    let bus = bus_of(
        &call,
        &required(input.event_source_arn.clone(), "eventSourceArn")?,
    )?;
    if find(&call, &name).is_ok() {
        return Err(EbError::already_exists(format!(
            "Archive {name} already exists."
        )));
    }
    let spec = spec_of(&input, None)?;
    let (record, _) = call.app.put_archive(&bus, &name, spec).await?;
    Ok(short_answer(&call, &record))
}

pub(super) async fn update(call: Call<'_>) -> Result<Value, EbError> {
    let input: Input = parse(call.input.clone())?;
    let name = required(input.archive_name.clone(), "archiveName")?;
    let current = find(&call, &name)?;
    let spec = spec_of(&input, Some(&current.spec))?;
    let (record, _) = call.app.put_archive(&current.bus, &name, spec).await?;
    Ok(short_answer(&call, &record))
}

pub(super) async fn describe(call: Call<'_>) -> Result<Value, EbError> {
    let input: Input = parse(call.input.clone())?;
    let archive = find(&call, &required(input.archive_name, "archiveName")?)?;
    view(&call, &archive).await
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct List {
    name_prefix: Option<String>,
    event_source_arn: Option<String>,
    state: Option<String>,
    #[serde(flatten)]
    paging: Paging,
}

pub(super) async fn list(call: Call<'_>) -> Result<Value, EbError> {
    let input: List = parse(call.input.clone())?;
    let prefix = input.name_prefix.clone().unwrap_or_default();
    let bus = input
        .event_source_arn
        .as_deref()
        .map(|arn| bus_of(&call, arn))
        .transpose()?;
    let mut archives: Vec<Arc<ArchiveRecord>> = all(&call)
        .into_iter()
        .filter(|a| a.name.starts_with(&prefix))
        .filter(|a| bus.as_ref().is_none_or(|b| *b == a.bus))
        .filter(|_| input.state.as_deref().is_none_or(|s| s == "ENABLED"))
        .collect();
    let token = input.paging.page(&mut archives, |a| &a.name)?;
    let mut items = Vec::with_capacity(archives.len());
    for archive in &archives {
        items.push(view(&call, archive).await?);
    }
    Ok(with_token(json!({"Archives": items}), token))
}

pub(super) async fn delete(call: Call<'_>) -> Result<Value, EbError> {
    let input: Input = parse(call.input.clone())?;
    let archive = find(&call, &required(input.archive_name, "archiveName")?)?;
    call.app.delete_archive(&archive.bus, &archive.name).await?;
    super::tags::forget(&call, &call.arns().archive(&archive.name)).await?;
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Start {
    replay_name: Option<String>,
    event_source_arn: Option<String>,
    event_start_time: Option<f64>,
    event_end_time: Option<f64>,
    destination: Option<Destination>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Destination {
    arn: Option<String>,
    #[serde(default)]
    filter_arns: Vec<String>,
}

/// StartReplay: the archive's events from `EventStartTime` up to `EventEndTime` go again to
/// the rules of `FilterArns` (every rule of the bus when none).
pub(super) async fn start_replay(call: Call<'_>) -> Result<Value, EbError> {
    let input: Start = parse(call.input.clone())?;
    let name = required(input.replay_name, "replayName")?;
    check_name("ReplayName", &name)?;
    let source = required(input.event_source_arn, "eventSourceArn")?;
    let archive = match call.arns().parse(&source) {
        Some(Resource::Archive(archive)) => find(&call, &archive)?,
        _ => {
            return Err(EbError::validation(format!(
                "EventSourceArn {source:?} is not an archive ARN of this server"
            )));
        }
    };
    let from_ms = ms_of(
        required(input.event_start_time, "eventStartTime")?,
        "EventStartTime",
    )?;
    let to_ms = ms_of(
        required(input.event_end_time, "eventEndTime")?,
        "EventEndTime",
    )?;
    if to_ms <= from_ms {
        return Err(EbError::validation(
            "EventEndTime must be after EventStartTime",
        ));
    }
    let destination = required(input.destination, "destination")?;
    let target_bus = call.arns().bus_name(destination.arn.as_deref())?;
    if target_bus != archive.bus {
        return Err(EbError::validation(format!(
            "Destination.Arn must be the archive's own event bus ({})",
            call.arns().bus(&archive.bus)
        )));
    }
    let subscriptions = if destination.filter_arns.is_empty() {
        None
    } else {
        let mut names = Vec::new();
        for arn in &destination.filter_arns {
            match call.arns().parse(arn) {
                Some(Resource::Rule { bus, name }) if bus == archive.bus => {
                    super::rules::find(&call, &bus, &name).await?;
                    names.extend(
                        super::rules::targets_of(&call, &bus, &name)
                            .iter()
                            .map(|t| t.name.clone()),
                    );
                }
                _ => {
                    return Err(EbError::validation(format!(
                        "Destination.FilterArns: {arn:?} is not a rule ARN of the archive's bus"
                    )));
                }
            }
        }
        Some(names)
    };
    if subscriptions.as_ref().is_some_and(Vec::is_empty) {
        return Err(EbError::validation(
            "Destination.FilterArns names rules without targets: nothing would be replayed",
        ));
    }
    let spec = ReplaySpec {
        name,
        bus: archive.bus.clone(),
        archive: archive.name.clone(),
        from_ms,
        to_ms,
        subscriptions,
    };
    let record = call.app.start_replay(spec).await?;
    Ok(json!({
        "ReplayArn": call.arns().replay(&record.spec.name),
        "State": state(&record),
        "ReplayStartTime": epoch_s(record.started_ms),
    }))
}

fn state(record: &ReplayRecord) -> &'static str {
    match record.state {
        ReplayState::Running => "RUNNING",
        ReplayState::Completed => "COMPLETED",
        ReplayState::Cancelled => "CANCELLED",
        ReplayState::Failed => "FAILED",
    }
}

fn replay_view(call: &Call<'_>, record: &ReplayRecord) -> Value {
    let spec = &record.spec;
    let mut view = json!({
        "ReplayName": spec.name,
        "ReplayArn": call.arns().replay(&spec.name),
        "State": state(record),
        "EventSourceArn": call.arns().archive(&spec.archive),
        "Destination": {"Arn": call.arns().bus(&spec.bus)},
        "EventStartTime": epoch_s(spec.from_ms),
        "EventEndTime": epoch_s(spec.to_ms),
        "ReplayStartTime": epoch_s(record.started_ms),
    });
    if let Some(cursor) = &record.cursor {
        view["EventLastReplayedTime"] = epoch_s(cursor.ingested_ms);
    }
    if let Some(finished) = record.finished_ms {
        view["ReplayEndTime"] = epoch_s(finished);
    }
    if let Some(error) = &record.error {
        view["StateReason"] = json!(error);
    }
    view
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Named {
    replay_name: Option<String>,
}

pub(super) async fn describe_replay(call: Call<'_>) -> Result<Value, EbError> {
    let input: Named = parse(call.input.clone())?;
    let record = call
        .app
        .get_replay(&required(input.replay_name, "replayName")?)
        .await?;
    Ok(replay_view(&call, &record))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListReplays {
    name_prefix: Option<String>,
    state: Option<String>,
    event_source_arn: Option<String>,
    #[serde(flatten)]
    paging: Paging,
}

pub(super) async fn list_replays(call: Call<'_>) -> Result<Value, EbError> {
    let input: ListReplays = parse(call.input.clone())?;
    let prefix = input.name_prefix.clone().unwrap_or_default();
    let archive = match input
        .event_source_arn
        .as_deref()
        .map(|arn| call.arns().parse(arn))
    {
        None => None,
        Some(Some(Resource::Archive(name))) => Some(name),
        Some(_) => return Err(EbError::validation("EventSourceArn is not an archive ARN")),
    };
    let mut replays: Vec<ReplayRecord> = call
        .app
        .list_replays()
        .await?
        .into_iter()
        .filter(|r| r.spec.name.starts_with(&prefix))
        .filter(|r| input.state.as_deref().is_none_or(|s| s == state(r)))
        .filter(|r| archive.as_ref().is_none_or(|a| *a == r.spec.archive))
        .collect();
    let token = input.paging.page(&mut replays, |r| &r.spec.name)?;
    let items: Vec<Value> = replays.iter().map(|r| replay_view(&call, r)).collect();
    Ok(with_token(json!({"Replays": items}), token))
}

pub(super) async fn cancel_replay(call: Call<'_>) -> Result<Value, EbError> {
    let input: Named = parse(call.input.clone())?;
    let name = required(input.replay_name, "replayName")?;
    let current = call.app.get_replay(&name).await?;
    if !matches!(current.state, ReplayState::Running) {
        return Err(EbError::client(
            "IllegalStatusException",
            format!(
                "Replay {name} is {} and cannot be cancelled.",
                state(&current)
            ),
        ));
    }
    let record = call.app.cancel_replay(&name).await?;
    Ok(json!({"ReplayArn": call.arns().replay(&name), "State": state(&record)}))
}
