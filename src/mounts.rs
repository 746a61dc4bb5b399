//! Mount-table queries: the mountinfo parser shared by cgroup discovery, and what is mounted
//! where, for the daemon (is a FUSE daemon already there?), `bind-args` and the hooks (is an
//! lxcfs filesystem there to bind from?).

use std::path::{Path, PathBuf};

use procfs::process::MountInfo;

use crate::host::own;
use crate::kfile;

/// The mounts of a mountinfo text as procfs parses them, with the mount point and root
/// fields unescaped; unparsable lines are skipped.
pub fn parse_mounts(text: &str) -> impl Iterator<Item = MountInfo> + '_ {
    text.lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .filter_map(|line| {
            MountInfo::from_line(line)
                .map_err(|e| log::debug!("mountinfo: skipping unparsable line {line:?}: {e}"))
                .ok()
                .map(|mut info| {
                    info.mount_point = PathBuf::from(unescape(&info.mount_point.to_string_lossy()));
                    info.root = unescape(&info.root);
                    info
                })
        })
}

/// Whether a FUSE filesystem (any) is mounted exactly at `path`.
pub fn is_fuse_mountpoint(path: &Path) -> bool {
    mounted_type_at(path).is_some_and(|t| t == "fuse" || t.starts_with("fuse."))
}

/// Whether lxcfs-rs or the C lxcfs (both `fuse.lxcfs`) serves exactly `path`: what
/// `bind-args` and the hooks bind from.
pub fn is_lxcfs_mountpoint(path: &Path) -> bool {
    mounted_type_at(path).is_some_and(|t| t == "fuse.lxcfs")
}

/// The topmost mount at exactly `path` in our mount namespace: its type and its device
/// (`major:minor`), read from mountinfo without touching the mount (a FUSE mount whose daemon
/// is alive but not serving would block a `stat`).
pub fn mount_at(path: &Path) -> Option<(String, u32, u32)> {
    let text = kfile::read_text(Path::new(own::MOUNTINFO)).ok()?;
    let m = topmost_at(&text, path)?;
    let (major, minor) = m.majmin.split_once(':')?;
    Some((m.fs_type, major.parse().ok()?, minor.parse().ok()?))
}

/// `path` made absolute without touching the file system (it may be a dead mount, which a
/// `stat` or `canonicalize` would fail on or block on).
pub fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// fusectl's directory of the FUSE connection with device `major:minor` (named by the
/// kernel's `dev_t`, `major << 20 | minor`).
pub fn fusectl_dir(major: u32, minor: u32) -> PathBuf {
    Path::new(own::FUSECTL).join(((major << 20) | minor).to_string())
}

/// The type of the topmost mount at exactly `path` in our mount namespace, if any.
fn mounted_type_at(path: &Path) -> Option<String> {
    let text = kfile::read_text(Path::new(own::MOUNTINFO)).ok()?;
    topmost_type_at(&text, path)
}

/// The last (topmost) mount at exactly `path` in a mountinfo text: the one a lookup of
/// `path` reaches.
pub fn topmost_at(mountinfo: &str, path: &Path) -> Option<MountInfo> {
    parse_mounts(mountinfo)
        .filter(|m| m.mount_point == path)
        .last()
}

/// The type of the topmost mount at exactly `path` in a mountinfo text.
fn topmost_type_at(mountinfo: &str, path: &Path) -> Option<String> {
    topmost_at(mountinfo, path).map(|m| m.fs_type)
}

/// Undoes mountinfo's octal escapes (`\040` for a space, `\011` tab, `\012` newline, `\134`
/// backslash), which procfs leaves in place.
fn unescape(field: &str) -> String {
    if !field.contains('\\') {
        return field.to_owned();
    }
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && let Some(octal) = bytes.get(i + 1..i + 4)
            && octal.iter().all(|b| (b'0'..=b'7').contains(b))
        {
            let value = octal
                .iter()
                .fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
            if let Ok(byte) = u8::try_from(value) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_octal() {
        assert_eq!(unescape("/a\\040b"), "/a b");
        assert_eq!(unescape("/a\\134b"), "/a\\b");
        assert_eq!(unescape("/plain"), "/plain");
        assert_eq!(unescape("/odd\\9"), "/odd\\9");
        assert_eq!(unescape("/end\\04"), "/end\\04");
    }

    #[test]
    fn topmost_mount_wins_and_paths_are_unescaped() {
        let text = "36 25 0:32 / /var/lib/lxcfs rw - tmpfs tmpfs rw\n\
                    37 36 0:33 / /var/lib/lxcfs rw - fuse.lxcfs lxcfs rw\n\
                    38 25 0:34 / /mnt/a\\040b rw - fuse fuse rw\n\
                    not a mount line\n";
        let at = |p: &str| topmost_type_at(text, Path::new(p));
        assert_eq!(at("/var/lib/lxcfs").as_deref(), Some("fuse.lxcfs"));
        assert_eq!(at("/mnt/a b").as_deref(), Some("fuse"));
        assert_eq!(at("/var/lib"), None);
        assert_eq!(parse_mounts(text).count(), 3);
    }
}
