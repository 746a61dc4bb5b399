//! Handing a live mount from one daemon to the next (`lxcfs-rs --takeover`): the serving
//! daemon listens on a unix socket named after its mount point; a successor connects, the
//! serving daemon parks its session and sends the `/dev/fuse` descriptors and the session
//! state over SCM_RIGHTS, the successor serves on (no INIT: the kernel's connection is the
//! same) and acknowledges, and the old daemon exits without unmounting. Readers see a pause.
//!
//! Only a root peer is served. If the successor never acknowledges, the old daemon keeps
//! its copies of the descriptors and serves on.

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg, sockopt::PeerCredentials,
};

use crate::fuse::SessionState;

/// What a successor sends to ask for the mount.
const ASK: &[u8] = b"lxcfs-rs takeover 1\n";
/// What `lxcfs-rs status` sends to ask how the service is.
const STATUS: &[u8] = b"lxcfs-rs status 1\n";
/// What it sends once it serves.
const ACK: &[u8] = b"serving\n";
/// The most descriptors one handoff carries.
const MAX_FDS: usize = 64;
/// How long either side waits for the other.
const PATIENCE: Duration = Duration::from_secs(10);

/// The handoff socket of the daemon serving `mountpoint`: under `dir`, named after the
/// mount point with `/` as `-` and other unusual bytes hex-escaped, as systemd names mount
/// units (`/var/lib/lxcfs` is `var-lib-lxcfs.sock`).
pub fn socket_path(dir: &Path, mountpoint: &Path) -> PathBuf {
    // Absolute without looking at the file system (a mount point may be a dead mount), so
    // that `lxcfs-rs mnt` and `lxcfs-rs --takeover /abs/mnt` meet.
    let absolute = crate::mounts::absolute(mountpoint);
    let mut name = String::new();
    let text = absolute.to_string_lossy();
    for (i, b) in text.trim_matches('/').bytes().enumerate() {
        match b {
            b'/' => name.push('-'),
            b'.' if i == 0 => name.push_str("\\x2e"),
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' => name.push(b as char),
            _ => name.push_str(&format!("\\x{b:02x}")),
        }
    }
    if name.is_empty() {
        name.push('-');
    }
    // sun_path holds 108 bytes: a long name becomes its node-id-style hash.
    if name.len() > 80 {
        name = format!("{:016x}", crate::fs::node_id(&text));
    }
    dir.join(format!("{name}.sock"))
}

/// Why a handoff failed.
#[derive(Debug, thiserror::Error)]
pub enum HandoffError {
    /// No daemon listens for `mountpoint`.
    #[error("no lxcfs-rs serving {mountpoint} answers on {socket}")]
    NoDaemon {
        /// The mount point.
        mountpoint: PathBuf,
        /// Its handoff socket.
        socket: PathBuf,
        /// What connecting said.
        source: io::Error,
    },
    /// The exchange broke off.
    #[error("the handoff over {socket} failed")]
    Exchange {
        /// The socket.
        socket: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
    /// The state blob could not be read.
    #[error("the serving daemon sent a session state this build cannot adopt")]
    State(#[from] crate::fuse::StateError),
}

/// Listens for successors. The socket file stays when it is dropped: whoever owns the
/// mount point's lifetime removes it ([`remove_socket`]), since after a handoff the file is the
/// successor's.
pub struct Listener {
    listener: UnixListener,
}

impl Listener {
    /// Binds the handoff socket at `path`, replacing a stale one.
    pub fn bind(path: &Path) -> io::Result<Listener> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        Ok(Listener { listener })
    }

    /// Waits for a root peer that asks for the mount or for the status. A peer that is not
    /// root, says something else or says nothing within the patience is dropped and the wait
    /// goes on; only a failing socket ends it.
    pub fn accept(&self) -> io::Result<Asked> {
        loop {
            let (stream, _) = self.listener.accept()?;
            match greet(stream) {
                Ok(Some(asked)) => return Ok(asked),
                Ok(None) => log::warn!("handoff: dropping a peer that is not root or did not ask"),
                Err(e) => log::warn!("handoff: dropping a peer: {e}"),
            }
        }
    }

    /// The listening socket, to poll: readable when a peer waits.
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.listener)
    }
}

/// What a peer asked for.
pub enum Asked {
    /// The mount (`--takeover`).
    Takeover(Successor),
    /// How the service is (`lxcfs-rs status`).
    Status(StatusAsker),
}

/// A root peer that asked for something, or `None`.
fn greet(stream: UnixStream) -> io::Result<Option<Asked>> {
    let cred = nix::sys::socket::getsockopt(&stream, PeerCredentials)?;
    if cred.uid() != 0 {
        return Ok(None);
    }
    stream.set_read_timeout(Some(PATIENCE))?;
    stream.set_write_timeout(Some(PATIENCE))?;
    let mut ask = [0u8; 64];
    let n = nix::unistd::read(&stream, &mut ask)?;
    Ok(match &ask[..n] {
        ASK => Some(Asked::Takeover(Successor { stream })),
        STATUS => Some(Asked::Status(StatusAsker { stream })),
        _ => None,
    })
}

/// A peer that asked how the service is.
pub struct StatusAsker {
    stream: UnixStream,
}

impl StatusAsker {
    /// Answers with `status` (one JSON object).
    pub fn answer(self, status: &serde_json::Value) -> io::Result<()> {
        use std::io::Write;
        (&self.stream).write_all(status.to_string().as_bytes())
    }
}

/// Asks the daemon serving `mountpoint` (socket under `dir`) how it is. A daemon that is
/// re-executing itself (SIGUSR1) has no listener for a moment: that is retried for a second.
pub fn ask_status(dir: &Path, mountpoint: &Path) -> Result<serde_json::Value, HandoffError> {
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    loop {
        match ask_status_now(dir, mountpoint) {
            Err(e) if e.is_transient() && std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

/// Whether a running lxcfs-rs answers for `mountpoint` right now (no retry).
pub fn answers(dir: &Path, mountpoint: &Path) -> bool {
    ask_status_now(dir, mountpoint).is_ok()
}

/// Connects to the daemon serving `mountpoint` and sends `request`: the stream, and how to
/// name a failure of the rest of the exchange.
fn ask(
    dir: &Path,
    mountpoint: &Path,
    request: &[u8],
) -> Result<(UnixStream, impl Fn(io::Error) -> HandoffError), HandoffError> {
    let socket = socket_path(dir, mountpoint);
    let stream = UnixStream::connect(&socket).map_err(|source| HandoffError::NoDaemon {
        mountpoint: mountpoint.to_path_buf(),
        socket: socket.clone(),
        source,
    })?;
    let exchange = move |source| HandoffError::Exchange {
        socket: socket.clone(),
        source,
    };
    stream.set_read_timeout(Some(PATIENCE)).map_err(&exchange)?;
    nix::unistd::write(&stream, request).map_err(|e| exchange(e.into()))?;
    Ok((stream, exchange))
}

/// Asks the daemon serving `mountpoint` how it is, once (no retry: a daemon that does not
/// answer now is reported as not answering).
pub fn ask_status_now(dir: &Path, mountpoint: &Path) -> Result<serde_json::Value, HandoffError> {
    use std::io::Read;
    let (stream, exchange) = ask(dir, mountpoint, STATUS)?;
    let mut text = String::new();
    (&stream).read_to_string(&mut text).map_err(&exchange)?;
    serde_json::from_str(&text).map_err(|e| exchange(io::Error::new(io::ErrorKind::InvalidData, e)))
}

impl HandoffError {
    /// Whether the daemon may answer a moment later: its socket is being re-made.
    fn is_transient(&self) -> bool {
        let source = match self {
            HandoffError::NoDaemon { source, .. } | HandoffError::Exchange { source, .. } => source,
            HandoffError::State(_) => return false,
        };
        matches!(
            source.kind(),
            io::ErrorKind::ConnectionRefused
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::NotFound
        )
    }
}

/// Removes the handoff socket at `path` (when the mount ends).
pub fn remove_socket(path: &Path) {
    let _ = std::fs::remove_file(path);
}

/// A successor that asked for the mount.
pub struct Successor {
    stream: UnixStream,
}

impl Successor {
    /// Sends the state and descriptors; true once the successor says it serves them.
    pub fn hand_over(&self, state: &SessionState, fds: &[OwnedFd]) -> io::Result<bool> {
        let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
        let bytes = state.to_bytes();
        let len = (bytes.len() as u32).to_ne_bytes();
        sendmsg::<()>(
            self.stream.as_raw_fd(),
            &[IoSlice::new(&len), IoSlice::new(&bytes)],
            &[ControlMessage::ScmRights(&raw)],
            MsgFlags::empty(),
            None,
        )?;
        let mut ack = [0u8; 16];
        let n = nix::unistd::read(&self.stream, &mut ack).unwrap_or(0);
        Ok(&ack[..n] == ACK)
    }
}

/// A takeover in progress on the successor's side: descriptors and state received, not yet
/// acknowledged.
pub struct Received {
    stream: UnixStream,
    /// The descriptors of the connection.
    pub fds: Vec<OwnedFd>,
    /// The parked session's state.
    pub state: SessionState,
}

impl Received {
    /// Tells the old daemon that the mount is served: it exits.
    pub fn acknowledge(self) -> io::Result<()> {
        nix::unistd::write(&self.stream, ACK)?;
        Ok(())
    }
}

/// Asks the daemon serving `mountpoint` (socket under `dir`) for its connection.
pub fn take_over(dir: &Path, mountpoint: &Path) -> Result<Received, HandoffError> {
    let (stream, exchange) = ask(dir, mountpoint, ASK)?;
    let (bytes, fds) = receive(&stream).map_err(exchange)?;
    let state = SessionState::from_bytes(&bytes)?;
    Ok(Received { stream, fds, state })
}

/// Reads one length-prefixed state blob and the descriptors that came with it.
fn receive(stream: &UnixStream) -> io::Result<(Vec<u8>, Vec<OwnedFd>)> {
    let mut len = [0u8; 4];
    let mut body = vec![0u8; 1 << 16];
    let mut fds = Vec::new();
    let mut cmsg = nix::cmsg_space!([RawFd; MAX_FDS]);
    let got = {
        let mut iov = [IoSliceMut::new(&mut len), IoSliceMut::new(&mut body)];
        let msg = recvmsg::<()>(
            stream.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )?;
        for c in msg.cmsgs()? {
            if let ControlMessageOwned::ScmRights(raw) = c {
                // SAFETY: SCM_RIGHTS gave this process these new descriptors.
                fds.extend(
                    raw.into_iter()
                        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                );
            }
        }
        msg.bytes
    };
    let want = u32::from_ne_bytes(len) as usize;
    if got < 4 || want > body.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a handoff message of {got} bytes, expected {}", want + 4),
        ));
    }
    // A stream socket may deliver the blob in pieces; the descriptors came with the first.
    let mut have = got - 4;
    while have < want {
        match nix::unistd::read(stream, &mut body[have..want])? {
            0 => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("the handoff message ended after {have} of {want} bytes"),
                ));
            }
            n => have += n,
        }
    }
    if fds.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the handoff carried no /dev/fuse descriptor",
        ));
    }
    body.truncate(want);
    Ok((body, fds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_names_follow_the_mount_point() {
        let dir = Path::new("/run/lxcfs-rs");
        assert_eq!(
            socket_path(dir, Path::new("/var/lib/lxcfs")),
            Path::new("/run/lxcfs-rs/var-lib-lxcfs.sock")
        );
        assert_eq!(
            socket_path(dir, Path::new("/tmp/a b/.x")),
            Path::new("/run/lxcfs-rs/tmp-a\\x20b-.x.sock")
        );
        assert_eq!(
            socket_path(dir, Path::new("/")),
            Path::new("/run/lxcfs-rs/-.sock")
        );
        let here = std::env::current_dir().unwrap();
        assert_eq!(
            socket_path(dir, Path::new("rel/mnt")),
            socket_path(dir, &here.join("rel/mnt")),
            "a relative mount point names the same socket as its absolute form"
        );
        let long = format!("/{}", "d".repeat(200));
        let p = socket_path(dir, Path::new(&long));
        assert!(p.as_os_str().len() < 108, "{p:?}");
    }

    #[test]
    fn state_and_descriptors_cross_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let listener = Listener::bind(&socket_path(dir.path(), Path::new("/m"))).unwrap();
        let state = SessionState {
            version: crate::fuse::state::STATE_VERSION,
            init: None,
            generation: 5,
            app: serde_json::json!({"mountpoint": "/m"}),
        };
        let sent = state.clone();
        let server = std::thread::spawn(move || {
            let Asked::Takeover(successor) = listener.accept().unwrap() else {
                panic!("asked for the status")
            };
            let file: OwnedFd = std::fs::File::open("/dev/null").unwrap().into();
            successor.hand_over(&sent, &[file]).unwrap()
        });
        let got = take_over(dir.path(), Path::new("/m")).unwrap();
        assert_eq!(got.state, state);
        assert_eq!(got.fds.len(), 1);
        got.acknowledge().unwrap();
        assert!(
            server.join().unwrap(),
            "the old side saw the acknowledgement"
        );
    }

    #[test]
    fn a_peer_that_does_not_ask_is_dropped_and_the_next_is_served() {
        let dir = tempfile::tempdir().unwrap();
        let socket = socket_path(dir.path(), Path::new("/m"));
        let listener = Listener::bind(&socket).unwrap();
        let server = std::thread::spawn(move || {
            let Asked::Takeover(successor) = listener.accept().unwrap() else {
                panic!("asked for the status")
            };
            let state = SessionState {
                version: crate::fuse::state::STATE_VERSION,
                init: None,
                generation: 1,
                app: serde_json::Value::Null,
            };
            let file: OwnedFd = std::fs::File::open("/dev/null").unwrap().into();
            successor.hand_over(&state, &[file]).unwrap()
        });
        let stranger = UnixStream::connect(&socket).unwrap();
        nix::unistd::write(&stranger, b"hello\n").unwrap();
        let got = take_over(dir.path(), Path::new("/m")).unwrap();
        assert_eq!(got.state.generation, 1);
        got.acknowledge().unwrap();
        assert!(server.join().unwrap());
    }

    #[test]
    fn status_is_one_json_object() {
        let dir = tempfile::tempdir().unwrap();
        let listener = Listener::bind(&socket_path(dir.path(), Path::new("/m"))).unwrap();
        let server = std::thread::spawn(move || match listener.accept().unwrap() {
            Asked::Status(asker) => asker.answer(&serde_json::json!({"worker_pid": 7})).unwrap(),
            Asked::Takeover(_) => panic!("asked for the mount"),
        });
        let status = ask_status(dir.path(), Path::new("/m")).unwrap();
        assert_eq!(status["worker_pid"], 7);
        server.join().unwrap();
    }

    #[test]
    fn no_daemon_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let e = take_over(dir.path(), Path::new("/nowhere")).err().unwrap();
        assert!(
            e.to_string()
                .starts_with("no lxcfs-rs serving /nowhere answers on "),
            "{e}"
        );
    }
}
