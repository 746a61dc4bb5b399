//! `lxcfs-rs show`: what a process would read, printed without mounting anything.

use std::io::{self, Write};

use crate::fs::Provider;
use crate::host::HostPaths;
use crate::view::{View, generated_files};

/// Writes what `pid` would read from each of `files` (every generated file when empty) to
/// `out`; with more than one file, each is preceded by a `==> FILE <==` header as `head`
/// prints it. Errors name the file or the pid.
pub fn show(
    view: &View,
    host: &HostPaths,
    pid: u32,
    files: &[String],
    out: &mut impl Write,
) -> Result<(), String> {
    if !host.pid_file(pid, "").is_dir() {
        return Err(format!("no process with pid {pid}"));
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
    for (i, file) in files.iter().enumerate() {
        let content = view
            .content(file, pid)
            .map_err(|e| format!("{file}: {}", describe(&e)))?;
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
            Err(e) => return Err(format!("writing output: {e}")),
            Ok(()) => {}
        }
    }
    Ok(())
}

fn describe(e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::NotFound {
        "no such file in the lxcfs-rs tree".to_string()
    } else {
        e.to_string()
    }
}
