//! `lxcfs-rs show`: what a process would read, printed without mounting anything.

use std::io::{self, Write};

use thiserror::Error;

use crate::fs::{Caller, Provider};
use crate::host::HostPaths;
use crate::view::{View, generated_files};

/// Why `show` stopped.
#[derive(Debug, Error)]
pub enum ShowError {
    /// The pid names no process.
    #[error("no process with pid {0}")]
    NoProcess(u32),
    /// The file is not in the tree.
    #[error("{0}: no such file in the lxcfs-rs tree")]
    NoSuchFile(String),
    /// The file could not be made.
    #[error("{file}")]
    File {
        /// The file, relative to the mount.
        file: String,
        /// Why.
        source: io::Error,
    },
    /// Our output could not be written.
    #[error("writing output")]
    Output(#[source] io::Error),
}

/// Writes what `pid` would read from each of `files` (every generated file when empty) to
/// `out`; with more than one file, each is preceded by a `==> FILE <==` header as `head`
/// prints it.
pub fn show(
    view: &View,
    host: &HostPaths,
    pid: u32,
    files: &[String],
    out: &mut impl Write,
) -> Result<(), ShowError> {
    if !host.pid_file(pid, "").is_dir() {
        return Err(ShowError::NoProcess(pid));
    }
    let files: Vec<String> = if files.is_empty() {
        generated_files().map(str::to_string).collect()
    } else {
        files
            .iter()
            .map(|f| f.trim_start_matches('/').to_string())
            .collect()
    };
    let headers = files.len() > 1;
    let caller = Caller { pid, request: 0 };
    for (i, file) in files.iter().enumerate() {
        let content = view.content(file, caller).map_err(|source| {
            if source.kind() == io::ErrorKind::NotFound {
                ShowError::NoSuchFile(file.clone())
            } else {
                ShowError::File {
                    file: file.clone(),
                    source,
                }
            }
        })?;
        let write = |out: &mut dyn Write| -> io::Result<()> {
            if headers {
                let sep = if i == 0 { "" } else { "\n" };
                writeln!(out, "{sep}==> {file} <==")?;
            }
            out.write_all(&content)
        };
        match write(out) {
            // The reader of our output is gone (`| head`): stop quietly, as cat does.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(ShowError::Output(e)),
            Ok(()) => {}
        }
    }
    Ok(())
}
