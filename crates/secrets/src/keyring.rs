//! [`Keyring`]: what turns a stored [`crate::SecretRef`] into its value: the master key that
//! opens sealed secrets and the [`SecretFiles`] policy that says which `file:` secrets may be read.
//!
//! One value, passed wherever secrets are sealed or resolved, so that no code path can open a
//! secret without also applying the file policy.

use crate::{MasterKey, SecretFiles};

/// The master key and the file policy, together.
#[derive(Debug)]
pub struct Keyring {
    master_key: MasterKey,
    files: SecretFiles,
}

impl Keyring {
    /// A keyring that seals with `master_key` and reads `file:` secrets as `files` allows.
    pub fn new(master_key: MasterKey, files: SecretFiles) -> Keyring {
        Keyring { master_key, files }
    }

    /// Seals new secrets with its first key; opens sealed ones with any.
    pub fn master_key(&self) -> &MasterKey {
        &self.master_key
    }

    /// Where `file:` secrets may be read from.
    pub fn files(&self) -> &SecretFiles {
        &self.files
    }
}
