//! Descriptors that outlive a process, by name: what a supervisor passes to its worker and
//! to its own re-executed binary (`LXCFS_RS_FDS`), pushes to systemd's file descriptor store
//! (`FDSTORE=1`), and gets back from systemd on the next start (`LISTEN_FDS`).
//!
//! Names: [`FUSE`] the mounted connection's `/dev/fuse` descriptor, [`CLONE`] each
//! `FUSE_DEV_IOC_CLONE` the serving threads read from, [`STATE`] the board, [`CONTROL`] a
//! worker's channel to its supervisor.

use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use log::{debug, warn};
use nix::fcntl::{FcntlArg, FdFlag, fcntl};
use nix::sys::socket::{ControlMessage, MsgFlags, UnixAddr, sendmsg};

/// The mounted connection's descriptor.
pub const FUSE: &str = "fuse";
/// A clone of it that a serving thread reads from.
pub const CLONE: &str = "fuse-clone";
/// The board (session state, counters, journal).
pub const STATE: &str = "state";
/// A worker's end of its control channel.
pub const CONTROL: &str = "control";
/// A container's seccomp listener the agent answers (`lxcfs-rs seccomp-agent`).
pub const SECCOMP: &str = "seccomp";

/// The variable that carries `name=fd,...` across an exec of our own.
pub const ENV: &str = "LXCFS_RS_FDS";

/// Descriptors by name, in order.
#[derive(Debug, Default)]
pub struct Named(pub Vec<(String, OwnedFd)>);

impl Named {
    /// Takes every descriptor called `name`, in order.
    pub fn take(&mut self, name: &str) -> Vec<OwnedFd> {
        let (taken, rest) = std::mem::take(&mut self.0)
            .into_iter()
            .partition::<Vec<_>, _>(|(n, _)| n == name);
        self.0 = rest;
        taken.into_iter().map(|(_, fd)| fd).collect()
    }

    /// Takes the one descriptor called `name`, if any.
    pub fn take_one(&mut self, name: &str) -> Option<OwnedFd> {
        let mut all = self.take(name);
        let first = (!all.is_empty()).then(|| all.remove(0));
        if !all.is_empty() {
            warn!("{} extra descriptors named {name} closed", all.len());
        }
        first
    }
}

/// Parses `name=fd,...`.
fn parse_env(value: &str) -> Result<Vec<(String, RawFd)>, String> {
    value
        .split(',')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (name, fd) = p
                .split_once('=')
                .ok_or_else(|| format!("{p:?} has no '='"))?;
            let fd: RawFd = fd
                .parse()
                .map_err(|_| format!("{fd:?} is not a descriptor number"))?;
            if fd < 3 {
                return Err(format!("descriptor {fd} is stdio"));
            }
            Ok((name.to_string(), fd))
        })
        .collect()
}

/// Takes ownership of inherited descriptors, making them close-on-exec again (each exec of
/// ours passes exactly what it means to).
fn adopt(list: Vec<(String, RawFd)>) -> io::Result<Named> {
    let mut out = Vec::with_capacity(list.len());
    for (name, raw) in list {
        fcntl(
            // SAFETY: checking the descriptor exists before owning it.
            unsafe { std::os::fd::BorrowedFd::borrow_raw(raw) },
            FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC),
        )
        .map_err(|e| io::Error::other(format!("inherited descriptor {raw} ({name}): {e}")))?;
        // SAFETY: passed to this process to own, by its parent or systemd.
        out.push((name, unsafe { OwnedFd::from_raw_fd(raw) }));
    }
    Ok(Named(out))
}

/// The descriptors our own exec passed in [`ENV`] (removed from the environment).
pub fn from_our_exec() -> io::Result<Option<Named>> {
    let Some(value) = std::env::var_os(ENV) else {
        return Ok(None);
    };
    // SAFETY: called at start-up, before any thread is spawned.
    unsafe { std::env::remove_var(ENV) };
    let list =
        parse_env(&value.to_string_lossy()).map_err(|e| io::Error::other(format!("{ENV}: {e}")))?;
    adopt(list).map(Some)
}

/// What `LISTEN_PID`, `LISTEN_FDS` and `LISTEN_FDNAMES` say, when they are meant for `pid`.
fn parse_listen(
    pid: Option<&str>,
    count: Option<&str>,
    names: Option<&str>,
    own: u32,
) -> Option<Vec<(String, RawFd)>> {
    if pid?.trim().parse::<u32>().ok()? != own {
        return None;
    }
    let n: RawFd = count?.trim().parse().ok()?;
    let names: Vec<&str> = names.unwrap_or("").split(':').collect();
    Some(
        (0..n)
            .map(|i| {
                let name = names.get(i as usize).copied().unwrap_or("unknown");
                (name.to_string(), 3 + i)
            })
            .collect(),
    )
}

/// The descriptors systemd passed from its store, if they are meant for this process (the
/// variables are removed either way, so no child mistakes them for its own).
pub fn from_systemd() -> io::Result<Option<Named>> {
    let var = |k: &str| std::env::var(k).ok();
    let listen = parse_listen(
        var("LISTEN_PID").as_deref(),
        var("LISTEN_FDS").as_deref(),
        var("LISTEN_FDNAMES").as_deref(),
        std::process::id(),
    );
    for k in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        // SAFETY: called at start-up, before any thread is spawned.
        unsafe { std::env::remove_var(k) };
    }
    match listen {
        Some(list) if !list.is_empty() => adopt(list).map(Some),
        _ => Ok(None),
    }
}

/// `name=fd,...` for [`ENV`].
pub fn env_value<'a>(fds: impl IntoIterator<Item = (&'a str, RawFd)>) -> String {
    fds.into_iter()
        .map(|(n, fd)| format!("{n}={fd}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Whether systemd keeps a store of descriptors for us: under systemd (`NOTIFY_SOCKET`), and
/// unless `FDSTORE` (set by systemd 254 and later) says the store holds none.
pub fn systemd_store_available() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some()
        && std::env::var("FDSTORE").map_or(true, |n| n.trim().parse::<u64>().unwrap_or(0) > 0)
}

/// Pushes `fds` to systemd's descriptor store under `name`: one `FDSTORE=1` datagram with
/// the descriptors attached. systemd keeps one copy of each open file, however often pushed.
pub fn push_to_systemd(name: &str, fds: &[RawFd]) -> io::Result<()> {
    match std::env::var_os("NOTIFY_SOCKET") {
        Some(path) => push(&path.to_string_lossy(), name, fds),
        None => Ok(()),
    }
}

/// Sends `FDSTORE=1` for `fds` named `name` to the notification socket at `path`.
fn push(path: &str, name: &str, fds: &[RawFd]) -> io::Result<()> {
    let addr = match path.strip_prefix('@') {
        Some(abs) => UnixAddr::new_abstract(abs.as_bytes())?,
        None => UnixAddr::new(path)?,
    };
    let sock = std::os::unix::net::UnixDatagram::unbound()?;
    let msg = format!("FDSTORE=1\nFDNAME={name}");
    sendmsg(
        sock.as_raw_fd(),
        &[IoSlice::new(msg.as_bytes())],
        &[ControlMessage::ScmRights(fds)],
        MsgFlags::empty(),
        Some(&addr),
    )?;
    debug!("pushed {} descriptor(s) named {name} to systemd", fds.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_variables_are_ours_only_for_our_pid() {
        assert_eq!(
            parse_listen(Some("42"), Some("3"), Some("fuse:fuse-clone:state"), 42),
            Some(vec![
                ("fuse".into(), 3),
                ("fuse-clone".into(), 4),
                ("state".into(), 5)
            ])
        );
        assert_eq!(parse_listen(Some("41"), Some("3"), None, 42), None);
        assert_eq!(parse_listen(None, Some("3"), None, 42), None);
        assert_eq!(
            parse_listen(Some("42"), Some("2"), Some("fuse"), 42),
            Some(vec![("fuse".into(), 3), ("unknown".into(), 4)])
        );
    }

    #[test]
    fn our_variable_round_trips_and_refuses_nonsense() {
        let v = env_value([(FUSE, 5), (CLONE, 7), (STATE, 9)]);
        assert_eq!(v, "fuse=5,fuse-clone=7,state=9");
        assert_eq!(
            parse_env(&v).unwrap(),
            vec![
                ("fuse".into(), 5),
                ("fuse-clone".into(), 7),
                ("state".into(), 9)
            ]
        );
        assert!(parse_env("fuse").is_err());
        assert!(parse_env("fuse=x").is_err());
        assert!(parse_env("fuse=1").is_err());
    }

    #[test]
    fn named_descriptors_are_taken_by_name() {
        let open = || -> OwnedFd { std::fs::File::open("/dev/null").unwrap().into() };
        let mut named = Named(vec![
            (CLONE.into(), open()),
            (FUSE.into(), open()),
            (CLONE.into(), open()),
        ]);
        assert_eq!(named.take(CLONE).len(), 2);
        assert!(named.take_one(FUSE).is_some());
        assert!(named.take_one(STATE).is_none());
    }

    #[test]
    fn systemd_hears_the_descriptors_with_their_name() {
        use nix::sys::socket::{ControlMessageOwned, recvmsg};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let sock = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        let file = std::fs::File::open("/dev/null").unwrap();
        push(path.to_str().unwrap(), STATE, &[file.as_raw_fd()]).unwrap();
        let mut buf = [0u8; 64];
        let mut cmsg = nix::cmsg_space!([RawFd; 2]);
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let msg = recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::empty(),
        )
        .unwrap();
        let fds: Vec<RawFd> = msg
            .cmsgs()
            .unwrap()
            .flat_map(|c| match c {
                ControlMessageOwned::ScmRights(fds) => fds,
                _ => Vec::new(),
            })
            .collect();
        let n = msg.bytes;
        assert_eq!(&buf[..n], b"FDSTORE=1\nFDNAME=state");
        assert_eq!(fds.len(), 1);
        // SAFETY: received just now.
        drop(unsafe { OwnedFd::from_raw_fd(fds[0]) });
    }
}
