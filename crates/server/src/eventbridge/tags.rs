//! Tags: TagResource, UntagResource, ListTagsForResource, and the tags given at creation. Kept
//! per ARN in an `EventBridgeTags` document, because no switchyard resource has tags of its
//! own; they change nothing but what these operations answer.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};
use switchyard_store::DocumentKind;

use super::shapes::{Tag, parse, required, tag_list, tag_map};
use super::{Call, EbError, Resource};

/// The tags of one ARN, empty when it has none.
async fn current(call: &Call<'_>, arn: &str) -> Result<BTreeMap<String, String>, EbError> {
    let documents = call.app.documents(DocumentKind::EventBridgeTags).await?;
    match documents.into_iter().find(|d| d.name == arn) {
        None => Ok(BTreeMap::new()),
        Some(document) => serde_json::from_str(&document.body).map_err(|e| {
            EbError::from(switchyard_store::StoreError::Corrupt {
                table: "documents",
                detail: format!("tags of {arn}: {e}"),
            })
        }),
    }
}

async fn store(call: &Call<'_>, arn: &str, tags: &BTreeMap<String, String>) -> Result<(), EbError> {
    if tags.is_empty() {
        return forget(call, arn).await;
    }
    let body = serde_json::to_string(tags).map_err(|e| EbError::validation(e.to_string()))?;
    call.app
        .put_document(DocumentKind::EventBridgeTags, arn, body)
        .await?;
    Ok(())
}

/// The tags a `Create*` or `PutRule` call gives a new resource.
pub(super) async fn put_initial(call: &Call<'_>, arn: &str, tags: Vec<Tag>) -> Result<(), EbError> {
    if tags.is_empty() {
        return Ok(());
    }
    let tags = tag_map(BTreeMap::new(), tags)?;
    store(call, arn, &tags).await
}

/// Drops the tags of a deleted resource, so that one made again under its name starts bare.
pub(super) async fn forget(call: &Call<'_>, arn: &str) -> Result<(), EbError> {
    call.forget(DocumentKind::EventBridgeTags, arn).await
}

/// `ResourceNotFoundException` unless the ARN names a resource that exists here.
async fn check_exists(call: &Call<'_>, arn: &str) -> Result<(), EbError> {
    let missing = || EbError::not_found(format!("Resource {arn} does not exist."));
    let resource = call.arns().parse(arn).ok_or_else(missing)?;
    let exists = match resource {
        Resource::Bus(name) => call.app.catalog().bus(&name).is_some(),
        Resource::Rule { bus, name } => super::rules::find(call, &bus, &name).await.is_ok(),
        Resource::Connection(name) => super::connections::find(call, &name).await.is_ok(),
        Resource::ApiDestination(name) => super::api_destinations::find(call, &name).await.is_ok(),
        Resource::Archive(name) => super::archives::find(call, &name).is_ok(),
        Resource::Replay(_) => false,
    };
    if exists { Ok(()) } else { Err(missing()) }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TagInput {
    #[serde(rename = "ResourceARN")]
    resource_arn: Option<String>,
    #[serde(default)]
    tags: Vec<Tag>,
    #[serde(default)]
    tag_keys: Vec<String>,
}

pub(super) async fn tag(call: Call<'_>) -> Result<Value, EbError> {
    let input: TagInput = parse(call.input.clone())?;
    let arn = required(input.resource_arn, "resourceARN")?;
    check_exists(&call, &arn).await?;
    let tags = tag_map(current(&call, &arn).await?, input.tags)?;
    store(&call, &arn, &tags).await?;
    Ok(json!({}))
}

pub(super) async fn untag(call: Call<'_>) -> Result<Value, EbError> {
    let input: TagInput = parse(call.input.clone())?;
    let arn = required(input.resource_arn, "resourceARN")?;
    check_exists(&call, &arn).await?;
    let mut tags = current(&call, &arn).await?;
    for key in &input.tag_keys {
        tags.remove(key);
    }
    store(&call, &arn, &tags).await?;
    Ok(json!({}))
}

pub(super) async fn list(call: Call<'_>) -> Result<Value, EbError> {
    let input: TagInput = parse(call.input.clone())?;
    let arn = required(input.resource_arn, "resourceARN")?;
    check_exists(&call, &arn).await?;
    Ok(json!({"Tags": tag_list(&current(&call, &arn).await?)}))
}
