//! The mount namespaces the test's containers' processes are in, read from
//! `/proc/<pid>/mountinfo` (never a stat of a mount, which could wait on an unserved
//! connection), and what their lxcfs mounts show: dead ones left on top, dead ones covered
//! by a live mount (locked: they cannot be unmounted), mount points that got another
//! connection than the live one.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use crate::common::container::Container;
use crate::common::{MountLine, parse_mountinfo};

/// A container as the scans know it: its name (for messages) and its id (its cgroup's name).
#[derive(Debug, Clone)]
pub(crate) struct Member {
    /// The name given to its spec.
    pub(crate) name: String,
    /// runc's id, also the name of its cgroup in every hierarchy.
    pub(crate) id: String,
}

impl Member {
    /// The container `c`.
    pub(crate) fn of(c: &Container) -> Member {
        Member {
            name: c.name.clone(),
            id: c.id.clone(),
        }
    }
}

/// One mount namespace of a container's processes.
#[derive(Debug, Clone)]
pub(crate) struct Ns {
    /// The inode of `/proc/<pid>/ns/mnt`: the namespace's identity.
    pub(crate) ns: u64,
    /// The container whose processes are in it.
    pub(crate) container: String,
    /// Its processes (host pids), ascending.
    pub(crate) pids: Vec<u32>,
    /// `/proc/<pids[0]>/mountinfo` as read.
    pub(crate) raw: String,
    /// The same, parsed.
    pub(crate) mounts: Vec<MountLine>,
}

/// The mount namespaces of some containers, by namespace inode.
pub(crate) type Namespaces = BTreeMap<u64, Ns>;

/// The container of `members` whose cgroup process `pid` is in (any hierarchy; a nested
/// namespace's processes stay in their container's cgroup).
fn member_of(pid: u32, members: &[Member]) -> Option<&Member> {
    let cgroups = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    members.iter().find(|m| {
        let own = format!("/{}", m.id);
        cgroups.lines().any(|l| {
            let path = l.splitn(3, ':').nth(2).unwrap_or_default();
            path == own || path.starts_with(&format!("{own}/"))
        })
    })
}

/// The mount namespaces of every process of `members` now. A process that exits during the
/// scan is left out.
pub(crate) fn namespaces(members: &[Member]) -> Namespaces {
    let mut out = Namespaces::new();
    let mut pids: Vec<u32> = fs::read_dir("/proc")
        .expect("listing /proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    for pid in pids {
        let Some(member) = member_of(pid, members) else {
            continue;
        };
        let Ok(meta) = fs::metadata(format!("/proc/{pid}/ns/mnt")) else {
            continue;
        };
        if let Some(ns) = out.get_mut(&meta.ino()) {
            ns.pids.push(pid);
            continue;
        }
        let Ok(raw) = fs::read_to_string(format!("/proc/{pid}/mountinfo")) else {
            continue;
        };
        out.insert(
            meta.ino(),
            Ns {
                ns: meta.ino(),
                container: member.name.clone(),
                pids: vec![pid],
                mounts: parse_mountinfo(&raw),
                raw,
            },
        );
    }
    out
}

/// The file or directory of the filesystem mounted at `m` (mountinfo's fourth field),
/// without the `//deleted` the kernel appends once that dentry is unhashed: on a dead
/// connection a lookup's failed revalidation (another container reading through a
/// directory bind) unhashes it, and every bind of that file then shows `//deleted`.
pub(crate) fn root_of(m: &MountLine) -> &str {
    m.root.strip_suffix("//deleted").unwrap_or(&m.root)
}

/// Whether `m` is a mount of lxcfs or lxcfs-rs (both `fuse.lxcfs`, source `lxcfs`).
pub(crate) fn is_lxcfs(m: &MountLine) -> bool {
    m.fstype == "fuse.lxcfs" || (m.fstype == "fuse" && m.source == "lxcfs")
}

impl Ns {
    /// The mount stacked directly on `m` at the same mount point, if any.
    fn above(&self, m: &MountLine) -> Option<&MountLine> {
        self.mounts
            .iter()
            .find(|n| n.parent == m.id && n.mount_point == m.mount_point && n.id != m.id)
    }

    /// The topmost mount of the stack `m` is in: what a path at `m`'s mount point reaches.
    pub(crate) fn top_of<'a>(&'a self, m: &'a MountLine) -> &'a MountLine {
        let mut top = m;
        // A stack never loops; the bound keeps a malformed text from hanging the test.
        for _ in 0..self.mounts.len() {
            match self.above(top) {
                Some(n) => top = n,
                None => break,
            }
        }
        top
    }

    /// The lxcfs mounts of a connection in `devs`.
    pub(crate) fn of_devs<'a>(&'a self, devs: &'a [String]) -> impl Iterator<Item = &'a MountLine> {
        self.mounts
            .iter()
            .filter(move |m| is_lxcfs(m) && devs.contains(&m.dev))
    }

    /// Where the lxcfs mounts of a connection in `devs` are: (mount point, the file or
    /// directory of the filesystem mounted there).
    pub(crate) fn points_of(&self, devs: &[String]) -> Vec<(PathBuf, String)> {
        self.of_devs(devs)
            .map(|m| (m.mount_point.clone(), root_of(m).to_string()))
            .collect()
    }

    /// The lxcfs mounts of `dead` connections, split into those a path reaches (left on top:
    /// reads there fail) and those covered by another mount.
    pub(crate) fn dead_split<'a>(
        &'a self,
        dead: &'a [String],
    ) -> (Vec<&'a MountLine>, Vec<&'a MountLine>) {
        self.of_devs(dead)
            .partition(|m| std::ptr::eq(self.top_of(m), *m))
    }

    /// Dead mounts of `dead` covered by a mount of the `live` connection: what a pass that
    /// mounted on top leaves (a locked mount cannot be unmounted).
    pub(crate) fn covered_by_live(&self, dead: &[String], live: &str) -> usize {
        let (_, covered) = self.dead_split(dead);
        covered
            .into_iter()
            .filter(|m| self.top_of(m).dev == live)
            .count()
    }

    /// The container and the namespace: what names it in messages, whatever its pids.
    pub(crate) fn name(&self) -> String {
        format!("container {} mnt:[{}]", self.container, self.ns)
    }

    /// A name for messages: the container, the namespace and its processes.
    pub(crate) fn label(&self) -> String {
        format!("{} (pids {:?})", self.name(), self.pids)
    }
}

/// What is wrong with the namespaces `after` a pass that should have re-bound every mount of
/// the `dead` connections that `before` showed to the `live` one. For each namespace: it
/// still exists; at every mount point where a dead connection was, a path reaches a mount of
/// the live connection with the same file or directory; no dead mount is left on top. Dead
/// mounts covered by live ones (locked) are allowed; the report must count them.
pub(crate) fn heal_problems(
    before: &Namespaces,
    after: &Namespaces,
    dead: &[String],
    live: &str,
) -> Vec<String> {
    let mut bad = Vec::new();
    for (ino, was) in before {
        let points = was.points_of(dead);
        if points.is_empty() {
            continue;
        }
        let Some(now) = after.get(ino) else {
            bad.push(format!(
                "{}: the namespace is gone (its processes exited: was the container \
                 restarted?)",
                was.label()
            ));
            continue;
        };
        let mut still_dead = Vec::new();
        for (point, root) in &points {
            let tops: Vec<&MountLine> = now
                .mounts
                .iter()
                .filter(|m| &m.mount_point == point)
                .map(|m| now.top_of(m))
                .collect();
            match tops.last() {
                Some(top) if top.dev == live && is_lxcfs(top) && root_of(top) == root => {}
                Some(top) if dead.contains(&top.dev) => still_dead.push(point.display()),
                Some(top) => bad.push(format!(
                    "{}: {} shows {} {} {} (wanted {root} of the live connection {live})",
                    now.label(),
                    point.display(),
                    top.fstype,
                    top.dev,
                    top.root
                )),
                None => bad.push(format!(
                    "{}: nothing is mounted at {} any more (wanted {root} of {live})",
                    now.label(),
                    point.display()
                )),
            }
        }
        if !still_dead.is_empty() {
            bad.push(format!(
                "{}: still the dead connection at {}",
                now.label(),
                still_dead
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        // Dead mounts on top elsewhere than where the connection was bound before.
        let (exposed, _) = now.dead_split(dead);
        for m in exposed
            .into_iter()
            .filter(|m| !points.iter().any(|(p, _)| p == &m.mount_point))
        {
            bad.push(format!(
                "{}: a dead lxcfs mount is left on top at {} ({} {})",
                now.label(),
                m.mount_point.display(),
                m.dev,
                m.root
            ));
        }
    }
    bad
}

/// How many dead and covered mounts each namespace of `nss` holds, for a report: "mnt:[N]
/// (container): D dead, C covered".
pub(crate) fn dead_counts(nss: &Namespaces, dead: &[String], live: &str) -> Vec<String> {
    nss.values()
        .filter_map(|ns| {
            let n = ns.of_devs(dead).count();
            (n > 0).then(|| {
                format!(
                    "{}: {n} dead lxcfs mounts, {} covered by live ones",
                    ns.label(),
                    ns.covered_by_live(dead, live)
                )
            })
        })
        .collect()
}

/// Namespaces of `before` whose mountinfo differs in `after`, or that are gone, as messages.
pub(crate) fn changed(before: &Namespaces, after: &Namespaces) -> Vec<String> {
    let mut bad = Vec::new();
    for (ino, was) in before {
        match after.get(ino) {
            None => bad.push(format!("{}: the namespace is gone", was.label())),
            Some(now) if now.raw != was.raw => {
                let old: Vec<&str> = was.raw.lines().collect();
                let new: Vec<&str> = now.raw.lines().collect();
                bad.push(format!(
                    "{}: mountinfo changed; lines gone {:?}, lines new {:?}",
                    was.label(),
                    old.iter().filter(|l| !new.contains(l)).collect::<Vec<_>>(),
                    new.iter().filter(|l| !old.contains(l)).collect::<Vec<_>>()
                ));
            }
            Some(_) => {}
        }
    }
    bad
}
