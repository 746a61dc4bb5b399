//! The mount table: /proc/self/mountinfo parsed, FUSE mounts and v1 cgroup hierarchies.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::CONTROLLERS;

/// One line of /proc/self/mountinfo.
#[derive(Debug, Clone)]
pub struct MountLine {
    /// The mount's id (unique while it is mounted).
    pub id: u32,
    /// The id of the mount it is mounted on (itself for a namespace's root).
    pub parent: u32,
    /// `major:minor` of the mounted filesystem (unique per FUSE connection).
    pub dev: String,
    pub root: String,
    pub mount_point: PathBuf,
    pub mount_options: String,
    pub fstype: String,
    /// The mount source (what `mount` shows before "on").
    pub source: String,
    pub super_options: String,
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The mounts of our mount namespace.
pub fn mountinfo() -> Vec<MountLine> {
    mountinfo_at(Path::new("/proc/self/mountinfo"))
}

/// The mounts `path` lists: `/proc/<pid>/mountinfo` for another process's mount namespace
/// (mount points as that process sees them).
pub fn mountinfo_at(path: &Path) -> Vec<MountLine> {
    let text =
        fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    parse_mountinfo(&text)
}

/// The mounts of a mountinfo text (another mount namespace's, saved by a process in it).
pub fn parse_mountinfo(text: &str) -> Vec<MountLine> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let l: Vec<&str> = left.split(' ').collect();
            let r: Vec<&str> = right.split(' ').collect();
            Some(MountLine {
                id: l.first()?.parse().ok()?,
                parent: l.get(1)?.parse().ok()?,
                dev: l.get(2)?.to_string(),
                root: unescape(l.get(3)?),
                mount_point: PathBuf::from(unescape(l.get(4)?)),
                mount_options: l.get(5)?.to_string(),
                fstype: r.first()?.to_string(),
                source: r.get(1).unwrap_or(&"").to_string(),
                super_options: r.get(2).unwrap_or(&"").to_string(),
            })
        })
        .collect()
}

/// The FUSE mount at exactly `path` (the last one, if stacked).
pub fn fuse_mount_at(path: &Path) -> Option<MountLine> {
    mountinfo()
        .into_iter()
        .rev()
        .find(|m| m.mount_point == path && (m.fstype == "fuse" || m.fstype.starts_with("fuse.")))
}

/// Whether anything is mounted at exactly `path`.
pub fn is_mounted(path: &Path) -> bool {
    mountinfo().iter().any(|m| m.mount_point == path)
}

/// How many mounts there are at exactly `path`.
pub fn mounts_at(path: &Path) -> usize {
    mountinfo().iter().filter(|m| m.mount_point == path).count()
}

/// Mount directory of each v1 controller, from mountinfo (fstype `cgroup`, controller names in
/// the super options). Co-mounted controllers map to the same directory.
pub fn v1_mounts() -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    for m in mountinfo() {
        if m.fstype != "cgroup" {
            continue;
        }
        for opt in m.super_options.split(',') {
            if CONTROLLERS.contains(&opt) {
                out.entry(opt.to_string())
                    .or_insert_with(|| m.mount_point.clone());
            }
        }
    }
    out
}

/// The command line of `sh -c SCRIPT sh ARGS...` run by `unshare` in a private mount
/// namespace of its own (plus `unshare_flags`, e.g. `--pid --fork --mount-proc`), so that
/// whatever the script mounts is gone with it and never seen by the host.
pub fn sh_in_private_mount_ns<'a>(
    unshare_flags: &[&'a str],
    script: &'a str,
    args: &[&'a str],
) -> Vec<&'a str> {
    let mut argv = vec!["unshare", "--mount", "--propagation", "private"];
    argv.extend_from_slice(unshare_flags);
    argv.extend(["sh", "-c", script, "sh"]);
    argv.extend_from_slice(args);
    argv
}

/// `st_ino` of every file, directory and link under `root`, by relative path (only for a
/// mount that is served: a stat of an unserved FUSE mount waits for its server).
pub fn inodes(root: &Path) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for e in fs::read_dir(&dir).unwrap_or_else(|e| panic!("listing {}: {e}", dir.display())) {
            let e = e.expect("a directory entry");
            let meta = fs::symlink_metadata(e.path()).expect("lstat");
            let rel = e.path().strip_prefix(root).unwrap().display().to_string();
            out.insert(rel, meta.ino());
            if meta.is_dir() {
                dirs.push(e.path());
            }
        }
    }
    out
}

/// `major:minor` of the FUSE mount at `mnt`, from /proc/self/mountinfo: never a stat, which
/// would wait on a connection that is alive but unserved.
#[track_caller]
pub fn fuse_dev(mnt: &Path) -> String {
    fuse_mount_at(mnt)
        .unwrap_or_else(|| panic!("no FUSE mount at {} in mountinfo", mnt.display()))
        .dev
}
