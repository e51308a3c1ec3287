//! `GET /v1/backup`: a consistent copy of the embedded store, streamed while the server keeps
//! serving (`switchyard backup DIR` writes it to a file). Admin only: the copy holds every event
//! and sealed secret.
//!
//! The store makes the copy ([`switchyard_store::Store::backup`]) from one snapshot before the
//! first byte is sent, so a client that stops reading leaves nothing behind and cannot hold a
//! snapshot open. On a PostgreSQL store the answer is `501 not_implemented`, naming `pg_dump`.

use std::io::Read;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::ApiError;
use crate::App;

/// Bytes read from the copy per chunk of the answer.
const CHUNK: usize = 256 * 1024;

pub(crate) async fn backup(State(app): State<Arc<App>>) -> Result<Response, ApiError> {
    let backup = app.store().backup().await?;
    let chunks = futures_util::stream::unfold(Some(backup.file), |file| async move {
        let mut file = file?;
        let read = tokio::task::spawn_blocking(move || {
            let mut chunk = Vec::with_capacity(CHUNK);
            let read = (&mut file).take(CHUNK as u64).read_to_end(&mut chunk);
            (file, read.map(|_| chunk))
        })
        .await;
        match read {
            Ok((_, Ok(chunk))) if chunk.is_empty() => None,
            Ok((file, Ok(chunk))) => Some((Ok(Bytes::from(chunk)), Some(file))),
            // Ends the answer short of its Content-Length: the client sees it broken off.
            Ok((_, Err(error))) => Some((Err(error), None)),
            Err(error) => Some((Err(std::io::Error::other(error)), None)),
        }
    });
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, backup.bytes.to_string()),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"switchyard.redb\"".to_string(),
            ),
        ],
        Body::from_stream(chunks),
    )
        .into_response())
}
