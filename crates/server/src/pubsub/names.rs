//! Pub/Sub's resource names and switchyard's: `projects/P/topics/T` is bus `T`, and
//! `projects/P/subscriptions/S` the subscription `S` of its topic's bus. The project is the
//! caller's to name (emulator clients use any); switchyard is one project namespace, and answers
//! name the project the caller used.

use std::sync::Arc;

use switchyard_model::validate_name;
use switchyard_store::SubscriptionRecord;
use tonic::Status;

use crate::App;
use crate::catalog::BusIndex;

/// A parsed `projects/{project}/{collection}/{id}`.
pub(crate) struct Name {
    pub(crate) project: String,
    pub(crate) id: String,
}

fn parse(name: &str, collection: &str, what: &str) -> Result<Name, Status> {
    let parts: Vec<&str> = name.split('/').collect();
    let ["projects", project, kind, id] = parts.as_slice() else {
        return Err(Status::invalid_argument(format!(
            "{what} name {name:?} is not projects/PROJECT/{collection}/ID"
        )));
    };
    if *kind != collection || project.is_empty() {
        return Err(Status::invalid_argument(format!(
            "{what} name {name:?} is not projects/PROJECT/{collection}/ID"
        )));
    }
    validate_name(what, id).map_err(|e| Status::invalid_argument(e.to_string()))?;
    Ok(Name {
        project: (*project).to_string(),
        id: (*id).to_string(),
    })
}

pub(crate) fn topic(name: &str) -> Result<Name, Status> {
    parse(name, "topics", "topic")
}

pub(crate) fn subscription(name: &str) -> Result<Name, Status> {
    parse(name, "subscriptions", "subscription")
}

/// `projects/{project}`, as List calls take it.
pub(crate) fn project(name: &str) -> Result<String, Status> {
    match name.split_once('/') {
        Some(("projects", project)) if !project.is_empty() && !project.contains('/') => {
            Ok(project.to_string())
        }
        _ => Err(Status::invalid_argument(format!(
            "project {name:?} is not projects/PROJECT"
        ))),
    }
}

pub(crate) fn topic_name(project: &str, bus: &str) -> String {
    format!("projects/{project}/topics/{bus}")
}

pub(crate) fn subscription_name(project: &str, subscription: &str) -> String {
    format!("projects/{project}/subscriptions/{subscription}")
}

/// Pub/Sub's answer for a topic or subscription that does not exist.
fn not_found(id: &str) -> Status {
    Status::not_found(format!("Resource not found (resource={id})."))
}

/// The bus a parsed topic name stands for.
pub(crate) fn topic_bus(app: &App, topic: &Name) -> Result<Arc<BusIndex>, Status> {
    app.catalog()
        .bus(&topic.id)
        .ok_or_else(|| not_found(&topic.id))
}

/// The subscription a Pub/Sub name stands for: the one of that name, on whichever bus. Pub/Sub
/// names subscriptions per project, switchyard per bus, so a name on two buses is refused
/// rather than guessed.
pub(crate) fn find_subscription(app: &App, id: &str) -> Result<Arc<SubscriptionRecord>, Status> {
    let mut found: Vec<Arc<SubscriptionRecord>> = app
        .catalog()
        .buses()
        .iter()
        .filter_map(|index| index.subscription(id).cloned())
        .collect();
    match found.len() {
        0 => Err(not_found(id)),
        1 => Ok(found.remove(0)),
        _ => Err(Status::failed_precondition(format!(
            "subscription {id:?} exists on several buses ({}); the Pub/Sub API needs it on one: rename the others",
            found
                .iter()
                .map(|s| s.bus.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}
