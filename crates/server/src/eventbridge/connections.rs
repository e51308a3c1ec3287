//! Connections: CreateConnection, DescribeConnection, ListConnections, UpdateConnection,
//! DeleteConnection, DeauthorizeConnection. An EventBridge connection is a switchyard
//! connection of the same name.

use serde_json::Value;
use switchyard_store::{DocumentKind, DocumentRecord};

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

fn pending(operation: &str) -> Result<Value, EbError> {
    Err(EbError::client(
        "OperationDisabledException",
        format!("{operation} is not available yet"),
    ))
}

pub(super) async fn create(_call: Call<'_>) -> Result<Value, EbError> {
    pending("CreateConnection")
}
pub(super) async fn describe(_call: Call<'_>) -> Result<Value, EbError> {
    pending("DescribeConnection")
}
pub(super) async fn list(_call: Call<'_>) -> Result<Value, EbError> {
    pending("ListConnections")
}
pub(super) async fn update(_call: Call<'_>) -> Result<Value, EbError> {
    pending("UpdateConnection")
}
pub(super) async fn delete(_call: Call<'_>) -> Result<Value, EbError> {
    pending("DeleteConnection")
}
pub(super) async fn deauthorize(_call: Call<'_>) -> Result<Value, EbError> {
    pending("DeauthorizeConnection")
}
