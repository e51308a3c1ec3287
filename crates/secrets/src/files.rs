//! [`SecretFiles`]: which files a `file:` secret reference may name.
//!
//! A secret is written through the API, so a `file:` reference is untrusted input: left open it
//! would let any API caller send any file the server can read (the master key, `/etc/shadow`) to
//! a destination of its choosing. The operator therefore lists the directories secret managers
//! mount secrets in (`serve --secret-files-dir DIR`); by default there are none and every `file:`
//! reference is refused.
//!
//! Invariants:
//! - a path is allowed only when its canonical form (symlinks and `..` resolved) lies under an
//!   allowed directory's canonical form and under no protected one (the data directory and the
//!   master key file, protected whatever the allowed list says);
//! - the check is made when a reference is written and again at every read, on the file that was
//!   actually opened, so a symlink swapped in later cannot lead elsewhere.
//!
//! Must not: read anything but an allowed file, or put a file's content in an error.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use zeroize::Zeroizing;

use crate::{Secret, SecretError};

/// Largest secret file read: credentials are small, and a reference to a large file is a mistake
/// (or an attempt to make the server read one at every attempt).
const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// The directories `file:` secrets may be read from, and the paths they never may.
#[derive(Debug, Clone, Default)]
pub struct SecretFiles {
    /// Canonical forms of the directories the operator listed.
    allowed: Vec<PathBuf>,
    /// Canonical forms of the paths refused whatever `allowed` says (a missing one is kept in
    /// its lexical form, so that it is refused once created).
    protected: Vec<PathBuf>,
}

impl SecretFiles {
    /// No directory allowed: every `file:` reference is refused.
    pub fn none() -> SecretFiles {
        SecretFiles::default()
    }

    /// `allowed` are the operator's directories (each must exist); `protected` are paths never
    /// readable as secrets (the data directory, the master key file).
    pub fn new(allowed: &[PathBuf], protected: &[PathBuf]) -> Result<SecretFiles, SecretError> {
        let allowed = allowed
            .iter()
            .map(|dir| {
                let canonical = dir
                    .canonicalize()
                    .map_err(|source| SecretError::SecretFileIo {
                        path: dir.clone(),
                        source,
                    })?;
                if !canonical.is_dir() {
                    return Err(SecretError::SecretFileInvalid {
                        path: dir.clone(),
                        reason: "is not a directory",
                    });
                }
                Ok(canonical)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let protected = protected
            .iter()
            .map(|path| {
                path.canonicalize().unwrap_or_else(|_| {
                    normalize(&std::path::absolute(path).unwrap_or_else(|_| path.clone()))
                })
            })
            .collect();
        Ok(SecretFiles { allowed, protected })
    }

    /// Whether any directory is allowed.
    pub fn is_enabled(&self) -> bool {
        !self.allowed.is_empty()
    }

    /// The check made when a reference is written: the path, with `..` and (where it exists)
    /// symlinks resolved, must be under an allowed directory and no protected path. A file that
    /// does not exist yet is allowed when its directory is (a secret manager may mount it later).
    pub fn check(&self, path: &Path) -> Result<(), SecretError> {
        let resolved = match path.canonicalize() {
            Ok(canonical) => canonical,
            Err(_) => {
                let lexical = normalize(&std::path::absolute(path).unwrap_or_else(|_| path.into()));
                match lexical.parent().map(Path::canonicalize) {
                    Some(Ok(parent)) => parent.join(lexical.file_name().unwrap_or_default()),
                    _ => lexical,
                }
            }
        };
        self.permits(path, &resolved)
    }

    /// Reads a secret file: the check again, on the file that was opened; one trailing newline
    /// dropped (tools that write secret files often add one, and it is never part of a
    /// credential).
    pub fn read(&self, path: &Path) -> Result<Secret, SecretError> {
        let io = |source| SecretError::SecretFileIo {
            path: path.to_path_buf(),
            source,
        };
        let canonical = path.canonicalize().map_err(io)?;
        self.permits(path, &canonical)?;
        let file = std::fs::File::open(&canonical).map_err(io)?;
        // The path of what was opened, not of what was checked: a symlink swapped in between
        // the two is caught here. (Linux; elsewhere the check above is all there is.)
        if let Ok(opened) = std::fs::read_link(format!("/proc/self/fd/{}", fd_of(&file))) {
            self.permits(path, &opened)?;
        }
        let mut bytes = Zeroizing::new(Vec::new());
        file.take(MAX_SECRET_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(io)?;
        let invalid = |reason| SecretError::SecretFileInvalid {
            path: path.to_path_buf(),
            reason,
        };
        if bytes.len() as u64 > MAX_SECRET_FILE_BYTES {
            return Err(invalid("larger than 64 KiB"));
        }
        let text = std::str::from_utf8(&bytes).map_err(|_| invalid("not UTF-8 text"))?;
        let text = text
            .strip_suffix("\r\n")
            .or_else(|| text.strip_suffix('\n'))
            .unwrap_or(text);
        if text.is_empty() {
            return Err(invalid("empty"));
        }
        Ok(Secret::new(text))
    }

    fn permits(&self, written: &Path, resolved: &Path) -> Result<(), SecretError> {
        let refused = |reason: String| SecretError::SecretFileRefused {
            path: written.to_path_buf(),
            reason,
        };
        if self.allowed.is_empty() {
            return Err(refused(
                "this server reads no file: secrets; its operator can allow a directory with --secret-files-dir DIR".into(),
            ));
        }
        if self.protected.iter().any(|p| resolved.starts_with(p)) {
            return Err(refused(
                "it is the master key or inside the data directory, which are never readable as secrets".into(),
            ));
        }
        if !self.allowed.iter().any(|dir| resolved.starts_with(dir)) {
            let dirs: Vec<String> = self
                .allowed
                .iter()
                .map(|d| d.display().to_string())
                .collect();
            return Err(refused(format!(
                "it is not inside a directory allowed with --secret-files-dir ({})",
                dirs.join(", ")
            )));
        }
        Ok(())
    }
}

#[cfg(unix)]
fn fd_of(file: &std::fs::File) -> i32 {
    std::os::fd::AsRawFd::as_raw_fd(file)
}

#[cfg(not(unix))]
fn fd_of(_: &std::fs::File) -> i32 {
    -1
}

/// `..` and `.` removed without touching the file system (for paths that do not exist).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Layout {
        _root: tempfile::TempDir,
        secrets: PathBuf,
        data: PathBuf,
        outside: PathBuf,
    }

    fn layout() -> Layout {
        let root = tempfile::tempdir().unwrap();
        let secrets = root.path().join("secrets");
        let data = root.path().join("data");
        let outside = root.path().join("outside");
        for dir in [&secrets, &data, &outside] {
            std::fs::create_dir(dir).unwrap();
        }
        std::fs::write(secrets.join("token"), "s3cret\n").unwrap();
        std::fs::write(data.join("master.key"), "key").unwrap();
        std::fs::write(outside.join("shadow"), "root:x").unwrap();
        Layout {
            _root: root,
            secrets,
            data,
            outside,
        }
    }

    fn policy(layout: &Layout, allowed: &[&PathBuf]) -> SecretFiles {
        let allowed: Vec<PathBuf> = allowed.iter().map(|p| p.to_path_buf()).collect();
        SecretFiles::new(&allowed, std::slice::from_ref(&layout.data)).unwrap()
    }

    fn refusal(result: Result<impl std::fmt::Debug, SecretError>) -> String {
        match result {
            Err(error @ SecretError::SecretFileRefused { .. }) => error.to_string(),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn no_directory_configured_refuses_every_file_and_names_the_flag() {
        let layout = layout();
        let files = SecretFiles::none();
        let message = refusal(files.check(&layout.secrets.join("token")));
        assert!(message.contains("--secret-files-dir"), "{message}");
        refusal(files.read(&layout.secrets.join("token")));
    }

    #[test]
    fn reads_allowed_files_only() {
        let layout = layout();
        let files = policy(&layout, &[&layout.secrets]);
        assert_eq!(
            files.read(&layout.secrets.join("token")).unwrap().expose(),
            "s3cret"
        );
        files
            .check(&layout.secrets.join("not-yet-mounted"))
            .unwrap();
        let message = refusal(files.read(&layout.outside.join("shadow")));
        assert!(message.contains("not inside"), "{message}");
        refusal(files.check(&layout.outside.join("shadow")));
    }

    #[test]
    fn dot_dot_and_symlinks_are_resolved_before_the_check() {
        let layout = layout();
        let files = policy(&layout, &[&layout.secrets]);
        let climbing = layout.secrets.join("../outside/shadow");
        refusal(files.check(&climbing));
        refusal(files.read(&climbing));
        refusal(files.check(&layout.secrets.join("../outside/missing")));
        #[cfg(unix)]
        {
            let link = layout.secrets.join("link");
            std::os::unix::fs::symlink(layout.outside.join("shadow"), &link).unwrap();
            refusal(files.check(&link));
            refusal(files.read(&link));
        }
    }

    #[test]
    fn the_data_directory_is_protected_even_inside_an_allowed_directory() {
        let layout = layout();
        let parent = layout.data.parent().unwrap().to_path_buf();
        let files = policy(&layout, &[&parent]);
        let message = refusal(files.read(&layout.data.join("master.key")));
        assert!(message.contains("never readable"), "{message}");
        files.read(&layout.secrets.join("token")).unwrap();
    }

    #[test]
    fn large_and_empty_files_are_refused_without_their_content() {
        let layout = layout();
        let files = policy(&layout, &[&layout.secrets]);
        let big = layout.secrets.join("big");
        std::fs::write(&big, "x".repeat(70 * 1024)).unwrap();
        assert!(matches!(
            files.read(&big),
            Err(SecretError::SecretFileInvalid { .. })
        ));
        std::fs::write(layout.secrets.join("empty"), "\n").unwrap();
        assert!(matches!(
            files.read(&layout.secrets.join("empty")),
            Err(SecretError::SecretFileInvalid {
                reason: "empty",
                ..
            })
        ));
    }

    #[test]
    fn a_missing_allowed_directory_is_an_error_at_start() {
        let layout = layout();
        let missing = layout.secrets.join("nope");
        assert!(SecretFiles::new(&[missing], &[]).is_err());
    }
}
