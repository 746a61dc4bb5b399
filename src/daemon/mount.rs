//! The mount itself: the mount point made ready, the `-o` options turned into `mount(2)`
//! flags, and the FUSE mount made as libfuse makes lxcfs's.

use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::Duration;

use log::warn;
use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, umount2};

use super::error::DaemonError;
use super::handoff;
use crate::host::own;
use crate::mounts;

/// Makes `path` a directory ready to mount on: created when missing, a dead FUSE mount left
/// by a daemon that is gone detached, a live one refused. Returns the devices
/// (`major:minor`) of the dead mounts detached: containers may still hold binds of them.
///
/// A FUSE mount whose connection is held but not served (a stopped daemon) blocks whoever
/// `stat`s it, so a FUSE mount is judged first without touching it: by mountinfo, by asking
/// the handoff socket whether a running lxcfs-rs serves it, and by fusectl's count of waiting
/// requests; only then is it `stat`ed, from a thread given two seconds.
pub(super) fn prepare_mountpoint(path: &Path) -> Result<Vec<String>, DaemonError> {
    let absolute = mounts::absolute(path);
    if let Some((fs_type, major, minor)) = mounts::mount_at(&absolute)
        && (fs_type == "fuse" || fs_type.starts_with("fuse."))
    {
        if handoff::answers(Path::new(own::HANDOFF_DIR), path) {
            return Err(DaemonError::AlreadyServed(path.to_path_buf()));
        }
        let waiting = mounts::fusectl_dir(major, minor).join("waiting");
        if std::fs::read_to_string(&waiting)
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
            .is_some_and(|n| n > 0)
        {
            return Err(DaemonError::Unanswered(path.to_path_buf()));
        }
        return match stat_within(&absolute, Duration::from_secs(2)) {
            None => Err(DaemonError::Unanswered(path.to_path_buf())),
            Some(Err(e)) if e.raw_os_error() == Some(Errno::ENOTCONN as i32) => {
                warn!(
                    "{}: detaching a dead mount (its daemon is gone)",
                    path.display()
                );
                umount2(&absolute, MntFlags::MNT_DETACH).map_err(|e| DaemonError::MountPoint {
                    path: path.to_path_buf(),
                    source: e.into(),
                })?;
                let mut detached = prepare_mountpoint(path)?;
                detached.push(format!("{major}:{minor}"));
                Ok(detached)
            }
            Some(_) => Err(DaemonError::AlreadyMounted(path.to_path_buf())),
        };
    }
    let io_err = |source| DaemonError::MountPoint {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::fs::create_dir_all(path).map_err(io_err)?;
            Ok(Vec::new())
        }
        Err(e) => Err(io_err(e)),
        Ok(meta) if !meta.is_dir() => Err(DaemonError::MountPointNotDir(path.to_path_buf())),
        Ok(_) => Ok(Vec::new()),
    }
}

/// `stat(path)` from a thread of its own, given `limit`: `None` when it did not return (the
/// thread is left blocked; the caller is about to refuse and exit).
fn stat_within(path: &Path, limit: Duration) -> Option<io::Result<std::fs::Metadata>> {
    let (tx, rx) = std::sync::mpsc::channel();
    let path = path.to_path_buf();
    std::thread::Builder::new()
        .name("stat".into())
        .spawn(move || {
            let _ = tx.send(std::fs::metadata(&path));
        })
        .ok()?;
    rx.recv_timeout(limit).ok()
}

/// What `mount(2)` gets for our `-o` options: flags, and options after FUSE's own.
#[derive(Debug, PartialEq, Eq)]
struct KernelMount {
    flags: MsFlags,
    extra: Vec<String>,
}

/// The kernel mount flags and options: ours, plus the `-o` ones that mean something to the
/// kernel. No `default_permissions`: with it the kernel refreshes a file's attributes (a
/// GETATTR, which renders the file to learn its size) before every open; the mount is
/// read-only and `open` refuses write access, which is all the checking 0444 files need.
fn mount_options(extra: &[String]) -> KernelMount {
    let mut out = KernelMount {
        flags: MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        extra: Vec::new(),
    };
    for opt in extra
        .iter()
        .flat_map(|o| o.split(','))
        .map(str::trim)
        .filter(|o| !o.is_empty())
    {
        match opt {
            // What lxcfs-rs always does, or libfuse-only switches with no kernel meaning.
            "allow_other"
            | "ro"
            | "nonempty"
            | "direct_io"
            | "big_writes"
            | "default_permissions"
            | "nodev"
            | "nosuid" => {}
            "noexec" => out.flags |= MsFlags::MS_NOEXEC,
            "noatime" => out.flags |= MsFlags::MS_NOATIME,
            other => out.extra.push(other.to_string()),
        }
    }
    out
}

/// Mounts a FUSE filesystem at `mountpoint` as libfuse mounts lxcfs (type `fuse.lxcfs`,
/// source `lxcfs`, so `findmnt -t fuse.lxcfs` and scripts written for lxcfs find it) and
/// returns the `/dev/fuse` descriptor that serves it.
pub(super) fn mount_fuse(mountpoint: &Path, options: &[String]) -> io::Result<OwnedFd> {
    let opts = mount_options(options);
    crate::fuse::mount::mount(mountpoint, "lxcfs", "fuse.lxcfs", opts.flags, &opts.extra)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dash_o_options() {
        let opts = mount_options(&[
            "allow_other,nonempty".into(),
            "noexec".into(),
            "weird=1".into(),
        ]);
        assert_eq!(
            opts,
            KernelMount {
                flags: MsFlags::MS_RDONLY
                    | MsFlags::MS_NOSUID
                    | MsFlags::MS_NODEV
                    | MsFlags::MS_NOEXEC,
                extra: vec!["weird=1".into()],
            }
        );
    }

    #[test]
    fn missing_mountpoint_is_created_and_file_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mp = dir.path().join("a/b");
        assert!(prepare_mountpoint(&mp).unwrap().is_empty());
        assert!(mp.is_dir());
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        assert!(matches!(
            prepare_mountpoint(&file),
            Err(DaemonError::MountPointNotDir(_))
        ));
    }
}
