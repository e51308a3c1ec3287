//! Archives and replays: Create/Describe/List/Update/DeleteArchive, StartReplay,
//! DescribeReplay, ListReplays, CancelReplay. An EventBridge archive is a switchyard archive of
//! the bus in its `EventSourceArn`; archive names are unique across buses here, as they are
//! account-wide in EventBridge.

use std::sync::Arc;

use serde_json::Value;
use switchyard_store::ArchiveRecord;

use super::{Call, EbError};

/// The archive of that name on whichever bus holds it, or `ResourceNotFoundException`.
pub(super) fn find(call: &Call<'_>, name: &str) -> Result<Arc<ArchiveRecord>, EbError> {
    call.app
        .catalog()
        .buses()
        .iter()
        .find_map(|bus| bus.archive(name).cloned())
        .ok_or_else(|| EbError::not_found(format!("Archive {name} does not exist.")))
}

fn pending(operation: &str) -> Result<Value, EbError> {
    Err(EbError::client(
        "OperationDisabledException",
        format!("{operation} is not available yet"),
    ))
}

pub(super) async fn create(_call: Call<'_>) -> Result<Value, EbError> {
    pending("CreateArchive")
}
pub(super) async fn describe(_call: Call<'_>) -> Result<Value, EbError> {
    pending("DescribeArchive")
}
pub(super) async fn list(_call: Call<'_>) -> Result<Value, EbError> {
    pending("ListArchives")
}
pub(super) async fn update(_call: Call<'_>) -> Result<Value, EbError> {
    pending("UpdateArchive")
}
pub(super) async fn delete(_call: Call<'_>) -> Result<Value, EbError> {
    pending("DeleteArchive")
}
pub(super) async fn start_replay(_call: Call<'_>) -> Result<Value, EbError> {
    pending("StartReplay")
}
pub(super) async fn describe_replay(_call: Call<'_>) -> Result<Value, EbError> {
    pending("DescribeReplay")
}
pub(super) async fn list_replays(_call: Call<'_>) -> Result<Value, EbError> {
    pending("ListReplays")
}
pub(super) async fn cancel_replay(_call: Call<'_>) -> Result<Value, EbError> {
    pending("CancelReplay")
}
