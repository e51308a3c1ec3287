//! `switchyard backup DIR`: a consistent copy of a running server's embedded store
//! (`GET /v1/backup`), written to `DIR/switchyard.redb`, which `serve --data-dir DIR` opens.
//!
//! Never overwrites: the copy is written under a temporary name, made durable, and only then
//! given its name, which fails if a file took it meanwhile; an interrupted backup leaves no
//! `switchyard.redb` that looks whole.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use reqwest::Method;

use crate::client::{ApiClient, ClientArgs};
use crate::serve::STORE_FILE;

#[derive(clap::Args)]
pub(crate) struct BackupArgs {
    /// Directory to write switchyard.redb into (created if missing). A switchyard.redb already
    /// there is never overwritten.
    dir: PathBuf,
    #[command(flatten)]
    client: ClientArgs,
}

pub(crate) async fn run(args: BackupArgs) -> anyhow::Result<()> {
    let target = args.dir.join(STORE_FILE);
    let refuse = || {
        anyhow::anyhow!(
            "{} exists already: a backup never overwrites one; give another directory, or move it away first",
            target.display()
        )
    };
    if target.exists() {
        return Err(refuse());
    }
    let client = ApiClient::new(&args.client)?;
    let mut response = client.send(Method::GET, "/v1/backup", None).await?;
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let expected = response.content_length();
    let partial = args.dir.join(format!(".{STORE_FILE}.partial"));
    let written = download(&mut response, &partial).await;
    let finished = written.and_then(|bytes| {
        if expected.is_some_and(|expected| expected != bytes) {
            anyhow::bail!(
                "GET /v1/backup: the answer broke off after {bytes} of {} bytes; nothing was kept",
                expected.unwrap_or_default()
            );
        }
        // A hard link, unlike a rename, fails if the name is taken.
        std::fs::hard_link(&partial, &target).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => refuse(),
            _ => anyhow::Error::new(e).context(format!("cannot write {}", target.display())),
        })?;
        sync_dir(&args.dir)?;
        Ok(bytes)
    });
    let _ = std::fs::remove_file(&partial);
    let bytes = finished?;
    println!(
        "wrote {} ({bytes} bytes): the store as of one commit",
        target.display()
    );
    eprintln!(
        "note: secrets in it are sealed with the server's master key (DATA_DIR/master.key), which a backup does not hold: keep a copy of that file too"
    );
    Ok(())
}

/// Writes the answer's body to `path` and makes it durable; returns its length.
async fn download(response: &mut reqwest::Response, path: &Path) -> anyhow::Result<u64> {
    // Only its owner may read it: it holds every event, as the store file does.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    let mut bytes = 0;
    while let Some(chunk) = response
        .chunk()
        .await
        .context("GET /v1/backup: the answer broke off")?
    {
        file.write_all(&chunk)
            .with_context(|| format!("cannot write {}", path.display()))?;
        bytes += chunk.len() as u64;
    }
    file.sync_all()
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(bytes)
}

/// Makes the new name durable, as the file's contents are.
fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync {}", dir.display()))
}
