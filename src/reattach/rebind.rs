//! Replacing dead mounts in one mount namespace with clones of the live filesystem. Runs in a
//! process of its own, single-threaded (`setns(CLONE_NEWNS)` refuses a process with other
//! threads): `lxcfs-rs reattach --pid PID`.
//!
//! For each dead mount, two clones of its live counterpart are made with `open_tree` while
//! still in the host's namespace (a classic `mount --bind` cannot cross namespaces), the
//! process enters the target namespace, and then:
//!
//! 1. `move_mount(MOVE_MOUNT_BENEATH)` slides a clone under the dead mount and the dead top is
//!    unmounted: an atomic swap, the container never sees the host's file in between;
//! 2. without `MOVE_MOUNT_BENEATH` (Linux before 6.5): the dead mount is detached and the
//!    clone moved in its place;
//! 3. a dead mount that cannot be unmounted (locked: copied into a user namespace's mount
//!    table) gets the spare clone on top; the dead one stays underneath, unreachable.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::libc;
use nix::mount::{MntFlags, umount2};
use nix::sched::CloneFlags;

use super::scan::DeadMount;

/// How a dead mount was replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum How {
    /// Swapped atomically (a clone moved beneath, the dead top unmounted).
    Beneath,
    /// Detached, then the clone moved in (a moment showed what was underneath).
    Replaced,
    /// Locked: the clone mounted on top of it.
    OnTop,
    /// Not replaced, and why.
    Failed(String),
}

/// A detached clone of the mount tree at `path` (`open_tree(OPEN_TREE_CLONE)`).
fn clone_tree(path: &Path) -> io::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_encoded_bytes())?;
    // SAFETY: a valid C string; the kernel returns a new descriptor or -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new descriptor the kernel just gave us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Sets on the detached `tree` the per-mount flags the dead mount had.
fn keep_flags(tree: &OwnedFd, flags: &[String]) -> io::Result<()> {
    let mut set = 0u64;
    for f in flags {
        set |= match f.as_str() {
            "ro" => libc::MOUNT_ATTR_RDONLY,
            "nosuid" => libc::MOUNT_ATTR_NOSUID,
            "nodev" => libc::MOUNT_ATTR_NODEV,
            "noexec" => libc::MOUNT_ATTR_NOEXEC,
            _ => 0,
        };
    }
    if set == 0 {
        return Ok(());
    }
    let attr = libc::mount_attr {
        attr_set: set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: a valid descriptor, an empty path with AT_EMPTY_PATH, a struct of the size given.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `move_mount(tree, "", dir, rel, F_EMPTY_PATH | extra)`.
fn move_tree(tree: &OwnedFd, dir: &OwnedFd, rel: &Path, extra: u32) -> Result<(), Errno> {
    let target = CString::new(rel.as_os_str().as_encoded_bytes()).map_err(|_| Errno::EINVAL)?;
    // SAFETY: valid descriptors and C strings.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            dir.as_raw_fd(),
            target.as_ptr(),
            libc::MOVE_MOUNT_F_EMPTY_PATH | extra,
        )
    };
    if rc < 0 { Err(Errno::last()) } else { Ok(()) }
}

/// Replaces the dead mount at `rel` (relative to the namespace owner's root `root`, which is
/// also our working directory) with `tree`, or `spare` on top when it is locked.
fn replace(root: &OwnedFd, rel: &Path, tree: OwnedFd, spare: OwnedFd) -> How {
    match move_tree(&tree, root, rel, libc::MOVE_MOUNT_BENEATH) {
        Ok(()) => match umount2(rel, MntFlags::MNT_DETACH) {
            Ok(()) => How::Beneath,
            // Locked: the live clone sits beneath a dead top that cannot go; cover it.
            Err(Errno::EINVAL | Errno::EPERM) => match move_tree(&spare, root, rel, 0) {
                Ok(()) => How::OnTop,
                Err(e) => How::Failed(format!("covering a locked dead mount: {e}")),
            },
            Err(e) => How::Failed(format!("unmounting the dead mount: {e}")),
        },
        // No MOVE_MOUNT_BENEATH here (before 6.5), or the dead mount is locked.
        Err(Errno::EINVAL) => match umount2(rel, MntFlags::MNT_DETACH) {
            Ok(()) => match move_tree(&tree, root, rel, 0) {
                Ok(()) => How::Replaced,
                Err(e) => How::Failed(format!("moving the live clone in: {e}")),
            },
            Err(Errno::EINVAL | Errno::EPERM) => match move_tree(&tree, root, rel, 0) {
                Ok(()) => How::OnTop,
                Err(e) => How::Failed(format!("covering a locked dead mount: {e}")),
            },
            Err(e) => How::Failed(format!("detaching the dead mount: {e}")),
        },
        Err(e) => How::Failed(format!("moving the live clone beneath: {e}")),
    }
}

/// A pidfd of `pid` (`pidfd_open`): it names that process and no later one with its pid.
pub fn pidfd(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: the kernel returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new descriptor the kernel just gave us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Whether the process behind `pidfd` still runs (a pidfd polls readable once it exited).
fn alive(pidfd: &OwnedFd) -> bool {
    use std::os::fd::AsFd;
    let mut fds = [nix::poll::PollFd::new(
        pidfd.as_fd(),
        nix::poll::PollFlags::POLLIN,
    )];
    matches!(
        nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO),
        Ok(0)
    )
}

/// Replaces every mount of `dead` (read from the mountinfo of `pid`, whose `pidfd` was opened
/// before that, in mount namespace `ns`) with the live counterpart under `live`, entering
/// that namespace. Nothing is touched unless the namespace entered is `ns` and the process
/// still runs (so its pid was not reused by a process elsewhere, such as the host, where
/// these paths are no mounts). Call only in a single-threaded process, which stays in that
/// namespace afterwards.
pub fn rebind(
    pid: u32,
    pidfd: &OwnedFd,
    ns: u64,
    live: &Path,
    dead: &[DeadMount],
) -> io::Result<Vec<How>> {
    let mut clones = Vec::with_capacity(dead.len());
    for d in dead {
        if d.covered {
            clones.push(Err(String::new()));
            continue;
        }
        let source = live.join(d.root.trim_start_matches('/'));
        let pair = clone_tree(&source).and_then(|tree| {
            keep_flags(&tree, &d.flags)?;
            let spare = clone_tree(&source)?;
            keep_flags(&spare, &d.flags)?;
            Ok((tree, spare))
        });
        clones.push(pair.map_err(|e| format!("cloning {}: {e}", source.display())));
    }
    let root: OwnedFd = std::fs::File::open(format!("/proc/{pid}/root"))?.into();
    let ns_file = std::fs::File::open(format!("/proc/{pid}/ns/mnt"))?;
    let entered = nix::sys::stat::fstat(&ns_file)?.st_ino;
    if entered != ns || !alive(pidfd) {
        return Err(io::Error::other(format!(
            "pid {pid} left mount namespace {ns} meanwhile; nothing touched"
        )));
    }
    nix::sched::setns(ns_file, CloneFlags::CLONE_NEWNS)?;
    // Paths in the owner's mountinfo are relative to its root, which need not be the
    // namespace's: resolve them from there.
    nix::unistd::fchdir(&root)?;
    Ok(dead
        .iter()
        .zip(clones)
        .map(|(d, clone)| match clone {
            // Covered by a live mount before: already what a locked one can get.
            _ if d.covered => How::OnTop,
            Err(e) => How::Failed(e),
            Ok((tree, spare)) => {
                let rel = d.target.strip_prefix("/").unwrap_or(&d.target);
                if rel.as_os_str().is_empty() {
                    return How::Failed("the namespace's root itself is dead".into());
                }
                replace(&root, rel, tree, spare)
            }
        })
        .collect())
}
