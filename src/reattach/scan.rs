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

/// The LXCFS mounts of `mountinfo` whose device is one of `dead`, in table order.
pub fn dead_mounts(mountinfo: &str, dead: &BTreeSet<String>) -> Vec<DeadMount> {
    parse_mounts(mountinfo)
        .filter(|m| is_lxcfs(&m.fs_type, m.mount_source.as_deref()) && dead.contains(&m.majmin))
        .map(|m| {
            let mut flags: Vec<String> = m
                .mount_options
                .keys()
                .filter(|k| matches!(k.as_str(), "ro" | "nosuid" | "nodev" | "noexec"))
                .cloned()
                .collect();
            flags.sort();
            DeadMount {
                id: m.mnt_id as u32,
                root: m.root,
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
