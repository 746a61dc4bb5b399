//! What a runtime sends on `linux.seccomp.listenerPath`: one *container process state*
//! (OCI runtime spec, config-linux.md "Seccomp") as JSON, with the listener descriptor in
//! `SCM_RIGHTS`, then it closes the connection.

use std::io::{self, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
use serde_json::Value;
use thiserror::Error;

use crate::host::own;

/// The most state JSON we take: Podman and Kubernetes annotations make it several kB, far
/// more than youki's 4 KiB buffer; runc's and crun's are under 1 kB.
const MAX_STATE: usize = 1 << 20;

/// Why a connection brought no listener.
#[derive(Debug, Error)]
pub enum StateError {
    /// Reading the connection failed.
    #[error("reading the connection")]
    Read(#[source] io::Error),
    /// More than [`MAX_STATE`] bytes.
    #[error("the state is over {MAX_STATE} bytes")]
    TooLarge,
    /// The bytes are no JSON object.
    #[error("the state is not a JSON object")]
    Json(#[source] serde_json::Error),
    /// No descriptor came with it.
    #[error("no file descriptor came with the state ({0})")]
    NoFd(String),
    /// `fds` names no `seccompFd`, or names more than were sent.
    #[error("no seccompFd among the descriptors sent: fds {names:?}, {sent} received")]
    NoSeccompFd {
        /// The names in `fds`.
        names: Vec<String>,
        /// How many descriptors arrived.
        sent: usize,
    },
    /// The descriptor is something else.
    #[error("the seccompFd is {0}, not a seccomp listener")]
    NotSeccomp(String),
}

/// One runtime's connection, read.
#[derive(Debug)]
pub struct Received {
    /// The container and process, for logs: `container ID pid PID`.
    pub who: String,
    /// The seccomp listener.
    pub fd: OwnedFd,
}

/// Reads the state and descriptors from `stream`, and picks the listener. Descriptors other
/// than the listener are closed. `Ok(None)`: the peer closed without sending anything (a
/// liveness check, not a runtime).
pub fn receive(stream: &UnixStream) -> Result<Option<Received>, StateError> {
    let (state, mut fds) = match read_state(stream)? {
        Some(read) => read,
        None => return Ok(None),
    };
    let who = describe(&state);
    if fds.is_empty() {
        return Err(StateError::NoFd(who));
    }
    let names: Vec<String> = state["fds"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|n| n.as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default();
    // The spec requires `fds`; without it a lone descriptor can only be the listener.
    let index = match names.iter().position(|n| n == "seccompFd") {
        Some(i) => i,
        None if names.is_empty() && fds.len() == 1 => 0,
        None => {
            return Err(StateError::NoSeccompFd {
                names,
                sent: fds.len(),
            });
        }
    };
    if index >= fds.len() {
        return Err(StateError::NoSeccompFd {
            names,
            sent: fds.len(),
        });
    }
    let fd = fds.swap_remove(index);
    let kind = std::fs::read_link(Path::new(own::SELF_FD).join(fd.as_raw_fd().to_string()))
        .map(|t| t.to_string_lossy().into_owned())
        .unwrap_or_else(|e| format!("unknown ({e})"));
    if kind != "anon_inode:seccomp notify" {
        return Err(StateError::NotSeccomp(kind));
    }
    Ok(Some(Received { who, fd }))
}

/// `container ID pid PID` from a state, `?` for what it lacks.
fn describe(state: &Value) -> String {
    let id = state["state"]["id"].as_str().unwrap_or("?");
    let pid = state["pid"]
        .as_u64()
        .map_or_else(|| "?".to_owned(), |p| p.to_string());
    format!("container {id} pid {pid}")
}

/// The state JSON and every descriptor sent with it. Read until the JSON is complete, not
/// until the end of the connection: runc 1.1 keeps its end open while the container starts.
fn read_state(stream: &UnixStream) -> Result<Option<(Value, Vec<OwnedFd>)>, StateError> {
    let mut bytes = Vec::new();
    let mut fds = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let mut cmsg = nix::cmsg_space!([RawFd; 8]);
        let mut iov = [IoSliceMut::new(&mut chunk)];
        let msg = recvmsg::<()>(
            stream.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        );
        let msg = match msg {
            Ok(m) => m,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(StateError::Read(e.into())),
        };
        let n = msg.bytes;
        for c in msg.cmsgs().map_err(|e| StateError::Read(e.into()))? {
            if let ControlMessageOwned::ScmRights(raw) = c {
                // SAFETY: the kernel just installed these descriptors for us; nobody else
                // owns them.
                fds.extend(
                    raw.into_iter()
                        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                );
            }
        }
        if n == 0 && bytes.is_empty() && fds.is_empty() {
            return Ok(None);
        }
        bytes.extend_from_slice(&chunk[..n]);
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(state) => return Ok(Some((state, fds))),
            // Not all of it yet: read on, unless the runtime has closed.
            Err(e) if e.is_eof() && n > 0 => {}
            Err(e) => return Err(StateError::Json(e)),
        }
        if bytes.len() > MAX_STATE {
            return Err(StateError::TooLarge);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{ControlMessage, sendmsg};
    use std::io::IoSlice;

    /// A connection over which `payload` and `fds` were sent, then closed.
    fn sent(payload: &[u8], fds: &[RawFd]) -> UnixStream {
        let (a, b) = UnixStream::pair().unwrap();
        let rights = [ControlMessage::ScmRights(fds)];
        let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &rights };
        sendmsg::<()>(
            a.as_raw_fd(),
            &[IoSlice::new(payload)],
            cmsgs,
            MsgFlags::empty(),
            None,
        )
        .unwrap();
        drop(a);
        b
    }

    #[test]
    fn bad_input_says_what_is_wrong() {
        let file = std::fs::File::open("/dev/null").unwrap();
        let state = br#"{"ociVersion":"1.0.2","fds":["seccompFd"],"pid":5,"state":{"id":"c1"}}"#;
        let err = receive(&sent(state, &[])).unwrap_err();
        assert!(
            matches!(&err, StateError::NoFd(w) if w == "container c1 pid 5"),
            "{err}"
        );
        let err = receive(&sent(b"{not json", &[file.as_raw_fd()])).unwrap_err();
        assert!(matches!(err, StateError::Json(_)), "{err}");
        let err = receive(&sent(state, &[file.as_raw_fd()])).unwrap_err();
        assert!(
            matches!(&err, StateError::NotSeccomp(k) if k == "/dev/null"),
            "{err}"
        );
        let other = br#"{"fds":["otherFd"],"pid":5}"#;
        let err = receive(&sent(other, &[file.as_raw_fd()])).unwrap_err();
        assert!(
            matches!(err, StateError::NoSeccompFd { sent: 1, .. }),
            "{err}"
        );
        assert!(
            receive(&sent(b"", &[])).unwrap().is_none(),
            "an empty connection"
        );
        let err = receive(&sent(br#"{"fds":["#, &[])).unwrap_err();
        assert!(matches!(err, StateError::Json(_)), "cut short: {err}");
    }
}
