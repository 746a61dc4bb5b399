//! Telling systemd about our state (`Type=notify`).

use log::warn;

/// Tells systemd (a `Type=notify` unit) about our state, so that units ordered after ours
/// (container runtimes) start only once the files are served. Without `$NOTIFY_SOCKET`
/// (not under systemd) there is no one to tell.
pub fn notify_systemd(state: &str) {
    if let Some(path) = std::env::var_os("NOTIFY_SOCKET") {
        notify_socket(&path.to_string_lossy(), state);
    }
}

/// Sends `state` to the notification socket at `path`.
fn notify_socket(path: &str, state: &str) {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};

    // systemd names an abstract socket with a leading '@'.
    let addr = match path.strip_prefix('@') {
        Some(name) => SocketAddr::from_abstract_name(name.as_bytes()),
        None => SocketAddr::from_pathname(path),
    };
    let sent = UnixDatagram::unbound()
        .and_then(|sock| addr.and_then(|addr| sock.send_to_addr(state.as_bytes(), &addr)));
    if let Err(e) = sent {
        warn!("could not notify systemd at {path}: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemd_hears_ready() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let sock = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        notify_socket(path.to_str().unwrap(), "READY=1");
        let mut buf = [0u8; 64];
        let n = sock.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
    }
}
