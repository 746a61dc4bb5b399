//! Errors about a reading process. Each carries the pid and the file involved.

use std::io;
use std::path::PathBuf;

use thiserror::Error;

/// Why something about a reader (or one of its ancestors) could not be found out.
#[derive(Debug, Error)]
pub enum ReaderError {
    /// The process exited (its `/proc` entry is gone).
    #[error("process {pid} is gone ({path})")]
    Gone {
        /// The process.
        pid: u32,
        /// The file that was missing.
        path: PathBuf,
    },
    /// A file of the process could not be read for another reason.
    #[error("cannot read {path} of process {pid}")]
    Io {
        /// The process.
        pid: u32,
        /// The file.
        path: PathBuf,
        /// What the kernel said.
        source: io::Error,
    },
    /// A file of the process was read but makes no sense.
    #[error("malformed {path} of process {pid}: {what}")]
    Malformed {
        /// The process.
        pid: u32,
        /// The file.
        path: PathBuf,
        /// What was wrong with it.
        what: String,
    },
}

impl ReaderError {
    /// Classifies an I/O error on `path`: a process that exited shows up as ENOENT, or as
    /// ESRCH when it exits between `open` and `read`.
    pub(crate) fn io(pid: u32, path: PathBuf, source: io::Error) -> Self {
        let gone = source.kind() == io::ErrorKind::NotFound
            || source.raw_os_error() == Some(nix::errno::Errno::ESRCH as i32);
        if gone {
            ReaderError::Gone { pid, path }
        } else {
            ReaderError::Io { pid, path, source }
        }
    }
}
