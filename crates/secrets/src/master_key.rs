//! The master key file and sealing with it.
//!
//! Owns the key file's format (one base64 32-byte key per line, `#` comments, the first key
//! current), its creation with mode 0600, and the sealed text format described in the crate
//! docs. Must not: write a key anywhere but the key file, or seal with any key but the first.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use crate::secret::SEALED_PREFIX;
use crate::{Secret, SecretError};

/// Bytes of one master key (AES-256).
pub const KEY_LEN: usize = 32;
const FORMAT: &str = "v1";

/// The keys of the master key file: the first seals, all open.
pub struct MasterKey {
    keys: Vec<Entry>,
}

struct Entry {
    kid: String,
    key: LessSafeKey,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kids: Vec<&str> = self.keys.iter().map(|e| e.kid.as_str()).collect();
        f.debug_struct("MasterKey").field("kids", &kids).finish()
    }
}

impl MasterKey {
    /// Builds a key set from raw keys, the first current. Panics on an empty slice, which is a
    /// programming error (files with no key are refused by [`MasterKey::load`]).
    pub fn from_keys(keys: &[[u8; KEY_LEN]]) -> MasterKey {
        assert!(!keys.is_empty(), "a master key needs at least one key");
        MasterKey {
            keys: keys.iter().map(entry).collect(),
        }
    }

    /// Reads the key file at `path`.
    pub fn load(path: &Path) -> Result<MasterKey, SecretError> {
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|source| {
            SecretError::KeyFileIo {
                path: path.to_path_buf(),
                source,
            }
        })?);
        parse_key_file(&text).map_err(|reason| SecretError::KeyFileInvalid {
            path: path.to_path_buf(),
            reason,
        })
    }

    /// Reads the key file, creating it first (mode 0600, one new random key) when it does not
    /// exist. Two processes racing to create it end up with the same file: creation is
    /// exclusive, and the loser reads the winner's.
    pub fn load_or_create(path: &Path) -> Result<MasterKey, SecretError> {
        if !path.exists() {
            let io = |source| SecretError::KeyFileIo {
                path: path.to_path_buf(),
                source,
            };
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(io)?;
            }
            let content = Zeroizing::new(format!(
                "# switchyard master key file: one base64 key per line, the first seals.\n{}\n",
                generate_key_line()?.as_str()
            ));
            match create_private(path) {
                Ok(mut file) => {
                    file.write_all(content.as_bytes()).map_err(io)?;
                    file.sync_all().map_err(io)?;
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io(e)),
            }
        }
        MasterKey::load(path)
    }

    /// Puts a new random key first in the key file (keeping the others, which still open what
    /// they sealed) and returns the new key set. The file is replaced atomically, mode 0600.
    pub fn rotate_file(path: &Path) -> Result<MasterKey, SecretError> {
        let io = |source| SecretError::KeyFileIo {
            path: path.to_path_buf(),
            source,
        };
        let old = Zeroizing::new(std::fs::read_to_string(path).map_err(io)?);
        parse_key_file(&old).map_err(|reason| SecretError::KeyFileInvalid {
            path: path.to_path_buf(),
            reason,
        })?;
        let new = Zeroizing::new(format!(
            "{}\n{}",
            generate_key_line()?.as_str(),
            old.as_str()
        ));
        let temp = temp_path(path);
        let written = create_private(&temp).and_then(|mut file| {
            file.write_all(new.as_bytes())?;
            file.sync_all()
        });
        if let Err(e) = written.and_then(|()| std::fs::rename(&temp, path)) {
            let _ = std::fs::remove_file(&temp);
            return Err(io(e));
        }
        MasterKey::load(path)
    }

    /// The id of the current (sealing) key.
    pub fn current_kid(&self) -> &str {
        &self.keys[0].kid
    }

    /// Seals `secret` under the current key.
    pub fn seal(&self, secret: &Secret) -> Result<String, SecretError> {
        let current = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| SecretError::Random)?;
        let header = format!("{SEALED_PREFIX}{FORMAT}:{}", current.kid);
        let mut buffer = Zeroizing::new(secret.expose().as_bytes().to_vec());
        current
            .key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(header.as_bytes()),
                &mut *buffer,
            )
            // Only fails for inputs over AES-GCM's 64 GiB limit.
            .map_err(|_| SecretError::Malformed("secret too large to seal"))?;
        let mut payload = nonce.to_vec();
        payload.extend_from_slice(&buffer);
        Ok(format!("{header}:{}", URL_SAFE_NO_PAD.encode(payload)))
    }

    /// Opens a sealed text with whichever key sealed it.
    pub fn open(&self, sealed: &str) -> Result<Secret, SecretError> {
        let (kid, payload) = split_sealed(sealed)?;
        let entry =
            self.keys
                .iter()
                .find(|e| e.kid == kid)
                .ok_or_else(|| SecretError::UnknownKey {
                    kid: kid.to_string(),
                })?;
        let mut payload = Zeroizing::new(
            URL_SAFE_NO_PAD
                .decode(payload)
                .map_err(|_| SecretError::Malformed("the payload is not base64url"))?,
        );
        if payload.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(SecretError::Malformed("the payload is too short"));
        }
        let (nonce, sealed_bytes) = payload.split_at_mut(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| SecretError::Malformed("bad nonce"))?;
        let header = format!("{SEALED_PREFIX}{FORMAT}:{kid}");
        let plain = entry
            .key
            .open_in_place(nonce, Aad::from(header.as_bytes()), sealed_bytes)
            .map_err(|_| SecretError::Tampered)?;
        let text = std::str::from_utf8(plain).map_err(|_| SecretError::Tampered)?;
        Ok(Secret::new(text))
    }

    /// True when `sealed` was sealed under the current key (no re-sealing needed).
    pub fn is_current(&self, sealed: &str) -> Result<bool, SecretError> {
        let (kid, _) = split_sealed(sealed)?;
        Ok(kid == self.keys[0].kid)
    }
}

/// Splits `sealed:v1:<kid>:<payload>` into kid and payload.
pub(crate) fn split_sealed(sealed: &str) -> Result<(&str, &str), SecretError> {
    let rest = sealed
        .strip_prefix(SEALED_PREFIX)
        .ok_or(SecretError::Malformed("it does not start with \"sealed:\""))?;
    let mut parts = rest.splitn(3, ':');
    let (Some(format), Some(kid), Some(payload)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(SecretError::Malformed(
            "expected sealed:<format>:<key id>:<payload>",
        ));
    };
    if format != FORMAT {
        return Err(SecretError::Malformed(
            "unknown format (this build knows v1)",
        ));
    }
    if kid.len() != 16 || !kid.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(SecretError::Malformed("the key id is not 16 hex digits"));
    }
    Ok((kid, payload))
}

fn entry(bytes: &[u8; KEY_LEN]) -> Entry {
    // The id is a hash of the key under a label of its own, so it names the key without helping
    // anyone guess it.
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    context.update(b"switchyard master key id\0");
    context.update(bytes);
    let digest = context.finish();
    let kid = digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let key = UnboundKey::new(&AES_256_GCM, bytes)
        .map(LessSafeKey::new)
        // AES_256_GCM takes exactly KEY_LEN bytes, which the array type guarantees.
        .unwrap_or_else(|_| unreachable!("a {KEY_LEN}-byte key is valid for AES-256-GCM"));
    Entry { kid, key }
}

fn parse_key_file(text: &str) -> Result<MasterKey, String> {
    let mut keys = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bytes = Zeroizing::new(
            STANDARD
                .decode(line)
                .map_err(|_| format!("line {} is not base64", index + 1))?,
        );
        let key: [u8; KEY_LEN] = bytes.as_slice().try_into().map_err(|_| {
            format!(
                "line {} holds {} bytes; a key is {KEY_LEN}",
                index + 1,
                bytes.len()
            )
        })?;
        keys.push(key);
    }
    if keys.is_empty() {
        return Err("no key in the file".into());
    }
    let master = MasterKey::from_keys(&keys);
    for key in &mut keys {
        zeroize::Zeroize::zeroize(key);
    }
    Ok(master)
}

fn generate_key_line() -> Result<Zeroizing<String>, SecretError> {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    SystemRandom::new()
        .fill(&mut *key)
        .map_err(|_| SecretError::Random)?;
    Ok(Zeroizing::new(STANDARD.encode(*key)))
}

/// Opens a new file that only its owner can read; fails if it exists.
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".rotating");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> Secret {
        Secret::new("client-secret-42")
    }

    #[test]
    fn round_trip_and_fresh_nonce_each_time() {
        let key = MasterKey::from_keys(&[[1u8; 32]]);
        let a = key.seal(&secret()).unwrap();
        let b = key.seal(&secret()).unwrap();
        assert_ne!(a, b, "nonces must differ");
        assert!(a.starts_with(&format!("sealed:v1:{}:", key.current_kid())));
        assert!(!a.contains("client-secret"));
        assert_eq!(key.open(&a).unwrap().expose(), "client-secret-42");
    }

    #[test]
    fn any_altered_byte_is_detected() {
        let key = MasterKey::from_keys(&[[1u8; 32]]);
        let sealed = key.seal(&secret()).unwrap();
        let (kid, payload) = split_sealed(&sealed).unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(payload).unwrap();
        for i in 0..bytes.len() {
            bytes[i] ^= 0x01;
            let forged = format!("sealed:v1:{kid}:{}", URL_SAFE_NO_PAD.encode(&bytes));
            assert!(
                matches!(key.open(&forged), Err(SecretError::Tampered)),
                "byte {i}"
            );
            bytes[i] ^= 0x01;
        }
        let truncated = &sealed[..sealed.len() - 4];
        assert!(key.open(truncated).is_err());
    }

    #[test]
    fn the_wrong_key_cannot_open() {
        let one = MasterKey::from_keys(&[[1u8; 32]]);
        let two = MasterKey::from_keys(&[[2u8; 32]]);
        let sealed = one.seal(&secret()).unwrap();
        assert!(matches!(
            two.open(&sealed),
            Err(SecretError::UnknownKey { .. })
        ));
        // The same id with another key (a forged id) fails authentication, not silently.
        let forged = sealed.replace(one.current_kid(), two.current_kid());
        assert!(matches!(two.open(&forged), Err(SecretError::Tampered)));
    }

    #[test]
    fn creates_the_key_file_with_mode_0600_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data/master.key");
        let first = MasterKey::load_or_create(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        }
        let again = MasterKey::load_or_create(&path).unwrap();
        assert_eq!(first.current_kid(), again.current_kid());
        let sealed = first.seal(&secret()).unwrap();
        assert_eq!(again.open(&sealed).unwrap().expose(), "client-secret-42");
    }

    #[test]
    fn rotation_keeps_old_secrets_open_and_reseals_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let old = MasterKey::load_or_create(&path).unwrap();
        let stored = crate::SecretRef::Sealed(old.seal(&secret()).unwrap());
        let new = MasterKey::rotate_file(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        }
        assert_ne!(new.current_kid(), old.current_kid());
        let crate::SecretRef::Sealed(text) = &stored else {
            unreachable!()
        };
        assert_eq!(new.open(text).unwrap().expose(), "client-secret-42");
        assert!(!new.is_current(text).unwrap());
        let resealed = stored.reseal(&new).unwrap().expect("needs re-sealing");
        let crate::SecretRef::Sealed(new_text) = &resealed else {
            unreachable!()
        };
        assert!(new.is_current(new_text).unwrap());
        assert!(resealed.reseal(&new).unwrap().is_none());
        // Once the old line is gone, only re-sealed secrets open.
        let only_new = std::fs::read_to_string(&path).unwrap();
        let first_key = only_new
            .lines()
            .find(|l| !l.starts_with('#'))
            .unwrap()
            .to_string();
        std::fs::write(&path, format!("{first_key}\n")).unwrap();
        let trimmed = MasterKey::load(&path).unwrap();
        assert!(trimmed.open(new_text).is_ok());
        assert!(matches!(
            trimmed.open(text),
            Err(SecretError::UnknownKey { .. })
        ));
    }

    #[test]
    fn refuses_bad_key_files_without_echoing_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        for (content, expected) in [
            ("", "no key"),
            ("# only a comment\n", "no key"),
            ("not base64!!\n", "line 1 is not base64"),
            ("c2hvcnQ=\n", "line 1 holds 5 bytes"),
        ] {
            std::fs::write(&path, content).unwrap();
            let err = MasterKey::load(&path).unwrap_err().to_string();
            assert!(err.contains(expected), "{content:?}: {err}");
            assert!(!err.contains("c2hvcnQ"), "{err}");
        }
        assert!(matches!(
            MasterKey::load(&dir.path().join("missing")),
            Err(SecretError::KeyFileIo { .. })
        ));
    }
}
