//! The one error type of this crate. By construction no variant carries a secret's value: they
//! hold paths, key ids and fixed reasons.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The master key file cannot be read, created or replaced.
    #[error("master key file {}: {source}", path.display())]
    KeyFileIo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The master key file exists but is not one base64 32-byte key per line.
    #[error("master key file {}: {reason}", path.display())]
    KeyFileInvalid { path: PathBuf, reason: String },
    /// The text is not a sealed secret of a known format.
    #[error("sealed secret is malformed: {0}")]
    Malformed(&'static str),
    /// Sealed with a master key that the key file no longer (or not yet) holds.
    #[error(
        "sealed secret needs master key {kid}, which is not in the master key file (was an old key removed before re-sealing?)"
    )]
    UnknownKey { kid: String },
    /// Authentication failed: the sealed text was altered, or sealed with another key of the
    /// same id (which would be a forged id).
    #[error("sealed secret cannot be opened: it was altered or sealed with a different key")]
    Tampered,
    /// A `file:` secret cannot be read.
    #[error("secret file {}: {source}", path.display())]
    SecretFileIo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A `file:` secret names a file the operator did not allow (or never may: the master key,
    /// the data directory). The reason says which and how to allow it.
    #[error("secret file {}: refused: {reason}", path.display())]
    SecretFileRefused { path: PathBuf, reason: String },
    /// A `file:` secret was read but is unusable.
    #[error("secret file {}: {reason}", path.display())]
    SecretFileInvalid { path: PathBuf, reason: &'static str },
    /// The operating system's random generator failed; nothing can be sealed safely.
    #[error("the system random number generator failed")]
    Random,
}
