//! Finding dead LXCFS mounts in a mount table, without touching them (a dead FUSE mount
//! fails or blocks whoever `stat`s it): pure parsing of mountinfo text.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::mounts::parse_mounts;

/// A mount of an LXCFS filesystem whose connection is not the live one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadMount {
    /// The mount's id in its table (field 1).
    pub id: u32,
    /// What it shows of the filesystem (field 4): `/proc/meminfo`, `/sys/devices/system/cpu`,
    /// or `/` for the whole tree.
    pub root: String,
    /// Where it is mounted, as the table's owner sees it (field 5).
    pub target: PathBuf,
    /// Its per-mount flags that a replacement must keep: `ro`, `nosuid`, `nodev`, `noexec`.
    pub flags: Vec<String>,
    /// Another mount covers it at the same place: nobody reads through it any more.
    pub covered: bool,
}

/// Whether a mount is an LXCFS filesystem: ours and the C lxcfs's are `fuse.lxcfs`; an lxcfs
/// mounted through plain libfuse is `fuse` with source `lxcfs`.
pub fn is_lxcfs(fs_type: &str, source: Option<&str>) -> bool {
    fs_type == "fuse.lxcfs" || (fs_type == "fuse" && source == Some("lxcfs"))
}

/// The devices (`major:minor`) of the LXCFS mounts in `mountinfo`.
pub fn lxcfs_devices(mountinfo: &str) -> BTreeSet<String> {
    parse_mounts(mountinfo)
        .filter(|m| is_lxcfs(&m.fs_type, m.mount_source.as_deref()))
        .map(|m| m.majmin)
        .collect()
}

/// The LXCFS mounts of `mountinfo` whose device is one of `dead`, in table order; those
/// covered by another mount at the same place (a locked dead mount covered by an earlier
/// pass) are marked, to be reported but not covered again (that would only stack mounts).
pub fn dead_mounts(mountinfo: &str, dead: &BTreeSet<String>) -> Vec<DeadMount> {
    let all: Vec<_> = parse_mounts(mountinfo).collect();
    let covered = |m: &procfs::process::MountInfo| {
        all.iter()
            .any(|c| c.pid == m.mnt_id && c.mount_point == m.mount_point)
    };
    all.iter()
        .filter(|m| is_lxcfs(&m.fs_type, m.mount_source.as_deref()) && dead.contains(&m.majmin))
        .map(|m| (covered(m), m.clone()))
        .map(|(covered, m)| {
            let mut flags: Vec<String> = m
                .mount_options
                .keys()
                .filter(|k| matches!(k.as_str(), "ro" | "nosuid" | "nodev" | "noexec"))
                .cloned()
                .collect();
            flags.sort();
            DeadMount {
                covered,
                id: m.mnt_id as u32,
                // A file whose dentry the kernel dropped (a lookup in the dead filesystem does
                // that) is named with a `//deleted` suffix; the live file has the plain name.
                root: m
                    .root
                    .strip_suffix("//deleted")
                    .map_or(m.root.clone(), str::to_string),
                target: m.mount_point,
                flags,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A runc container's table: its rootfs, its /proc, three files and the cpu directory
    /// bound from a dead lxcfs-rs (0:52), one from the live one (0:60), and the C lxcfs's.
    const CONTAINER: &str = "\
812 700 8:1 /var/lib/ct/rootfs / ro,relatime - ext4 /dev/sda1 rw
813 812 0:5 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
814 813 0:52 /proc/meminfo /proc/meminfo ro,nosuid,nodev,relatime - fuse.lxcfs lxcfs rw,user_id=0,group_id=0,allow_other
815 813 0:52 /proc/a\\040b /proc/a\\040b ro,nosuid,nodev,noexec,relatime - fuse.lxcfs lxcfs rw,user_id=0,group_id=0,allow_other
816 812 0:52 /sys/devices/system/cpu /sys/devices/system/cpu ro,nosuid,nodev,relatime - fuse.lxcfs lxcfs rw
817 813 0:60 /proc/stat /proc/stat ro,nosuid,nodev,relatime - fuse.lxcfs lxcfs rw
818 812 0:61 / /var/lib/lxcfs rw,relatime - fuse lxcfs rw,user_id=0
819 812 0:62 / /mnt/other rw,relatime - fuse sshfs rw
";

    fn devs(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|d| d.to_string()).collect()
    }

    #[test]
    fn the_mounts_of_dead_devices_are_found() {
        assert_eq!(lxcfs_devices(CONTAINER), devs(&["0:52", "0:60", "0:61"]));
        let dead = dead_mounts(CONTAINER, &devs(&["0:52", "0:61"]));
        let got: Vec<(u32, &str, &str)> = dead
            .iter()
            .map(|d| (d.id, d.root.as_str(), d.target.to_str().unwrap()))
            .collect();
        assert_eq!(
            got,
            vec![
                (814, "/proc/meminfo", "/proc/meminfo"),
                (815, "/proc/a b", "/proc/a b"),
                (816, "/sys/devices/system/cpu", "/sys/devices/system/cpu"),
                (818, "/", "/var/lib/lxcfs"),
            ]
        );
        assert_eq!(dead[0].flags, ["nodev", "nosuid", "ro"]);
        assert_eq!(dead[1].flags, ["nodev", "noexec", "nosuid", "ro"]);
        assert!(dead[3].flags.is_empty());
    }

    #[test]
    fn a_covered_dead_mount_is_left_and_a_dropped_dentry_named_plainly() {
        let table = "\
812 700 8:1 /var/lib/ct/rootfs / ro,relatime - ext4 /dev/sda1 rw
813 812 0:5 / /proc rw - proc proc rw
814 813 0:52 /proc/meminfo /proc/meminfo ro,nosuid,nodev - fuse.lxcfs lxcfs rw
820 814 0:60 /proc/meminfo /proc/meminfo ro,nosuid,nodev - fuse.lxcfs lxcfs rw
815 812 0:52 /sys/devices/system/cpu/online//deleted /sys/devices/system/cpu/online ro - fuse.lxcfs lxcfs rw
";
        let dead = dead_mounts(table, &devs(&["0:52"]));
        assert_eq!(dead.len(), 2, "{dead:?}");
        assert!(dead[0].covered && dead[0].id == 814);
        assert!(!dead[1].covered && dead[1].id == 815);
        assert_eq!(dead[1].root, "/sys/devices/system/cpu/online");
    }

    #[test]
    fn nothing_is_dead_when_no_device_is() {
        assert!(dead_mounts(CONTAINER, &devs(&[])).is_empty());
        assert!(
            dead_mounts(CONTAINER, &devs(&["0:62"])).is_empty(),
            "sshfs is no lxcfs"
        );
        assert!(dead_mounts("", &devs(&["0:52"])).is_empty());
    }

    #[test]
    fn lxcfs_is_told_by_type_or_by_source() {
        assert!(is_lxcfs("fuse.lxcfs", Some("anything")));
        assert!(is_lxcfs("fuse", Some("lxcfs")));
        assert!(!is_lxcfs("fuse", Some("sshfs")));
        assert!(!is_lxcfs("fuse.sshfs", Some("lxcfs")));
    }
}
