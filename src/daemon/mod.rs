//! Running the filesystem: checks before mounting (`checks`), the pidfile (`pidfile`), the
//! mount itself (`mount`), systemd notification (`notify`), and a clean unmount on SIGTERM,
//! SIGINT or SIGHUP.

mod checks;
mod error;
mod mount;
mod notify;
mod pidfile;

use std::path::PathBuf;
use std::sync::{Arc, mpsc};
use std::time::Duration;

use fuser::{Session, SessionACL};
use log::{info, warn};
use nix::mount::{MntFlags, umount2};
use nix::sys::signal::{SigSet, Signal, kill};
use nix::unistd::getpid;

pub use error::DaemonError;

use crate::fs::LxcFs;
use crate::host::HostPaths;
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
}

/// Mounts the filesystem and serves it until SIGTERM, SIGINT or SIGHUP, or until someone
/// unmounts it.
pub fn run(cfg: DaemonConfig) -> Result<(), DaemonError> {
    checks::check_root()?;
    checks::check_dev_fuse()?;
    let _pidfile = cfg
        .pidfile
        .as_deref()
        .map(pidfile::PidFile::acquire)
        .transpose()?;
    if cfg.host == HostPaths::default() {
        checks::join_host_cgroup_namespace()?;
        checks::warn_unless_host_pid_namespace();
    }
    mount::prepare_mountpoint(&cfg.mountpoint)?;

    // Block the stop signals before any thread exists, so that every thread inherits the
    // mask and only the main thread's sigwait sees them.
    let mut stop = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        stop.add(s);
    }
    stop.thread_block().map_err(DaemonError::Signals)?;

    let view = Arc::new(View::new(cfg.host.clone(), cfg.view)?);
    let mut config = fuser::Config::default();
    config.acl = SessionACL::All;
    config.n_threads = Some(cfg.threads);
    config.clone_fd = true;
    let mount_err = |source| DaemonError::Mount {
        path: cfg.mountpoint.clone(),
        source,
    };
    let fuse = mount::mount_fuse(&cfg.mountpoint, &cfg.options).map_err(mount_err)?;
    let session = Session::from_fd(LxcFs::new(view), fuse, SessionACL::All, config)
        .inspect_err(|_| {
            let _ = umount2(&cfg.mountpoint, MntFlags::MNT_DETACH);
        })
        .map_err(mount_err)?;
    info!(
        "serving {} with {} threads",
        cfg.mountpoint.display(),
        cfg.threads
    );

    let (done_tx, done_rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("fuse-session".into())
        .spawn(move || {
            let result = session.run();
            let _ = done_tx.send(result);
            // Wake the main thread when the mount went away under us.
            let _ = kill(getpid(), Signal::SIGTERM);
        })
        .map_err(DaemonError::SessionThread)?;

    notify::notify_systemd("READY=1");

    let signal = stop.wait().map_err(DaemonError::Signals)?;
    notify::notify_systemd("STOPPING=1");
    if let Ok(result) = done_rx.try_recv() {
        warn!(
            "{} was unmounted from outside; exiting",
            cfg.mountpoint.display()
        );
        return result.map_err(|source| DaemonError::Mount {
            path: cfg.mountpoint.clone(),
            source,
        });
    }
    info!("{signal:?}: unmounting {}", cfg.mountpoint.display());
    if let Err(e) = umount2(&cfg.mountpoint, MntFlags::empty()) {
        // Busy (a reader's cwd, say): detach, so the mount point is free at once and the
        // filesystem goes away when its last user does.
        warn!("unmount failed ({e}); detaching instead");
        let _ = umount2(&cfg.mountpoint, MntFlags::MNT_DETACH);
    }
    match done_rx.recv_timeout(Duration::from_secs(3)) {
        Ok(Err(e)) => warn!("FUSE session ended with an error: {e}"),
        Ok(Ok(())) => {}
        Err(_) => warn!("FUSE session still busy after unmount; exiting anyway"),
    }
    Ok(())
}
