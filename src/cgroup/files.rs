//! Reading whole small kernel files with as little work as possible: every FUSE read goes
//! through here several times.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use super::error::CgroupError;

/// Stack buffer size. Numeric cgroup files, `memory.stat`, `/proc/<pid>/stat` and `status` all
/// fit, so the common case allocates nothing (and skips the `statx` that `fs::read` makes to
/// size its buffer, useless on kernfs and procfs, which report 4096 or 0).
const STACK_BYTES: usize = 4096;

/// Reads all of `path` and hands its text to `f`. Bytes that are not UTF-8 (a `comm` in
/// `/proc/<pid>/stat` can hold anything) are replaced rather than failing the whole file.
pub(crate) fn read_with<T>(path: &Path, f: impl FnOnce(&str) -> T) -> io::Result<T> {
    let mut file = File::open(path)?;
    let mut stack = [0u8; STACK_BYTES];
    let mut len = 0;
    let heap;
    let bytes: &[u8] = loop {
        if len == stack.len() {
            let mut rest = stack.to_vec();
            file.read_to_end(&mut rest)?;
            heap = rest;
            break &heap;
        }
        match file.read(&mut stack[len..]) {
            Ok(0) => break &stack[..len],
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    };
    Ok(f(&String::from_utf8_lossy(bytes)))
}

/// Reads `path` and parses it with `parse`, which reports what is wrong with a bad text.
pub(crate) fn read_parsed<T>(
    path: &Path,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, CgroupError> {
    read_with(path, parse)
        .map_err(|e| CgroupError::io(path, e))?
        .map_err(|what| CgroupError::malformed(path, what))
}

/// Turns an error into "no value", leaving a debug trace: a missing or bad cgroup file must
/// fall back to the host value, never fail the whole served file.
pub(crate) fn logged<T>(result: Result<T, CgroupError>) -> Option<T> {
    match result {
        Ok(v) => Some(v),
        Err(e) => {
            log::debug!("{e}");
            None
        }
    }
}

/// Whether an error means the file simply does not exist (as opposed to existing but being
/// unreadable or malformed), which decides whether to look further (e.g. at an ancestor).
pub(crate) fn is_not_found(e: &CgroupError) -> bool {
    matches!(e, CgroupError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
}

/// Reads a text file as it is (pressure, slabinfo); `None` (logged) when unreadable.
pub(crate) fn read_text(path: &Path) -> Option<String> {
    logged(read_with(path, str::to_owned).map_err(|e| CgroupError::io(path, e)))
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
        assert!(is_not_found(&e));
        assert!(e.to_string().contains("/nonexistent/lxcfs-rs/x"));
    }
}
