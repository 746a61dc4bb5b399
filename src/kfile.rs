//! Reading kernel files: the one path every per-request read of a `/proc`, `/sys` or cgroup
//! file takes, with errors that carry the file.
//!
//! Every FUSE read goes through here several times, so the common case does as little as
//! possible: a `pread` or two of a descriptor the thread keeps ([`kept`]) into a stack
//! buffer; no `open`, no `statx`.

pub mod kept;

use std::io;
use std::path::{Path, PathBuf};

use thiserror::Error;

/// Stack buffer size. Numeric cgroup files, `memory.stat`, `/proc/<pid>/stat` and `status` all
/// fit, so the common case allocates nothing (and skips the `statx` that `fs::read` makes to
/// size its buffer, useless on kernfs and procfs, which report 4096 or 0).
const STACK_BYTES: usize = 4096;

/// A kernel file that could not be read or understood.
#[derive(Debug, Error)]
pub enum FileError {
    /// The file could not be read (it does not exist, the process is gone, permissions, ...).
    #[error("cannot read {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the kernel said.
        source: io::Error,
    },
    /// The file was read but its content makes no sense.
    #[error("malformed {path}: {what}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What was wrong with it.
        what: String,
    },
}

impl FileError {
    /// Wraps an I/O error with the file it came from.
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        FileError::Io {
            path: path.into(),
            source,
        }
    }

    /// A malformed-content error for `path`.
    pub fn malformed(path: impl Into<PathBuf>, what: impl Into<String>) -> Self {
        FileError::Malformed {
            path: path.into(),
            what: what.into(),
        }
    }

    /// Whether the file simply does not exist (as opposed to existing but being unreadable or
    /// malformed), which decides whether to look further (e.g. at an ancestor cgroup).
    pub fn is_not_found(&self) -> bool {
        matches!(self, FileError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

/// Reads all of `path` and hands its text to `f`. Bytes that are not UTF-8 (a `comm` in
/// `/proc/<pid>/stat` can hold anything) are replaced rather than failing the whole file.
/// Kernel files are read through descriptors the thread keeps ([`kept`]).
pub fn read_with<T>(path: &Path, f: impl FnOnce(&str) -> T) -> io::Result<T> {
    let mut stack = [0u8; STACK_BYTES];
    kept::read(path, &mut stack, |bytes| f(&String::from_utf8_lossy(bytes)))
}

/// Reads `path` and parses it with `parse`, which reports what is wrong with a bad text.
pub fn read_parsed<T>(
    path: &Path,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, FileError> {
    read_with(path, parse)
        .map_err(|e| FileError::io(path, e))?
        .map_err(|what| FileError::malformed(path, what))
}

/// Reads a text file as it is.
pub fn read_text(path: &Path) -> Result<String, FileError> {
    read_with(path, str::to_owned).map_err(|e| FileError::io(path, e))
}

/// Reads a file's bytes as they are (files passed through from the host's `/sys`).
pub fn read_bytes(path: &Path) -> io::Result<Vec<u8>> {
    std::fs::read(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_small_and_large_files_whole() {
        let dir = tempfile::tempdir().unwrap();
        let small = dir.path().join("small");
        std::fs::write(&small, "42\n").unwrap();
        assert_eq!(read_with(&small, str::to_owned).unwrap(), "42\n");

        let big_text: String = (0..3000).map(|i| format!("key{i} {i}\n")).collect();
        let big = dir.path().join("big");
        std::fs::write(&big, &big_text).unwrap();
        assert!(big_text.len() > STACK_BYTES);
        assert_eq!(read_with(&big, str::len).unwrap(), big_text.len());
        assert_eq!(read_with(&big, str::to_owned).unwrap(), big_text);
        assert_eq!(read_text(&big).unwrap(), big_text);
    }

    #[test]
    fn exactly_full_stack_buffer_is_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let text = "x".repeat(STACK_BYTES);
        std::fs::write(&p, &text).unwrap();
        assert_eq!(read_with(&p, str::len).unwrap(), STACK_BYTES);
    }

    #[test]
    fn invalid_utf8_is_replaced_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"1 (a\xffb) R 0").unwrap();
        assert!(read_with(&p, |t| t.ends_with(") R 0")).unwrap());
    }

    #[test]
    fn missing_file_is_not_found() {
        let e = read_parsed(Path::new("/nonexistent/lxcfs-rs/x"), |_| Ok(())).unwrap_err();
        assert!(e.is_not_found());
        assert!(e.to_string().contains("/nonexistent/lxcfs-rs/x"));
        assert!(
            read_text(Path::new("/nonexistent/lxcfs-rs/x"))
                .unwrap_err()
                .is_not_found()
        );
    }

    #[test]
    fn malformed_names_the_file_and_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, "abc").unwrap();
        let e = read_parsed(&p, |t| t.parse::<u64>().map_err(|_| format!("{t:?}"))).unwrap_err();
        assert!(!e.is_not_found());
        assert_eq!(e.to_string(), format!("malformed {}: \"abc\"", p.display()));
    }
}
