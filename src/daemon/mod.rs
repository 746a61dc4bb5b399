//! Running the filesystem as two processes: a supervisor that owns the connection
//! (`supervisor`) and a worker that serves it (`worker`), sharing a board (`board`) and a
//! control channel (`control`). Around them: checks before mounting (`checks`), the pidfile
//! (`pidfile`), the mount itself (`mount`), descriptors passed on by name (`fds`), handing the
//! mount to a successor (`handoff`) and telling systemd (`notify`).

mod board;
mod checks;
mod control;
mod error;
pub mod fds;
pub mod handoff;
mod mount;
pub mod notify;
mod pidfile;
mod ring_handover;
mod supervisor;
mod worker;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use log::{info, warn};

pub use error::DaemonError;

use crate::host::HostPaths;
use crate::host::own::HANDOFF_DIR;
use crate::view::{View, ViewOptions};
use board::Board;
use supervisor::{Connection, Supervisor};

/// Everything the daemon needs to run.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// Where to mount.
    pub mountpoint: PathBuf,
    /// Pidfile to hold locked, if any.
    pub pidfile: Option<PathBuf>,
    /// FUSE worker threads.
    pub threads: usize,
    /// `-o` options, comma lists as given.
    pub options: Vec<String>,
    /// What the files show.
    pub view: ViewOptions,
    /// Where the host files are.
    pub host: HostPaths,
    /// Take the mount over from the daemon serving it instead of mounting.
    pub takeover: bool,
    /// Take the mount over when a daemon answers for it, mount afresh otherwise.
    pub takeover_if_running: bool,
    /// After a handoff, stay (holding nothing) until SIGTERM or SIGINT instead of exiting.
    pub wait_after_handoff: bool,
    /// Never rely on the kernel resending requests a dead worker held (what kernels before
    /// 6.9 get): workers read from descriptors of their own.
    pub no_resend: bool,
    /// Ask for FUSE-over-io_uring (`--io-uring`).
    pub io_uring: bool,
    /// Run as the worker of a supervisor (internal: the supervisor starts it).
    pub worker: bool,
    /// Started with `--host-mount-ns`: the path we were started by names a file of another
    /// mount namespace, so re-executing (SIGUSR1) goes through `/proc/self/exe`.
    pub host_mount_ns: bool,
}

/// Runs the daemon: the supervisor, which mounts (or adopts the connection from systemd's
/// store, from its own previous binary, or from the daemon serving the mount point with
/// `takeover`) and runs workers until SIGTERM or SIGINT, until someone unmounts the
/// filesystem, or until a successor takes it over. With `worker`, runs as a worker instead.
pub fn run(cfg: DaemonConfig) -> Result<(), DaemonError> {
    if cfg.worker {
        return worker::run(&cfg);
    }
    checks::check_root()?;
    checks::check_dev_fuse()?;
    // Inherited descriptors first: they are only ours until a child could see them.
    let inherited = match fds::from_our_exec().map_err(DaemonError::Inherit)? {
        Some(named) => Some(named),
        None => fds::from_systemd().map_err(DaemonError::Inherit)?,
    };
    // Before any thread exists, so that every thread inherits the mask.
    let signals = supervisor::signal_descriptor()?;
    if cfg.host == HostPaths::default() {
        checks::join_host_cgroup_namespace()?;
        checks::warn_unless_host_pid_namespace();
    }
    checks::warn_request_timeouts();
    // What the worker will build, built once here: a host it cannot read is an error now,
    // before the mount is touched, not a worker dying over and over.
    drop(View::new(cfg.host.clone(), cfg.view)?);

    let mut pidfile = None;
    let mut pending_ack = None;
    // Set when mounting afresh: the dead devices detached from the mount point.
    let mut detached = None;
    let adopted = inherited.is_some();
    let conn = if let Some(named) = inherited {
        // Our own binary before a reload, or systemd's store after a restart: nobody else
        // holds the pidfile; failing to take it must not drop a live mount.
        if let Some(path) = cfg.pidfile.as_deref() {
            match pidfile::PidFile::acquire(path) {
                Ok(p) => pidfile = Some(p),
                Err(e) => warn!(
                    "serving without a pidfile: {}",
                    crate::error_chain::Chain(&e)
                ),
            }
        }
        adopt_inherited(named)?
    } else if let Some(mut received) = take_over_if_asked(&cfg)? {
        let board = Board::create().map_err(DaemonError::Inherit)?;
        restore_ledger(&board, &mut received.state.app);
        ring_handover::restore(&board, &mut received.state.app);
        board
            .write_state(&received.state.to_bytes())
            .map_err(DaemonError::Inherit)?;
        board
            .slots()
            .generation
            .store(received.state.generation, Ordering::Relaxed);
        let fuse = std::mem::take(&mut received.fds);
        pending_ack = Some(received);
        Connection { fuse, board }
    } else {
        if let Some(path) = cfg.pidfile.as_deref() {
            pidfile = Some(pidfile::PidFile::acquire(path)?);
        }
        detached = Some(mount::prepare_mountpoint(&cfg.mountpoint)?);
        let board = Board::create().map_err(DaemonError::Inherit)?;
        let fuse = mount::mount_fuse(&cfg.mountpoint, &cfg.options).map_err(|source| {
            DaemonError::Mount {
                path: cfg.mountpoint.clone(),
                source,
            }
        })?;
        Connection {
            fuse: vec![fuse],
            board,
        }
    };
    Supervisor::new(cfg, conn, signals, pending_ack, adopted, pidfile)
        .reattach_when_serving(detached)
        .run()
}

/// The connection of the daemon serving the mount point, when `--takeover` asks for it (it
/// must answer) or `--takeover-if-running` does and one answers; `None` to mount afresh.
fn take_over_if_asked(cfg: &DaemonConfig) -> Result<Option<handoff::Received>, DaemonError> {
    if !cfg.takeover && !cfg.takeover_if_running {
        return Ok(None);
    }
    match handoff::take_over(Path::new(HANDOFF_DIR), &cfg.mountpoint) {
        Ok(received) => Ok(Some(received)),
        // Nobody listens (no socket, or one left by a daemon that died): mounting afresh
        // also detaches a dead mount and re-binds the containers that held it.
        Err(handoff::HandoffError::NoDaemon { .. }) if cfg.takeover_if_running => {
            info!(
                "no lxcfs-rs serves {}; mounting it",
                cfg.mountpoint.display()
            );
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// The connection and board passed by our own previous binary or by systemd's store.
fn adopt_inherited(mut named: fds::Named) -> Result<Connection, DaemonError> {
    let mut fuse = named.take(fds::FUSE);
    fuse.extend(named.take(fds::CLONE));
    if fuse.is_empty() {
        return Err(DaemonError::Inherit(std::io::Error::other(
            "no descriptor named \"fuse\" among those passed",
        )));
    }
    let board = match named.take_one(fds::STATE) {
        Some(fd) => Board::open(fd).map_err(DaemonError::Inherit)?,
        None => {
            warn!("no state board was passed with the connection; the handshake is unknown");
            Board::create().map_err(DaemonError::Inherit)?
        }
    };
    for (name, _) in &named.0 {
        warn!("closing an inherited descriptor named {name:?}");
    }
    info!(
        "adopted the FUSE connection ({} descriptor(s)) and its state",
        fuse.len()
    );
    Ok(Connection { fuse, board })
}

/// Raises the soft limit on open descriptors to the hard one: every serving thread keeps up
/// to `kfile::kept::PER_THREAD` kernel files and `PROCESS_PER_THREAD` processes' files open,
/// besides the mount's own descriptors.
fn raise_descriptor_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                warn!("cannot raise the open-file limit from {soft} to {hard}: {e}");
            }
        }
        Ok(_) => {}
        Err(e) => warn!("cannot read the open-file limit: {e}"),
    }
}

/// The key of the session state's `app` under which a handoff carries the snapshot ledger.
const LEDGER_KEY: &str = "snapshot_ledger";

/// Adds `board`'s snapshot ledger to the state handed to a successor, so that the handles it
/// adopts end where the parked worker's snapshots ended (base64 in the JSON: an older
/// successor ignores it).
fn hand_ledger_over(board: &Board, app: &mut serde_json::Value) {
    use base64::Engine as _;
    let ledger = board.ledger_bytes();
    if let Some(app) = app.as_object_mut()
        && !ledger.is_empty()
    {
        let encoded = base64::engine::general_purpose::STANDARD.encode(ledger);
        app.insert(LEDGER_KEY.into(), encoded.into());
    }
}

/// Puts the predecessor's snapshot ledger (if it sent one) on our board, and takes it out of
/// the state, which is kept on the board in a space too small for it.
fn restore_ledger(board: &Board, app: &mut serde_json::Value) {
    use base64::Engine as _;
    let Some(encoded) = app.as_object_mut().and_then(|a| a.remove(LEDGER_KEY)) else {
        return;
    };
    match encoded
        .as_str()
        .map(|e| base64::engine::general_purpose::STANDARD.decode(e))
    {
        Some(Ok(bytes)) => board.restore_ledger(&bytes),
        _ => warn!("the predecessor's snapshot ledger is unreadable; handles adopted without it"),
    }
}

/// What a successor needs to know besides the connection: the mount point and view options.
fn app_state(cfg: &DaemonConfig) -> serde_json::Value {
    serde_json::json!({
        "mountpoint": cfg.mountpoint,
        "view": {
            "cpus_from_quota": cfg.view.cpus_from_quota,
            "show_swap": cfg.view.show_swap,
            "cgroup_loadavg": cfg.view.cgroup_loadavg,
        },
        "pid": std::process::id(),
    })
}

/// Takes the pidfile once the daemon we took over from has let go of it.
fn acquire_pidfile_patiently(path: &Path) -> Result<pidfile::PidFile, DaemonError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match pidfile::PidFile::acquire(path) {
            Err(DaemonError::PidfileLocked { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}
