//! [`Secret`] and [`SecretRef`]: values that cannot be printed, and how a configuration refers
//! to them.
//!
//! Must not: implement any trait that could print a secret's value. `Serialize` of an inline
//! secret writes [`REDACTED`]; deserialising [`REDACTED`] is refused, so an answer that was
//! redacted can never be stored back as if it were the secret. [`SecretRef`] compares (so
//! configurations holding one can be compared) in constant time for inline values.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

use crate::{Keyring, MasterKey, SecretError};

/// What a secret prints as, everywhere.
pub const REDACTED: &str = "********";

const FILE_PREFIX: &str = "file:";
pub(crate) const SEALED_PREFIX: &str = "sealed:";

/// A secret value. Wiped from memory on drop; shown as [`REDACTED`].
#[derive(Clone)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps a value; from here on it is only shown redacted.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(Zeroizing::new(value.into()))
    }

    /// The value itself. Call it only where the value leaves for its one purpose (an HTTP
    /// header, an HMAC key, the sealing cipher), never to log or to answer.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

/// A JSON string becomes the secret as written; [`REDACTED`] is refused, so a redacted answer
/// sent back is never taken for the secret itself.
impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Secret, D::Error> {
        let text = Zeroizing::new(String::deserialize(deserializer)?);
        if text.as_str() == REDACTED {
            return Err(serde::de::Error::custom(
                "a redacted value cannot be stored as a secret; send the secret itself",
            ));
        }
        Ok(Secret(text))
    }
}

/// Equality of two byte strings in time that depends only on their lengths, so that comparing a
/// presented token or signature with the real one does not reveal how much of it matched.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // Keeps the optimizer from turning the fold into an early-exit comparison.
    std::hint::black_box(difference) == 0
}

/// Constant time: equality of secrets must not reveal how much of one matched.
impl PartialEq for Secret {
    fn eq(&self, other: &Secret) -> bool {
        constant_time_eq(self.expose().as_bytes(), other.expose().as_bytes())
    }
}

impl Eq for Secret {}

/// How a configuration names a secret. In JSON it is one string:
/// - `"file:/abs/path"`: the file's content (one trailing newline dropped), read at each use;
/// - `"sealed:v1:..."`: a value sealed under the master key, as the store keeps it;
/// - anything else: the secret itself, as written in a PUT body. The server seals it with
///   [`SecretRef::seal`] before storing, so an inline value lives only in the request.
///
/// Serialising writes `file:` references and sealed texts as they are (neither is the secret: a
/// sealed text opens only with the master key file, and it lets an exported configuration be
/// applied again unchanged) and an inline value as [`REDACTED`].
#[derive(Clone)]
pub enum SecretRef {
    /// The value itself, as a request gave it; never stored.
    Inline(Secret),
    /// The value sealed under the master key (`sealed:…`), as stored.
    Sealed(String),
    /// A file holding the value (`file:PATH`), read at each use under the file policy.
    File(PathBuf),
}

impl SecretRef {
    /// Parses the JSON string form; the error says what is wrong without repeating the value.
    pub fn parse(text: &str) -> Result<SecretRef, String> {
        if text == REDACTED {
            return Err(format!(
                "{REDACTED:?} is how switchyard shows a stored secret; send the secret itself, a file: reference or the sealed text"
            ));
        }
        if text.is_empty() {
            return Err("a secret must not be empty".into());
        }
        if let Some(path) = text.strip_prefix(FILE_PREFIX) {
            let path = Path::new(path);
            if !path.is_absolute() {
                return Err("a file: secret reference must be an absolute path, such as file:/run/secrets/token".into());
            }
            return Ok(SecretRef::File(path.to_path_buf()));
        }
        if text.starts_with(SEALED_PREFIX) {
            crate::master_key::split_sealed(text).map_err(|e| e.to_string())?;
            return Ok(SecretRef::Sealed(text.to_string()));
        }
        Ok(SecretRef::Inline(Secret::new(text)))
    }

    /// The inline value, for validation at configuration time (for example that a signing
    /// secret has the `whsec_` form). `None` for sealed and file secrets, which were checked
    /// when first written or are checked at use.
    pub fn inline(&self) -> Option<&Secret> {
        match self {
            SecretRef::Inline(secret) => Some(secret),
            _ => None,
        }
    }

    /// The form to store: an inline value sealed under the current master key; a sealed text
    /// unchanged; a file reference unchanged once the keyring's file policy allows it (so that
    /// a reference the server would refuse to read is refused when written, with a message
    /// that says why).
    pub fn seal(&self, keyring: &Keyring) -> Result<SecretRef, SecretError> {
        match self {
            SecretRef::Inline(secret) => Ok(SecretRef::Sealed(keyring.master_key().seal(secret)?)),
            SecretRef::File(path) => {
                keyring.files().check(path)?;
                Ok(self.clone())
            }
            SecretRef::Sealed(_) => Ok(self.clone()),
        }
    }

    /// Whether resolving reads a file (which blocks: async callers resolve such secrets off
    /// their runtime's worker threads).
    pub fn is_file(&self) -> bool {
        matches!(self, SecretRef::File(_))
    }

    /// For key rotation: `Some(new form)` when this is sealed under a key other than the current
    /// one, `None` when nothing needs to change.
    pub fn reseal(&self, key: &MasterKey) -> Result<Option<SecretRef>, SecretError> {
        match self {
            SecretRef::Sealed(text) if !key.is_current(text)? => {
                let secret = key.open(text)?;
                Ok(Some(SecretRef::Sealed(key.seal(&secret)?)))
            }
            _ => Ok(None),
        }
    }

    /// The secret's value: opened, read from its file (if the file policy allows it), or as
    /// written.
    pub fn resolve(&self, keyring: &Keyring) -> Result<Secret, SecretError> {
        match self {
            SecretRef::Inline(secret) => Ok(secret.clone()),
            SecretRef::Sealed(text) => keyring.master_key().open(text),
            SecretRef::File(path) => keyring.files().read(path),
        }
    }
}

impl PartialEq for SecretRef {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (SecretRef::Inline(a), SecretRef::Inline(b)) => a == b,
            (SecretRef::Sealed(a), SecretRef::Sealed(b)) => a == b,
            (SecretRef::File(a), SecretRef::File(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for SecretRef {}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Inline(_) => f.write_str(REDACTED),
            SecretRef::Sealed(text) => write!(f, "Sealed({})", sealed_label(text)),
            SecretRef::File(path) => write!(f, "File({})", path.display()),
        }
    }
}

/// A sealed text shown as its key id only: enough to debug rotation, nothing to copy.
fn sealed_label(text: &str) -> String {
    match crate::master_key::split_sealed(text) {
        Ok((kid, _)) => format!("key {kid}"),
        Err(_) => "malformed".into(),
    }
}

impl Serialize for SecretRef {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            SecretRef::Inline(_) => serializer.serialize_str(REDACTED),
            SecretRef::Sealed(text) => serializer.serialize_str(text),
            SecretRef::File(path) => match path.to_str() {
                Some(path) => serializer.serialize_str(&format!("{FILE_PREFIX}{path}")),
                None => Err(serde::ser::Error::custom(
                    "a file: secret reference path is not UTF-8",
                )),
            },
        }
    }
}

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Owned and wiped: the text may be the secret itself.
        let text = Zeroizing::new(String::deserialize(deserializer)?);
        SecretRef::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_equality() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
    }

    fn key() -> MasterKey {
        MasterKey::from_keys(&[[7u8; 32]])
    }

    fn keyring(allowed: &[std::path::PathBuf]) -> Keyring {
        Keyring::new(key(), crate::SecretFiles::new(allowed, &[]).unwrap())
    }

    #[test]
    fn a_secret_never_shows_its_value() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret}"), REDACTED);
        assert_eq!(format!("{secret:?}"), REDACTED);
        assert_eq!(serde_json::to_string(&secret).unwrap(), "\"********\"");
        let inline = SecretRef::parse("hunter2").unwrap();
        assert_eq!(format!("{inline:?}"), REDACTED);
        assert_eq!(serde_json::to_string(&inline).unwrap(), "\"********\"");
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn parses_the_three_forms_and_refuses_the_placeholder() {
        assert!(matches!(
            SecretRef::parse("pw").unwrap(),
            SecretRef::Inline(_)
        ));
        assert!(matches!(
            SecretRef::parse("file:/run/secrets/pw").unwrap(),
            SecretRef::File(_)
        ));
        let sealed = key().seal(&Secret::new("pw")).unwrap();
        assert!(matches!(
            SecretRef::parse(&sealed).unwrap(),
            SecretRef::Sealed(_)
        ));
        for (bad, expected) in [
            (REDACTED, "how switchyard shows"),
            ("", "empty"),
            ("file:relative/pw", "absolute"),
            ("sealed:v9:x:y", "malformed"),
        ] {
            let err = SecretRef::parse(bad).unwrap_err();
            assert!(err.contains(expected), "{bad:?}: {err}");
        }
        let err = serde_json::from_str::<SecretRef>("\"********\"").unwrap_err();
        assert!(err.to_string().contains("how switchyard shows"), "{err}");
    }

    #[test]
    fn sealing_keeps_the_value_and_hides_it_in_serialised_form() {
        let keyring = keyring(&[]);
        let stored = SecretRef::parse("hunter2").unwrap().seal(&keyring).unwrap();
        let json = serde_json::to_string(&stored).unwrap();
        assert!(json.starts_with("\"sealed:v1:"), "{json}");
        assert!(!json.contains("hunter2"));
        assert!(!format!("{stored:?}").contains("sealed:v1"));
        let back: SecretRef = serde_json::from_str(&json).unwrap();
        assert_eq!(back.resolve(&keyring).unwrap().expose(), "hunter2");
    }

    #[test]
    fn file_references_are_read_at_use_and_lose_one_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "s3cret\n").unwrap();
        let reference = SecretRef::parse(&format!("file:{}", path.display())).unwrap();
        let keyring = keyring(&[dir.path().to_path_buf()]);
        assert_eq!(reference.seal(&keyring).unwrap(), reference);
        assert_eq!(reference.resolve(&keyring).unwrap().expose(), "s3cret");
        std::fs::write(&path, "rotated\r\n").unwrap();
        assert_eq!(reference.resolve(&keyring).unwrap().expose(), "rotated");
        assert_eq!(
            serde_json::to_string(&reference).unwrap(),
            format!("\"file:{}\"", path.display())
        );
        std::fs::write(&path, "\n").unwrap();
        assert!(matches!(
            reference.resolve(&keyring),
            Err(SecretError::SecretFileInvalid {
                reason: "empty",
                ..
            })
        ));
        std::fs::remove_file(&path).unwrap();
        let err = reference.resolve(&keyring).unwrap_err().to_string();
        assert!(err.contains("token"), "{err}");
    }

    #[test]
    fn file_references_are_refused_when_written_unless_the_operator_allowed_their_directory() {
        let dir = tempfile::tempdir().unwrap();
        let reference = SecretRef::parse(&format!("file:{}/token", dir.path().display())).unwrap();
        let err = reference.seal(&keyring(&[])).unwrap_err().to_string();
        assert!(err.contains("--secret-files-dir"), "{err}");
        assert!(reference.resolve(&keyring(&[])).is_err());
    }
}
