//! Event buses: CreateEventBus, DescribeEventBus, ListEventBuses, UpdateEventBus,
//! DeleteEventBus. An EventBridge bus is a switchyard bus of the same name.

use serde::Deserialize;
use serde_json::{Value, json};
use switchyard_model::BusSpec;
use switchyard_store::BusRecord;

use super::shapes::{Named, Paging, Tag, check_name, epoch_s, parse, required, with_token};
use super::{Call, DEFAULT_BUS, EbError, tags};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Create {
    name: Option<String>,
    description: Option<String>,
    event_source_name: Option<String>,
    #[serde(default)]
    tags: Vec<Tag>,
}

pub(super) async fn create(call: Call<'_>) -> Result<Value, EbError> {
    let input: Create = parse(call.input.clone())?;
    let name = required(input.name, "name")?;
    check_name("Name", &name)?;
    if input.event_source_name.is_some() {
        return Err(EbError::validation(
            "EventSourceName: partner event sources do not exist here; create the bus without one",
        ));
    }
    if call.app.catalog().bus(&name).is_some() {
        return Err(EbError::already_exists(format!(
            "event bus {name} already exists"
        )));
    }
    let arn = call.arns().bus(&name);
    tags::put_initial(&call, &arn, input.tags).await?;
    let spec = BusSpec {
        description: input.description.clone(),
    };
    call.app.put_bus(&name, spec).await?;
    let mut answer = json!({"EventBusArn": arn});
    if let Some(description) = input.description {
        answer["Description"] = json!(description);
    }
    Ok(answer)
}

/// The bus a request names (by name or ARN; `default` when it names none), which must exist.
pub(super) fn find(call: &Call<'_>, given: Option<&str>) -> Result<BusRecord, EbError> {
    let name = call.arns().bus_name(given)?;
    call.app
        .catalog()
        .bus(&name)
        .map(|index| index.record.clone())
        .ok_or_else(|| EbError::not_found(format!("Event bus {name} does not exist.")))
}

pub(super) async fn describe(call: Call<'_>) -> Result<Value, EbError> {
    let input: Named = parse(call.input.clone())?;
    let bus = find(&call, input.name.as_deref())?;
    Ok(view(&call, &bus))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct List {
    name_prefix: Option<String>,
    #[serde(flatten)]
    paging: Paging,
}

pub(super) async fn list(call: Call<'_>) -> Result<Value, EbError> {
    let input: List = parse(call.input.clone())?;
    let prefix = input.name_prefix.unwrap_or_default();
    let mut buses: Vec<BusRecord> = call
        .app
        .catalog()
        .buses()
        .into_iter()
        .map(|index| index.record.clone())
        .filter(|bus| bus.name.starts_with(&prefix))
        .collect();
    let token = input.paging.page(&mut buses, |bus| &bus.name)?;
    let items: Vec<Value> = buses.iter().map(|bus| view(&call, bus)).collect();
    Ok(with_token(json!({"EventBuses": items}), token))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Update {
    name: Option<String>,
    description: Option<String>,
}

pub(super) async fn update(call: Call<'_>) -> Result<Value, EbError> {
    let input: Update = parse(call.input.clone())?;
    let bus = find(&call, input.name.as_deref())?;
    let spec = BusSpec {
        description: input.description.or(bus.spec.description),
    };
    let (record, _) = call.app.put_bus(&bus.name, spec).await?;
    let mut answer = json!({"Arn": call.arns().bus(&record.name), "Name": record.name});
    if let Some(description) = &record.spec.description {
        answer["Description"] = json!(description);
    }
    Ok(answer)
}

pub(super) async fn delete(call: Call<'_>) -> Result<Value, EbError> {
    let input: Named = parse(call.input.clone())?;
    let name = call.arns().bus_name(Some(&required(input.name, "name")?))?;
    if name == DEFAULT_BUS {
        return Err(EbError::validation(
            "Cannot delete event bus default: every account's default bus always exists",
        ));
    }
    let Some(index) = call.app.catalog().bus(&name) else {
        // As in EventBridge, deleting a bus that is not there succeeds.
        return Ok(json!({}));
    };
    if let Some(subscription) = index.subscriptions().next() {
        return Err(EbError::validation(format!(
            "event bus {name} still has subscription {:?}; remove its rules and targets first",
            subscription.name
        )));
    }
    call.app.delete_bus(&name, true).await?;
    tags::forget(&call, &call.arns().bus(&name)).await?;
    Ok(json!({}))
}

fn view(call: &Call<'_>, bus: &BusRecord) -> Value {
    let mut view = json!({
        "Name": bus.name,
        "Arn": call.arns().bus(&bus.name),
        "CreationTime": epoch_s(bus.created_ms),
        "LastModifiedTime": epoch_s(bus.updated_ms),
    });
    if let Some(description) = &bus.spec.description {
        view["Description"] = json!(description);
    }
    view
}

/// The default bus exists for every EventBridge caller: made on the first call that needs it,
/// through the same operation as any bus, so that the REST API sees it too.
pub(super) async fn ensure_default(call: &Call<'_>) -> Result<(), EbError> {
    if call.app.catalog().bus(DEFAULT_BUS).is_none() {
        call.app.put_bus(DEFAULT_BUS, BusSpec::default()).await?;
    }
    Ok(())
}
