//! The one error type of this crate. By construction no variant carries a secret's value: they
//! hold paths, key ids and fixed reasons.

use std::path::PathBuf;

/// Why a secret could not be sealed, opened or read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The master key file cannot be read, created or replaced.
    #[error("master key file {}: {source}", path.display())]
    KeyFileIo {
        /// The master key file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The master key file exists but is not one base64 32-byte key per line.
    #[error("master key file {}: {reason}", path.display())]
    KeyFileInvalid {
        /// The master key file.
        path: PathBuf,
        /// Which line is wrong and how.
        reason: String,
    },
    /// The text is not a sealed secret of a known format.
    #[error("sealed secret is malformed: {0}")]
    Malformed(&'static str),
    /// Sealed with a master key that the key file no longer (or not yet) holds.
    #[error(
        "sealed secret needs master key {kid}, which is not in the master key file (was an old key removed before re-sealing?)"
    )]
    UnknownKey {
        /// The key id the sealed text names.
        kid: String,
    },
    /// Authentication failed: the sealed text was altered, or sealed with another key of the
    /// same id (which would be a forged id).
    #[error("sealed secret cannot be opened: it was altered or sealed with a different key")]
    Tampered,
    /// A `file:` secret cannot be read.
    #[error("secret file {}: {source}", path.display())]
    SecretFileIo {
        /// The file the reference names.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A `file:` secret names a file the operator did not allow (or never may: the master key,
    /// the data directory). The reason says which and how to allow it.
    #[error("secret file {}: refused: {reason}", path.display())]
    SecretFileRefused {
        /// The file the reference names.
        path: PathBuf,
        /// Which rule refused it, and the flag that would allow it.
        reason: String,
    },
    /// A `file:` secret was read but is unusable.
    #[error("secret file {}: {reason}", path.display())]
    SecretFileInvalid {
        /// The file the reference names.
        path: PathBuf,
        /// What is wrong with its content (never the content).
        reason: &'static str,
    },
    /// The operating system's random generator failed; nothing can be sealed safely.
    #[error("the system random number generator failed")]
    Random,
}
