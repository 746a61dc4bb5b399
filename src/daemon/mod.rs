//! Running the filesystem: checks before mounting (`checks`), the pidfile (`pidfile`), the
//! mount itself (`mount`), systemd notification (`notify`), and a clean unmount on SIGTERM,
//! SIGINT or SIGHUP.

mod checks;
mod error;
pub mod handoff;
mod mount;
mod notify;
mod pidfile;

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use log::{debug, error, info, warn};
use nix::mount::{MntFlags, umount2};
use nix::sys::signal::{SigSet, Signal, kill};
use nix::unistd::getpid;

pub use error::DaemonError;

use crate::fs::LxcFs;
use crate::fuse::{Session, SessionConfig, SessionState, Start};
use crate::host::HostPaths;
use crate::host::own::HANDOFF_DIR;
use crate::view::{View, ViewOptions};

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
}

/// The served filesystem's session, shared by the main thread (which ends it) and the
/// handoff thread (which parks it for a successor).
type Served = Arc<Mutex<Option<Session<LxcFs<View>>>>>;

/// Mounts the filesystem (or, with `takeover`, adopts the mount another daemon serves) and
/// serves it until SIGTERM, SIGINT or SIGHUP, until someone unmounts it, or until a
/// successor takes it over.
pub fn run(cfg: DaemonConfig) -> Result<(), DaemonError> {
    checks::check_root()?;
    checks::check_dev_fuse()?;
    let mut pidfile = if cfg.takeover {
        None
    } else {
        cfg.pidfile
            .as_deref()
            .map(pidfile::PidFile::acquire)
            .transpose()?
    };
    if cfg.host == HostPaths::default() {
        checks::join_host_cgroup_namespace()?;
        checks::warn_unless_host_pid_namespace();
    }
    if !cfg.takeover {
        mount::prepare_mountpoint(&cfg.mountpoint)?;
    }

    // Block the stop signals before any thread exists, so that every thread inherits the
    // mask and only the main thread's sigwait sees them.
    let mut stop = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        stop.add(s);
    }
    stop.thread_block().map_err(DaemonError::Signals)?;

    raise_descriptor_limit();
    let view = Arc::new(View::new(cfg.host.clone(), cfg.view)?);
    let session = if cfg.takeover {
        let session = adopt(&cfg, view)?;
        // The old daemon lets go of the pidfile as it exits. The mount is ours now: failing
        // here must not drop it.
        if let Some(path) = cfg.pidfile.as_deref() {
            match acquire_pidfile_patiently(path) {
                Ok(p) => pidfile = Some(p),
                Err(e) => warn!(
                    "serving without a pidfile: {}",
                    crate::error_chain::Chain(&e)
                ),
            }
        }
        session
    } else {
        mount_afresh(&cfg, view)?
    };
    let _pidfile = pidfile;
    info!(
        "serving {} with {} threads (handle generation {})",
        cfg.mountpoint.display(),
        cfg.threads,
        session.generation()
    );
    let served: Served = Arc::new(Mutex::new(Some(session)));
    let handed_over = Arc::new(AtomicBool::new(false));
    let socket = handoff::socket_path(Path::new(HANDOFF_DIR), &cfg.mountpoint);
    match handoff::Listener::bind(&socket) {
        Ok(listener) => {
            let (served, handed_over) = (served.clone(), handed_over.clone());
            let config = session_config(&cfg);
            if let Err(e) = std::thread::Builder::new()
                .name("handoff".into())
                .spawn(move || serve_successors(&listener, &served, &handed_over, config))
            {
                warn!("cannot start the handoff thread ({e}); `--takeover` will not work");
            }
        }
        Err(e) => warn!(
            "cannot listen on {} ({e}); `lxcfs-rs --takeover` will not find this daemon",
            socket.display()
        ),
    }

    notify::notify_systemd("READY=1");

    let signal = stop.wait().map_err(DaemonError::Signals)?;
    if handed_over.load(Ordering::Acquire) {
        info!(
            "handed {} over to a successor; exiting without unmounting",
            cfg.mountpoint.display()
        );
        return Ok(());
    }
    notify::notify_systemd("STOPPING=1");
    let mut session = served.lock().unwrap_or_else(|e| e.into_inner()).take();
    handoff::remove_socket(&socket);
    if session.as_ref().is_some_and(|s| s.ended()) {
        warn!(
            "{} was unmounted from outside; exiting",
            cfg.mountpoint.display()
        );
        return Ok(());
    }
    info!("{signal:?}: unmounting {}", cfg.mountpoint.display());
    if let Err(e) = umount2(&cfg.mountpoint, MntFlags::empty()) {
        // Busy (a reader's cwd, say): detach, so the mount point is free at once and the
        // filesystem goes away when its last user does.
        warn!("unmount failed ({e}); detaching instead");
        let _ = umount2(&cfg.mountpoint, MntFlags::MNT_DETACH);
    }
    if let Some(session) = session.as_mut()
        && !session.wait(Duration::from_secs(3))
    {
        warn!("FUSE session still busy after unmount; exiting anyway");
    }
    Ok(())
}

/// Raises the soft limit on open descriptors to the hard one: every serving thread keeps up
/// to `kfile::kept::PER_THREAD` kernel files open, besides the mount's own descriptors.
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

fn session_config(cfg: &DaemonConfig) -> SessionConfig {
    SessionConfig {
        threads: cfg.threads,
        clone_fd: true,
    }
}

/// Wakes the main thread when the connection ends under us (unmounted from outside).
fn wake_main() {
    let _ = kill(getpid(), Signal::SIGTERM);
}

/// Mounts afresh and serves under generation 1.
fn mount_afresh(cfg: &DaemonConfig, view: Arc<View>) -> Result<Session<LxcFs<View>>, DaemonError> {
    const GENERATION: u32 = 1;
    let fs = Arc::new(LxcFs::new(view, GENERATION)?);
    let mount_err = |source| DaemonError::Mount {
        path: cfg.mountpoint.clone(),
        source,
    };
    let fuse = mount::mount_fuse(&cfg.mountpoint, &cfg.options).map_err(mount_err)?;
    Session::start(
        fs,
        vec![fuse],
        Start::Fresh {
            generation: GENERATION,
            app: app_state(cfg),
        },
        session_config(cfg),
        wake_main,
    )
    .inspect_err(|_| {
        let _ = umount2(&cfg.mountpoint, MntFlags::MNT_DETACH);
    })
    .map_err(mount_err)
}

/// Takes the connection over from the daemon serving the mount point, serving under the
/// next generation, and tells the old daemon to go.
fn adopt(cfg: &DaemonConfig, view: Arc<View>) -> Result<Session<LxcFs<View>>, DaemonError> {
    let mut received = handoff::take_over(Path::new(HANDOFF_DIR), &cfg.mountpoint)?;
    let state = SessionState {
        generation: received.state.next_generation(),
        app: app_state(cfg),
        ..received.state.clone()
    };
    let fs = Arc::new(LxcFs::new(view, state.generation)?);
    let fds = std::mem::take(&mut received.fds);
    // The old daemon finished what it had read before parking, so nothing should be
    // waiting; should it have failed to, the kernel hands those requests to us.
    if state.init.is_some_and(|n| n.has_resend()) {
        match crate::fuse::resend(fds[0].as_fd()) {
            Ok(()) => debug!("asked the kernel to resend requests taken but not answered"),
            Err(e) => warn!("FUSE_NOTIFY_RESEND failed: {e}"),
        }
    }
    let session = Session::start(fs, fds, Start::Adopt(state), session_config(cfg), wake_main)
        .map_err(|source| DaemonError::Adopt {
            path: cfg.mountpoint.clone(),
            source,
        })?;
    if let Err(e) = received.acknowledge() {
        warn!("the old daemon did not hear that the mount is served: {e}");
    }
    Ok(session)
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

/// The handoff thread: parks the session for each successor that asks, and hands it over.
/// When the successor does not confirm it serves, the session is resumed here.
fn serve_successors(
    listener: &handoff::Listener,
    served: &Served,
    handed_over: &AtomicBool,
    config: SessionConfig,
) {
    loop {
        let successor = match listener.accept() {
            Ok(s) => s,
            Err(e) => {
                error!("handoff socket failed: {e}; `--takeover` is no longer possible");
                return;
            }
        };
        let mut slot = served.lock().unwrap_or_else(|e| e.into_inner());
        let Some(session) = slot.take() else {
            return;
        };
        let fs = session.filesystem();
        let parked = session.park();
        match successor.hand_over(&parked.state, &parked.fds) {
            Ok(true) => {
                handed_over.store(true, Ordering::Release);
                wake_main();
                return;
            }
            Ok(false) => warn!("the successor did not take the mount over; serving on"),
            Err(e) => warn!("handing the mount over failed ({e}); serving on"),
        }
        match Session::start(
            fs,
            parked.fds,
            Start::Adopt(parked.state),
            config,
            wake_main,
        ) {
            Ok(session) => *slot = Some(session),
            Err(e) => {
                error!("cannot resume serving after a failed handoff: {e}");
                wake_main();
                return;
            }
        }
    }
}
