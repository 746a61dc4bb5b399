//! `sys/devices/system/cpu`: the host's directory passed through, with the `cpuN` entries of
//! CPUs the reader is not shown hidden (htop and glibc's `_SC_NPROCESSORS_CONF` count them).
//! `online`, `possible`, `present` and `offline` are generated files of the tree instead.
//! Spec: `docs/semantics.md#sys-devices-system-cpu`.

use std::fs::FileType;
use std::io;
use std::path::PathBuf;

use super::context::{Reading, Sources};
use crate::kfile;

/// The directory whose other entries are passed through from the host, filtered.
pub(crate) const CPU_DIR: &str = "sys/devices/system/cpu";

/// The part of `path` below the passed-through CPU directory, if it is there.
pub(crate) fn below_cpu_dir(path: &str) -> Option<&str> {
    path.strip_prefix(CPU_DIR)?.strip_prefix('/')
}

/// Path on the host of a passed-through entry below [`CPU_DIR`].
fn host_path(src: &Sources, rest: &str) -> PathBuf {
    src.host.sys_cpu_dir().join(rest)
}

/// `Some(n)` for a `cpuN` directory name.
fn cpu_dir_index(name: &str) -> Option<u32> {
    name.strip_prefix("cpu")
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))?
        .parse()
        .ok()
}

/// Whether a [`CPU_DIR`] entry name is hidden from a reader shown `shown`.
fn hidden(name: &str, shown: &[u32]) -> bool {
    cpu_dir_index(name).is_some_and(|n| !shown.contains(&n))
}

/// A passed-through host entry as one reader sees it.
pub(crate) struct HostEntry {
    /// Its type on the host (symlinks not followed).
    pub(crate) file_type: FileType,
    /// Whether it exists only for some readers (a `cpuN` entry, hidden from readers not
    /// shown that CPU).
    pub(crate) per_reader: bool,
}

/// The passed-through entry at `rest` (below [`CPU_DIR`]) as `pid` sees it.
pub(crate) fn entry(src: &Sources, rest: &str, pid: u32) -> Option<HostEntry> {
    let first = rest.split('/').next().unwrap_or(rest);
    let per_reader = cpu_dir_index(first).is_some();
    if per_reader {
        let (shown, _) = Reading::new(src, pid).shown_cpus();
        if hidden(first, &shown) {
            return None;
        }
    }
    let meta = std::fs::symlink_metadata(host_path(src, rest)).ok()?;
    Some(HostEntry {
        file_type: meta.file_type(),
        per_reader,
    })
}

/// The host's entries of directory `path` (when it is [`CPU_DIR`] or below it; none
/// elsewhere) that `pid` sees, with their types, leaving out hidden `cpuN` entries and the
/// names `skip` says the tree serves itself.
pub(crate) fn list(
    src: &Sources,
    path: &str,
    pid: u32,
    skip: impl Fn(&str) -> bool,
) -> io::Result<Vec<(String, FileType)>> {
    let mut out = Vec::new();
    let dir = if path == CPU_DIR {
        src.host.sys_cpu_dir()
    } else {
        match below_cpu_dir(path) {
            Some(rest) => host_path(src, rest),
            None => return Ok(out),
        }
    };
    // Which cpuN entries to hide is decided once for the whole listing.
    let shown = (path == CPU_DIR).then(|| Reading::new(src, pid).shown_cpus().0);
    for entry in std::fs::read_dir(dir)?.flatten() {
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let is_hidden = shown.as_ref().is_some_and(|shown| hidden(&name, shown));
        if is_hidden || skip(&name) {
            continue;
        }
        let Ok(file_type) = entry.file_type() else {
            continue;
        };
        out.push((name, file_type));
    }
    Ok(out)
}

/// The content of passed-through file `rest`, as the host has it.
pub(crate) fn content(src: &Sources, rest: &str) -> io::Result<Vec<u8>> {
    kfile::read_bytes(&host_path(src, rest))
}

/// The target of passed-through symlink `rest`.
pub(crate) fn readlink(src: &Sources, rest: &str) -> io::Result<Vec<u8>> {
    Ok(std::fs::read_link(host_path(src, rest))?
        .into_os_string()
        .into_encoded_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_directory_names() {
        assert_eq!(cpu_dir_index("cpu0"), Some(0));
        assert_eq!(cpu_dir_index("cpu17"), Some(17));
        assert_eq!(cpu_dir_index("cpufreq"), None);
        assert_eq!(cpu_dir_index("cpu"), None);
        assert!(hidden("cpu3", &[0, 1]));
        assert!(!hidden("cpu1", &[0, 1]));
        assert!(!hidden("cpufreq", &[]));
    }

    #[test]
    fn paths_below_the_cpu_directory() {
        assert_eq!(
            below_cpu_dir("sys/devices/system/cpu/cpu0/topology"),
            Some("cpu0/topology")
        );
        assert_eq!(below_cpu_dir("sys/devices/system/cpux"), None);
        assert_eq!(below_cpu_dir(CPU_DIR), None);
    }
}
