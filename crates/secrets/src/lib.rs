//! Secrets for switchyard: connection credentials, OAuth client secrets, signing secrets and
//! signing keys.
//!
//! This crate owns three things:
//! - [`Secret`], a value that never shows itself: its `Debug`, `Display` and `Serialize` print
//!   [`REDACTED`], and its memory is wiped on drop. Reading it takes an explicit
//!   [`Secret::expose`], so every place that uses a secret's value is greppable.
//! - [`SecretRef`], how a secret is written in a subscription or connection: the value itself
//!   (inline, only until the server seals it), a sealed value (what the store keeps), or a
//!   reference to a file (`file:/run/secrets/x`, as mounted by a secret manager) read each time
//!   the secret is used.
//! - [`MasterKey`], the key file that seals secrets at rest with AES-256-GCM.
//! - [`SecretFiles`], the directories `file:` references may be read from (none unless the
//!   operator lists some), and [`Keyring`], the master key and that policy together: the one
//!   value that seals and resolves.
//!
//! It must not log, and no error it returns ever contains a secret's value: errors name files,
//! key ids and reasons only. It does no network I/O; it reads and writes only the master key file
//! and reads `file:` references the policy allows.
//!
//! # Sealed form and key rotation
//!
//! A sealed secret is the text `sealed:v1:<kid>:<base64url(nonce ‖ ciphertext ‖ tag)>`. `v1` is
//! the format (AES-256-GCM, 96-bit random nonce, the `sealed:v1:<kid>` prefix authenticated as
//! associated data); `<kid>` names the master key that sealed it (16 hex digits derived from the
//! key, so the key file needs no ids of its own).
//!
//! The master key file holds one base64 key (32 bytes) per line; the first line is the current
//! key, which seals; every line can open. To rotate:
//! 1. add a new key as the first line ([`MasterKey::rotate_file`] does this, keeping mode 0600);
//! 2. restart (or reload) so the new key is current: new secrets are sealed with it, and old
//!    sealed secrets still open with the old line;
//! 3. re-seal what is stored ([`SecretRef::reseal`] returns the new form of a secret sealed under
//!    an old key; [`MasterKey::is_current`] tells which need it);
//! 4. delete the old line once nothing sealed under it remains.
//!
//! Invariants: a [`MasterKey`] always has at least one key; [`MasterKey::seal`] uses only the
//! first; `open(seal(x)) == x`; a sealed text altered in any byte fails to open.

mod error;
mod files;
mod keyring;
mod master_key;
mod secret;

pub use error::SecretError;
pub use files::SecretFiles;
pub use keyring::Keyring;
pub use master_key::{KEY_LEN, MasterKey};
pub use secret::{REDACTED, Secret, SecretRef, constant_time_eq};
