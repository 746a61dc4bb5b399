//! systemd's file descriptor store without systemd (PID 1 here is not systemd): a unix
//! datagram socket bound as `NOTIFY_SOCKET` keeps the descriptors a service stores there
//! (`FDSTORE=1`, `FDNAME=`), and starts a program again with them as systemd passes them
//! (`LISTEN_FDS`, `LISTEN_FDNAMES`, `LISTEN_PID`, descriptors from 3).

use std::io::{self, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};

/// The most descriptors one start may be handed (systemd's `FileDescriptorStoreMax=64` in the
/// unit restart.md proposes).
const MAX_FDS: usize = 64;

/// A unix datagram socket standing in for systemd's notify socket (`NOTIFY_SOCKET`).
pub struct NotifySocket {
    sock: UnixDatagram,
    /// Where it is bound: the service's `NOTIFY_SOCKET`.
    pub path: PathBuf,
}

/// What the supervisor sent to the notify socket.
pub struct Store {
    /// The stored descriptors with their `FDNAME`, in the order received (close-on-exec in
    /// this process, so no other child inherits them).
    pub fds: Vec<(String, OwnedFd)>,
    /// Whether `READY=1` came.
    pub ready: bool,
    /// Every message, for failure messages.
    pub messages: Vec<String>,
}

impl NotifySocket {
    /// Binds `dir/notify`.
    pub fn bind(dir: &Path) -> NotifySocket {
        let path = dir.join("notify");
        let sock =
            UnixDatagram::bind(&path).unwrap_or_else(|e| panic!("binding {}: {e}", path.display()));
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("a receive timeout");
        NotifySocket { sock, path }
    }

    /// One datagram and the descriptors it carried; `None` when nothing came for 100 ms.
    fn receive(&self) -> Option<(String, Vec<OwnedFd>)> {
        let mut buf = [0u8; 4096];
        let mut iov = [IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
        let msg = match recvmsg::<()>(
            self.sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(msg) => msg,
            Err(nix::errno::Errno::EAGAIN) => return None,
            Err(e) => panic!("receiving on the notify socket: {e}"),
        };
        let mut fds = Vec::new();
        for c in msg.cmsgs().expect("control messages") {
            if let ControlMessageOwned::ScmRights(raw) = c {
                // SAFETY: SCM_RIGHTS gave us these descriptors; nothing else owns them.
                fds.extend(
                    raw.into_iter()
                        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                );
            }
        }
        let n = msg.bytes;
        Some((String::from_utf8_lossy(&buf[..n]).into_owned(), fds))
    }

    /// Collects what arrives until `READY=1` and descriptors with each of `names` came and
    /// then nothing more for 300 ms; panics after `timeout` with what did come.
    pub fn collect(&self, timeout: Duration, names: &[&str], log: impl Fn() -> String) -> Store {
        let mut store = Store {
            fds: Vec::new(),
            ready: false,
            messages: Vec::new(),
        };
        let end = Instant::now() + timeout;
        let mut quiet_since = Instant::now();
        loop {
            let complete = store.ready && names.iter().all(|n| store.has(n));
            if complete && quiet_since.elapsed() >= Duration::from_millis(300) {
                return store;
            }
            assert!(
                Instant::now() < end,
                "within {timeout:?} the service should send READY=1 and store descriptors \
                 named {names:?} on NOTIFY_SOCKET; it sent {:?} (names {:?}); its log:\n{}",
                store.messages,
                store.names(),
                log()
            );
            let Some((text, fds)) = self.receive() else {
                continue;
            };
            quiet_since = Instant::now();
            let field = |key: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                    .map(str::to_string)
            };
            if field("FDSTORE").as_deref() == Some("1") {
                // systemd's name for a descriptor stored without FDNAME.
                let name = field("FDNAME").unwrap_or_else(|| "stored".into());
                store
                    .fds
                    .extend(fds.into_iter().map(|fd| (name.clone(), fd)));
            }
            if field("READY").as_deref() == Some("1") {
                store.ready = true;
            }
            store.messages.push(text);
        }
    }
}

impl Store {
    /// Whether a descriptor named `name` was stored.
    pub fn has(&self, name: &str) -> bool {
        self.fds.iter().any(|(n, _)| n == name)
    }

    /// The stored descriptors' names, in order.
    pub fn names(&self) -> Vec<&str> {
        self.fds.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// `program` started as systemd starts a unit with stored descriptors: the descriptors
    /// at 3, 4, ... (not close-on-exec), `LISTEN_FDS`, `LISTEN_FDNAMES`, and `LISTEN_PID` set
    /// to the pid of the process itself (a shell sets it, then execs).
    pub fn command(&self, program: &Path) -> Command {
        assert!(self.fds.len() <= MAX_FDS, "{} descriptors", self.fds.len());
        let mut cmd = Command::new("sh");
        cmd.args(["-c", r#"LISTEN_PID=$$ exec "$0" "$@""#])
            .arg(program)
            .env("LISTEN_FDS", self.fds.len().to_string())
            .env("LISTEN_FDNAMES", self.names().join(":"))
            .env_remove("LISTEN_PID")
            .env_remove("NOTIFY_SOCKET");
        let raw: Vec<RawFd> = self.fds.iter().map(|(_, fd)| fd.as_raw_fd()).collect();
        // SAFETY: only fcntl and dup2 run between fork and exec, both async-signal-safe, on
        // a list made before the fork.
        unsafe {
            cmd.pre_exec(move || place_from_3(&raw));
        }
        cmd
    }
}

/// Puts `fds` at 3, 4, ... without close-on-exec. Each is first copied above that range (a
/// source may sit where another belongs), then moved down.
fn place_from_3(fds: &[RawFd]) -> io::Result<()> {
    use nix::libc;
    let mut high = [0 as RawFd; MAX_FDS];
    let first_free = 3 + fds.len() as RawFd;
    for (h, &fd) in high.iter_mut().zip(fds) {
        // SAFETY: plain descriptor calls.
        *h = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, first_free) };
        if *h < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    for (i, &h) in high[..fds.len()].iter().enumerate() {
        // SAFETY: as above; dup2 leaves the copy without close-on-exec.
        if unsafe { libc::dup2(h, 3 + i as RawFd) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}
