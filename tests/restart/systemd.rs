//! systemd's file descriptor store without systemd (PID 1 here is not systemd): the test
//! binds the notify socket, keeps the descriptors the supervisor stores there, kills
//! supervisor and worker together, and starts the binary again with those descriptors as
//! systemd passes them (`LISTEN_FDS`, `LISTEN_FDNAMES`, `LISTEN_PID`, fds from 3).

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, UnixAddr, recvmsg, sendmsg};

use crate::common::loads::Loads;
use crate::common::status::{current_worker, kill_supervisor_and_worker, read_within, status};
use crate::common::{BIN, Daemon, TestDir, describe, fuse_dev};
use crate::{PAUSE, Scene, must, stuck};

/// The most descriptors one start may be handed (systemd's `FileDescriptorStoreMax=64` in the
/// unit restart.md proposes).
const MAX_FDS: usize = 64;

/// A unix datagram socket standing in for systemd's notify socket (`NOTIFY_SOCKET`).
struct NotifySocket {
    sock: UnixDatagram,
    path: PathBuf,
}

/// What the supervisor sent to the notify socket.
struct Store {
    /// The stored descriptors with their `FDNAME`, in the order received (close-on-exec in
    /// this process, so no other child inherits them).
    fds: Vec<(String, OwnedFd)>,
    /// Whether `READY=1` came.
    ready: bool,
    /// Every message, for failure messages.
    messages: Vec<String>,
}

impl NotifySocket {
    /// Binds `dir/notify`.
    fn bind(dir: &Path) -> NotifySocket {
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

    /// Collects what arrives until `READY=1` and descriptors named `fuse` and `state` came
    /// and then nothing more for 300 ms; panics after `timeout` with what did come.
    fn collect(&self, timeout: Duration, log: impl Fn() -> String) -> Store {
        let mut store = Store {
            fds: Vec::new(),
            ready: false,
            messages: Vec::new(),
        };
        let end = Instant::now() + timeout;
        let mut quiet_since = Instant::now();
        loop {
            let complete = store.ready && store.has("fuse") && store.has("state");
            if complete && quiet_since.elapsed() >= Duration::from_millis(300) {
                return store;
            }
            assert!(
                Instant::now() < end,
                "within {timeout:?} the supervisor should send READY=1 and store descriptors \
                 named fuse and state on NOTIFY_SOCKET; it sent {:?} (names {:?}); its log:\n{}",
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
    fn has(&self, name: &str) -> bool {
        self.fds.iter().any(|(n, _)| n == name)
    }

    fn names(&self) -> Vec<&str> {
        self.fds.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// `program` started as systemd starts a unit with stored descriptors: the descriptors
    /// at 3, 4, ... (not close-on-exec), `LISTEN_FDS`, `LISTEN_FDNAMES`, and `LISTEN_PID` set
    /// to the pid of the process itself (a shell sets it, then execs).
    fn command(&self, program: &Path) -> Command {
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

#[test]
fn supervisor_and_worker_killed_together_come_back_from_the_fd_store() {
    let Some(s) = Scene::new() else {
        return;
    };
    let notify = NotifySocket::bind(s.dir.path());
    let mut cmd = Command::new(BIN);
    cmd.env("NOTIFY_SOCKET", &notify.path);
    // Keeps its connection id: if the restarted instance never serves, its drop detaches
    // the stale mount.
    let mut first = Daemon::start_cmd_on(cmd, &s.mnt, &s.log("first"), &[]);
    let store = notify.collect(Duration::from_secs(10), || first.log());
    eprintln!(
        "stored descriptors {:?}; messages {:?}",
        store.names(),
        store.messages
    );
    let dev = fuse_dev(&s.mnt);
    let worker = current_worker(&s.mnt);
    let loads = Loads::start(&s, &s.mnt);
    std::thread::sleep(PAUSE);

    kill_supervisor_and_worker(&mut first, Some(worker));
    let outage = Instant::now();
    std::thread::sleep(PAUSE);
    let mut second =
        Daemon::spawn_cmd_on(store.command(Path::new(BIN)), &s.mnt, &s.log("second"), &[]);
    if let Err(e) = read_within(&s.mnt.join("proc/meminfo"), Duration::from_secs(10)) {
        panic!(
            "the instance started with the stored descriptors does not serve: {e}; its log:\n{}",
            second.log()
        );
    }
    eprintln!("served again {:?} after the kill", outage.elapsed());
    second.wait_mounted();
    let st = status(&s.mnt);
    std::thread::sleep(PAUSE);
    let stopped = loads.stop();
    stopped.report("supervisor and worker killed, restarted from the fd store");

    assert_eq!(
        (st.supervisor_pid, st.dev.as_str()),
        (second.pid, dev.as_str()),
        "the restarted supervisor serves the same connection: {st:?}"
    );
    assert_eq!(fuse_dev(&s.mnt), dev, "the same connection stays mounted");
    must(stopped.views());
    must(stopped.no_failures());
    must(stopped.kept_descriptor_read_on());
    let stuck = stuck(&[worker]);
    assert!(stuck.is_empty(), "stuck: {stuck:?}");
    drop(second);
    drop(store);
}

/// The stand-in itself, without the daemon: descriptors sent with `FDSTORE=1` come back at
/// 3, 4, ... of a process whose `LISTEN_PID` is its own pid, named in order.
#[test]
fn the_fd_store_stand_in_hands_descriptors_over_as_systemd_does() {
    let dir = TestDir::new();
    let notify = NotifySocket::bind(dir.path());
    let client = UnixDatagram::unbound().expect("a datagram socket");
    for (name, text) in [("fuse", "first"), ("state", "second")] {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("writing a file to store");
        let file = std::fs::File::open(&path).expect("opening it");
        let msg = format!("FDSTORE=1\nFDNAME={name}");
        let fds = [file.as_raw_fd()];
        sendmsg::<UnixAddr>(
            client.as_raw_fd(),
            &[IoSlice::new(msg.as_bytes())],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            Some(&UnixAddr::new(&notify.path).expect("an address")),
        )
        .expect("sending a descriptor");
    }
    client
        .send_to(b"READY=1", &notify.path)
        .expect("sending READY=1");
    let store = notify.collect(Duration::from_secs(5), String::new);
    assert_eq!(store.names(), ["fuse", "state"]);
    let out = store
        .command(Path::new("/bin/sh"))
        .args([
            "-c",
            "echo $LISTEN_PID $$ $LISTEN_FDS $LISTEN_FDNAMES; cat <&3; cat <&4",
        ])
        .output()
        .expect("running sh");
    let text = String::from_utf8_lossy(&out.stdout);
    let (head, files) = text.split_once('\n').expect("two parts");
    let words: Vec<&str> = head.split(' ').collect();
    assert!(
        out.status.success() && words.len() == 4 && words[0] == words[1],
        "LISTEN_PID is the process's own pid: {}",
        describe(&out)
    );
    assert_eq!(&words[2..], ["2", "fuse:state"]);
    assert_eq!(files, "firstsecond");
}
