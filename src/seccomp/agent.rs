//! The agent's socket and threads: one thread accepts runtimes' connections; each connection
//! gets a thread that reads its state and then answers that listener's calls until every
//! task of its filter has exited. A container whose caller is slow to answer to (a task
//! stuck with its memory locked) holds only its own thread.

use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use log::{debug, info, warn};
use thiserror::Error;

use super::answer::answer;
use super::notify::Listener;
use super::state::receive;
use crate::cgroup::CgroupError;
use crate::daemon::{fds, notify};
use crate::error_chain::Chain;
use crate::host::HostPaths;
use crate::view::{View, ViewOptions};

/// How long a runtime may take to send its state: runc sends it at once, then closes.
const STATE_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection's thread needs little stack; thousands of them may wait at once.
const THREAD_STACK: usize = 256 * 1024;

/// What the agent needs to run.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The socket runtimes connect to (`linux.seccomp.listenerPath`).
    pub socket: PathBuf,
    /// The flags that change what readers see, as given to the daemon.
    pub view: ViewOptions,
    /// Where the host's files are.
    pub host: HostPaths,
}

/// Why the agent could not start.
#[derive(Debug, Error)]
pub enum AgentError {
    /// The socket could not be made.
    #[error("cannot listen on {0}")]
    Socket(PathBuf, #[source] io::Error),
    /// Another agent answers on the socket.
    #[error("another seccomp agent already listens on {0}")]
    AlreadyServed(PathBuf),
    /// The cgroup hierarchies could not be found.
    #[error(transparent)]
    View(#[from] CgroupError),
}

/// Listens on `cfg.socket` and answers every container's `sysinfo` calls; returns only if the
/// socket fails.
pub fn run(cfg: &AgentConfig) -> Result<(), AgentError> {
    // Before any thread: listeners a previous agent left in systemd's store.
    let kept = match fds::from_systemd() {
        Ok(named) => named.map(|mut n| n.take(fds::SECCOMP)).unwrap_or_default(),
        Err(e) => {
            warn!("seccomp agent: cannot adopt the listeners systemd kept: {e}");
            Vec::new()
        }
    };
    let view = Arc::new(View::new(cfg.host.clone(), cfg.view)?);
    crate::kfile::kept::start_sweeper();
    let socket = listen(&cfg.socket)?;
    info!(
        "seccomp agent: answering sysinfo(2) for containers connecting to {}",
        cfg.socket.display()
    );
    for (i, fd) in kept.into_iter().enumerate() {
        let view = view.clone();
        let who = format!("listener {} kept by systemd", i + 1);
        let spawned = std::thread::Builder::new()
            .name("seccomp-kept".into())
            .stack_size(THREAD_STACK)
            .spawn(move || answer_all(&view, &Listener::new(fd), &who));
        if let Err(e) = spawned {
            warn!("seccomp agent: no thread for a kept listener: {e}");
        }
    }
    notify::notify_systemd("READY=1");
    loop {
        match socket.accept() {
            Ok((stream, _)) => {
                let view = view.clone();
                let spawned = std::thread::Builder::new()
                    .name("seccomp-conn".into())
                    .stack_size(THREAD_STACK)
                    .spawn(move || serve(&view, stream));
                if let Err(e) = spawned {
                    warn!("seccomp agent: no thread for a runtime's connection: {e}");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                // EMFILE and the like pass; the runtime sees its connection refused.
                warn!("seccomp agent: accepting a connection: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// The socket at `path`: a stale one (nobody answers) is replaced; a live one is refused.
/// Its directory is made 0700 and the socket 0600: whoever connects hands us a listener and
/// gets its calls answered, so only root may.
fn listen(path: &Path) -> Result<UnixListener, AgentError> {
    let err = |e| AgentError::Socket(path.to_path_buf(), e);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(err)?;
    }
    if UnixStream::connect(path).is_ok() {
        return Err(AgentError::AlreadyServed(path.to_path_buf()));
    }
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    let socket = UnixListener::bind(path).map_err(err)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(err)?;
    Ok(socket)
}

/// One runtime's connection: its state, then its listener's calls until none can come.
fn serve(view: &View, stream: UnixStream) {
    if let Err(e) = stream.set_read_timeout(Some(STATE_TIMEOUT)) {
        warn!("seccomp agent: a runtime's connection: {e}");
        return;
    }
    let received = match receive(&stream) {
        Ok(Some(r)) => r,
        Ok(None) => {
            debug!("seccomp agent: a connection closed without sending anything");
            return;
        }
        Err(e) => {
            warn!(
                "seccomp agent: ignored a runtime's connection: {}",
                Chain(&e)
            );
            return;
        }
    };
    drop(stream);
    let who = received.who;
    info!("seccomp agent: {who}: answering its sysinfo calls");
    // Under systemd the listener is kept in its store too: an agent restarted (or killed and
    // restarted) gets it back, and the container's calls go on being answered. systemd drops
    // it by itself once it polls HUP (no task of the container left).
    if fds::systemd_store_available()
        && let Err(e) = fds::push_to_systemd(fds::SECCOMP, &[received.fd.as_raw_fd()])
    {
        warn!("seccomp agent: {who}: cannot keep its listener in systemd's store: {e}");
    }
    answer_all(view, &Listener::new(received.fd), &who);
}

/// Answers a listener's calls until no task of its filter is left.
fn answer_all(view: &View, listener: &Listener, who: &str) {
    loop {
        match listener.next() {
            Ok(Some(call)) => answer(view, listener, &call, who),
            Ok(None) => {
                info!("seccomp agent: {who}: no task left, listener closed");
                return;
            }
            Err(e) => {
                warn!("seccomp agent: {who}: listener failed, closing it: {e}");
                return;
            }
        }
    }
}
