//! The supervisor: the process users start (MainPID under systemd, PID 1 in a container). It
//! owns the connection, and runs the worker that serves it.
//!
//! It holds every `/dev/fuse` struct file the worker reads from (the mounted descriptor and
//! the per-thread clones, made here), so requests in flight survive a worker's death: the
//! next worker, started at once, asks the kernel to resend them. It also holds the board. It
//! parses no FUSE traffic and, once serving, allocates nothing: it waits in `poll(2)` for a
//! signal, its worker's channel, a peer on the handoff socket, or the watchdog's tick.
//!
//! Signals, as lxcfs's operators know them: SIGTERM and SIGINT stop (unmounting, unless the
//! connection is handed to systemd's store or a successor); SIGUSR1 (lxcfs's reload) and
//! SIGHUP re-execute the installed binary in place, keeping the mount; SIGUSR2 switches
//! between files rendered for each reader and the host's own, as lxcfs's does.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use log::{debug, error, info, warn};
use nix::fcntl::{FcntlArg, FdFlag, fcntl};
use nix::mount::{MntFlags, umount2};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::Pid;

use super::board::{Board, resend};
use super::control::{self, Channel, Message};
use super::error::DaemonError;
use super::fds::{self, CLONE, CONTROL, FUSE, STATE};
use super::handoff::{self, Asked};
use super::worker::EXIT_ENDED;
use super::{DaemonConfig, notify, pidfile};
use crate::fuse::{SessionState, state::STATE_VERSION};
use crate::host::own;

/// Deaths within this window that are replaced at once; more are slowed down.
const QUICK_DEATHS: usize = 3;
/// The window.
const DEATH_WINDOW: Duration = Duration::from_secs(10);
/// The longest wait before replacing a worker that keeps dying.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// A worker that answers nothing this long while requests wait is replaced.
const WATCHDOG: Duration = Duration::from_secs(10);
/// How long a stopped worker the watchdog continued may run before it is killed.
const STOPPED_GRACE: Duration = Duration::from_millis(50);
/// How often the watchdog looks: a stalled worker is replaced within [`WATCHDOG`] plus this.
const TICK: Duration = Duration::from_millis(250);
/// How long a worker may take to park.
const PARK_PATIENCE: Duration = Duration::from_secs(10);

/// Signals whose default action would end the service though nobody who sends them means
/// that: logged and ignored.
const IGNORED: [Signal; 5] = [
    Signal::SIGALRM,
    Signal::SIGVTALRM,
    Signal::SIGPROF,
    Signal::SIGIO,
    Signal::SIGPWR,
];

/// The signals the supervisor reads (and so never dies of).
fn handled_signals() -> SigSet {
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGCHLD,
    ]
    .into_iter()
    .chain(IGNORED)
    {
        set.add(s);
    }
    set
}

/// Blocks the signals the supervisor acts on (before any thread exists, so that every thread
/// inherits the mask) and returns a descriptor that reads them.
pub(super) fn signal_descriptor() -> Result<SignalFd, DaemonError> {
    let set = handled_signals();
    set.thread_block().map_err(DaemonError::Signals)?;
    SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(DaemonError::Signals)
}

/// The delay before replacing a worker, given the deaths of the last [`DEATH_WINDOW`]
/// (this one included): none for the first [`QUICK_DEATHS`], then doubling from 100 ms up to
/// [`MAX_BACKOFF`].
pub(super) fn backoff(recent_deaths: usize) -> Duration {
    match recent_deaths.checked_sub(QUICK_DEATHS + 1) {
        None => Duration::ZERO,
        Some(extra) => (Duration::from_millis(100) * 2u32.saturating_pow(extra.min(10) as u32))
            .min(MAX_BACKOFF),
    }
}

/// A running worker.
struct Worker {
    child: Child,
    control: Channel,
    ready: bool,
}

/// The connection a supervisor serves, however it got it.
pub(super) struct Connection {
    /// The mounted descriptor first, then clones.
    pub fuse: Vec<OwnedFd>,
    /// The board.
    pub board: Board,
}

/// Why the loop ended.
enum End {
    /// Stop: unmount unless someone keeps the connection.
    Stop(Signal),
    /// A successor serves the mount now.
    HandedOver,
    /// The filesystem was unmounted from outside.
    Unmounted,
    /// The first worker could not start on a mount made here: unmount, fail.
    NeverServed(String),
    /// The first worker could not start on a connection taken over: leave it to the
    /// predecessor, which serves on when it hears no acknowledgement.
    TakeoverFailed(String),
}

/// The supervisor's state.
pub(super) struct Supervisor {
    cfg: DaemonConfig,
    conn: Connection,
    /// Our arguments, for the worker's command line and our own re-execution.
    args: Vec<OsString>,
    /// The installed binary, resolved at start (a later package upgrade replaces the file;
    /// `/proc/self/exe` would still name the old one).
    exe: PathBuf,
    signals: SignalFd,
    listener: Option<handoff::Listener>,
    socket: PathBuf,
    worker: Option<Worker>,
    deaths: VecDeque<Instant>,
    respawn_at: Option<Instant>,
    ever_ready: bool,
    in_systemd_store: bool,
    /// A takeover received from our predecessor, acknowledged once our worker serves.
    pending_ack: Option<handoff::Received>,
    /// The connection came from our own previous binary or from systemd's store.
    inherited: bool,
    /// A fresh mount: once the first worker serves, containers' dead binds are re-bound
    /// (these devices were detached from the mount point, besides those judged dead).
    reattach: Option<Vec<String>>,
    pidfile: Option<pidfile::PidFile>,
    /// fusectl's `waiting` file of our connection.
    waiting_file: Option<PathBuf>,
    progress: (u64, Instant),
    /// Over io_uring, whether the watchdog replaced a worker for the stall going on now.
    ring_replaced: bool,
    /// Over io_uring, requests judged stranded in ring entries of a gone process whose
    /// buffers no worker of ours can reach (a daemon that handed the mount over): still
    /// counted waiting by the kernel, never to be answered, so not a stall of the worker.
    stranded: u64,
    /// The worker the watchdog killed, when, and whether it was said that it has not exited.
    killed: Option<(u32, Instant, bool)>,
    last_tick: Instant,
}

impl Supervisor {
    /// A supervisor for `conn`, not yet running a worker.
    pub(super) fn new(
        cfg: DaemonConfig,
        conn: Connection,
        signals: SignalFd,
        pending_ack: Option<handoff::Received>,
        inherited: bool,
        pidfile: Option<pidfile::PidFile>,
    ) -> Supervisor {
        // After `--host-mount-ns` the path we were started by is the container's, which
        // names nothing (or something else) in the host's namespace we now live in: the
        // running executable itself is what can be re-executed.
        let exe = if cfg.host_mount_ns {
            PathBuf::from("/proc/self/exe")
        } else {
            std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe"))
        };
        let socket = handoff::socket_path(Path::new(own::HANDOFF_DIR), &cfg.mountpoint);
        let waiting_file = waiting_file(&cfg.mountpoint);
        if waiting_file.is_none() {
            warn!(
                "no fusectl entry for {}: the watchdog cannot see waiting requests",
                cfg.mountpoint.display()
            );
        }
        Supervisor {
            args: std::env::args_os().skip(1).collect(),
            exe,
            signals,
            listener: None,
            socket,
            worker: None,
            deaths: VecDeque::with_capacity(16),
            respawn_at: None,
            ever_ready: false,
            in_systemd_store: false,
            pending_ack,
            inherited,
            reattach: None,
            pidfile,
            waiting_file,
            progress: (0, Instant::now()),
            ring_replaced: false,
            stranded: 0,
            killed: None,
            last_tick: Instant::now(),
            cfg,
            conn,
        }
    }

    /// On a fresh mount, re-binds containers' dead lxcfs mounts once serving (`detached`:
    /// the dead devices detached from the mount point).
    pub(super) fn reattach_when_serving(mut self, detached: Option<Vec<String>>) -> Supervisor {
        self.reattach = detached;
        self
    }

    /// Makes clones until there is one struct file per serving thread, pushes every
    /// descriptor to systemd's store, listens for successors, starts the worker and serves
    /// until stopped.
    pub(super) fn run(mut self) -> Result<(), DaemonError> {
        while self.conn.fuse.len() < self.cfg.threads {
            match crate::fuse::clone_device(&self.conn.fuse[0]) {
                Ok(fd) => self.conn.fuse.push(fd),
                Err(e) => {
                    warn!("cannot clone the FUSE descriptor ({e}); threads will share one");
                    break;
                }
            }
        }
        self.push_to_systemd();
        match handoff::Listener::bind(&self.socket) {
            Ok(l) => self.listener = Some(l),
            Err(e) => warn!(
                "cannot listen on {} ({e}); `lxcfs-rs --takeover` and `status` will not find \
                 this daemon",
                self.socket.display()
            ),
        }
        if let Err(e) = self.spawn() {
            let why = format!("cannot start the worker: {e}");
            let end = if self.pending_ack.take().is_some() {
                End::TakeoverFailed(why)
            } else if self.inherited {
                // Nobody else holds this connection: serve it as soon as a worker starts.
                error!("{why}; trying again in {MAX_BACKOFF:?}");
                self.respawn_at = Some(Instant::now() + MAX_BACKOFF);
                self.serve()?
            } else {
                End::NeverServed(why)
            };
            return self.finish(end);
        }
        let end = self.serve()?;
        self.finish(end)
    }

    fn push_to_systemd(&mut self) {
        if !fds::systemd_store_available() {
            return;
        }
        let raw = |fds: &[OwnedFd]| fds.iter().map(AsRawFd::as_raw_fd).collect::<Vec<_>>();
        let pushed = fds::push_to_systemd(FUSE, &raw(&self.conn.fuse[..1]))
            .and_then(|()| fds::push_to_systemd(CLONE, &raw(&self.conn.fuse[1..])))
            .and_then(|()| fds::push_to_systemd(STATE, &[self.conn.board.fd().as_raw_fd()]));
        match pushed {
            Ok(()) => {
                self.in_systemd_store = true;
                info!("the FUSE connection is kept in systemd's file descriptor store too");
            }
            Err(e) => warn!("cannot push the FUSE descriptors to systemd's store: {e}"),
        }
    }

    /// Starts a worker with the descriptors, the board and a fresh control channel.
    fn spawn(&mut self) -> std::io::Result<()> {
        let (ours, theirs) = control::pair()?;
        let mut pass: Vec<(&str, RawFd)> = Vec::with_capacity(self.conn.fuse.len() + 2);
        pass.push((FUSE, self.conn.fuse[0].as_raw_fd()));
        pass.extend(self.conn.fuse[1..].iter().map(|f| (CLONE, f.as_raw_fd())));
        pass.push((STATE, self.conn.board.fd().as_raw_fd()));
        pass.push((CONTROL, theirs.fd().as_raw_fd()));
        let raw: Vec<RawFd> = pass.iter().map(|&(_, fd)| fd).collect();
        let mut cmd = Command::new("/proc/self/exe");
        cmd.arg0("lxcfs-rs")
            .arg("--worker")
            .args(&self.args)
            .env(fds::ENV, fds::env_value(pass));
        // SAFETY: only async-signal-safe calls between fork and exec: fcntl and prctl.
        unsafe {
            cmd.pre_exec(move || {
                for &fd in &raw {
                    if nix::libc::fcntl(fd, nix::libc::F_SETFD, 0) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                // The worker dies with us: without its supervisor nobody would replace it or
                // hand the mount on, and a successor could not know it still serves.
                nix::libc::prctl(nix::libc::PR_SET_PDEATHSIG, nix::libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn()?;
        drop(theirs);
        debug!("started worker {}", child.id());
        self.worker = Some(Worker {
            child,
            control: ours,
            ready: false,
        });
        self.respawn_at = None;
        self.progress = (
            self.conn.board.slots().replies.load(Ordering::Relaxed),
            Instant::now(),
        );
        Ok(())
    }

    /// The event loop.
    fn serve(&mut self) -> Result<End, DaemonError> {
        loop {
            let timeout = match self.respawn_at {
                Some(at) => at.saturating_duration_since(Instant::now()).min(TICK),
                None => TICK,
            };
            let (sig, ctl, peer) = {
                // On the stack: the loop allocates nothing while it serves.
                let mut fds: [PollFd; 3] =
                    std::array::from_fn(|_| PollFd::new(self.signals.as_fd(), PollFlags::POLLIN));
                let mut n = 1;
                let mut ctl_at = None;
                if let Some(w) = &self.worker {
                    fds[n] = PollFd::new(w.control.fd(), PollFlags::POLLIN);
                    ctl_at = Some(n);
                    n += 1;
                }
                let mut peer_at = None;
                if let Some(l) = &self.listener {
                    fds[n] = PollFd::new(l.fd(), PollFlags::POLLIN);
                    peer_at = Some(n);
                    n += 1;
                }
                let ms = u16::try_from(timeout.as_millis()).unwrap_or(250);
                match poll(&mut fds[..n], PollTimeout::from(ms)) {
                    Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                    Err(e) => return Err(DaemonError::Signals(e)),
                }
                let ready = |i: Option<usize>| {
                    i.and_then(|i| fds[i].revents())
                        .is_some_and(|r| !r.is_empty())
                };
                (ready(Some(0)), ready(ctl_at), ready(peer_at))
            };
            if sig && let Some(end) = self.on_signals()? {
                return Ok(end);
            }
            if ctl && let Some(end) = self.on_worker_message() {
                return Ok(end);
            }
            if peer && let Some(end) = self.on_peer() {
                return Ok(end);
            }
            if self.respawn_at.is_some_and(|at| Instant::now() >= at)
                && let Err(e) = self.spawn()
            {
                error!("cannot start a worker: {e}; trying again in 1 s");
                self.respawn_at = Some(Instant::now() + MAX_BACKOFF);
            }
            if self.last_tick.elapsed() >= TICK {
                self.last_tick = Instant::now();
                self.watchdog();
            }
        }
    }

    fn on_signals(&mut self) -> Result<Option<End>, DaemonError> {
        while let Some(info) = self.signals.read_signal().map_err(DaemonError::Signals)? {
            let Ok(signal) = Signal::try_from(info.ssi_signo as i32) else {
                continue;
            };
            match signal {
                Signal::SIGTERM | Signal::SIGINT => return Ok(Some(End::Stop(signal))),
                Signal::SIGUSR1 | Signal::SIGHUP => {
                    info!("{signal:?}: re-executing {} in place", self.exe.display());
                    self.reexec();
                }
                Signal::SIGUSR2 => self.toggle_virtualization(),
                s if IGNORED.contains(&s) => info!("{s:?} ignored"),
                Signal::SIGCHLD => {
                    if let Some(end) = self.reap() {
                        return Ok(Some(end));
                    }
                }
                _ => {}
            }
        }
        Ok(None)
    }

    /// Notes a worker that died, and when to replace it.
    fn reap(&mut self) -> Option<End> {
        let w = self.worker.as_mut()?;
        let status = match w.child.try_wait() {
            Ok(Some(status)) => status,
            Ok(None) => return None,
            Err(e) => {
                warn!("cannot reap the worker: {e}");
                return None;
            }
        };
        let pid = w.child.id();
        let was_ready = w.ready;
        self.worker = None;
        self.conn
            .board
            .slots()
            .worker_pid
            .store(0, Ordering::Relaxed);
        if status.code() == Some(EXIT_ENDED) {
            return Some(End::Unmounted);
        }
        // A worker that never served and exited by itself would fail the same way again
        // (its error is in the log above). On a mount made here, or one a predecessor still
        // holds, giving up is right; a connection inherited from our own previous binary or
        // from systemd has nobody else to serve it, so that one is retried with backoff.
        if !self.ever_ready && !was_ready && status.code().is_some() {
            let why = format!("the worker could not start ({status})");
            if self.pending_ack.take().is_some() {
                return Some(End::TakeoverFailed(why));
            }
            if !self.inherited {
                return Some(End::NeverServed(why));
            }
            error!("{why}; trying again");
        }
        let held = self.conn.board.record_crash();
        self.conn
            .board
            .slots()
            .restarts
            .fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        while self
            .deaths
            .front()
            .is_some_and(|t| now.duration_since(*t) > DEATH_WINDOW)
        {
            self.deaths.pop_front();
        }
        if self.deaths.len() >= 16 {
            self.deaths.pop_front();
        }
        self.deaths.push_back(now);
        let delay = backoff(self.deaths.len());
        let how = match status.signal() {
            Some(sig) => {
                Signal::try_from(sig).map_or_else(|_| format!("signal {sig}"), |s| format!("{s:?}"))
            }
            None => format!("exit code {}", status.code().unwrap_or(-1)),
        };
        warn!(
            "worker {pid} died ({how}) holding {held} request(s); replacing it{}",
            if delay.is_zero() {
                String::new()
            } else {
                format!(" in {delay:?}")
            }
        );
        self.respawn_at = Some(now + delay);
        None
    }

    fn on_worker_message(&mut self) -> Option<End> {
        let w = self.worker.as_mut()?;
        match w.control.recv() {
            Ok(Some(Message::Ready)) => {
                w.ready = true;
                if !self.ever_ready {
                    self.ever_ready = true;
                    info!(
                        "serving {} with {} threads (worker {}, generation {}, resend {})",
                        self.cfg.mountpoint.display(),
                        self.cfg.threads,
                        w.child.id(),
                        self.conn.board.slots().generation.load(Ordering::Relaxed),
                        self.resend_word(),
                    );
                    notify::notify_systemd("READY=1");
                    self.acknowledge_predecessor();
                    self.start_reattach();
                } else {
                    info!("worker {} serves", w.child.id());
                }
            }
            Ok(Some(other)) => debug!("worker says {other:?}"),
            // Gone: SIGCHLD tells how.
            Ok(None) | Err(_) => {}
        }
        None
    }

    /// Re-binds, from a thread of its own (each namespace by a helper process), every dead
    /// lxcfs mount that containers hold, now that the fresh mount serves.
    fn start_reattach(&mut self) {
        let Some(known_dead) = self.reattach.take() else {
            return;
        };
        let mountpoint = self.cfg.mountpoint.clone();
        let spawned = std::thread::Builder::new()
            .name("reattach".into())
            .spawn(move || {
                let exe = Path::new("/proc/self/exe");
                match crate::reattach::reattach(&mountpoint, exe, &known_dead) {
                    Ok(report) => {
                        for ns in &report.namespaces {
                            if ns.failed.is_empty() {
                                info!("{}", ns.line());
                            } else {
                                warn!("{}", ns.line());
                            }
                        }
                        if report.namespaces.is_empty() {
                            debug!("{}", report.summary());
                        } else {
                            info!("{}", report.summary());
                        }
                    }
                    Err(e) => warn!("reattach: {}", crate::error_chain::Chain(&e)),
                }
            });
        if let Err(e) = spawned {
            warn!("reattach: cannot start its thread: {e}");
        }
    }

    /// After a takeover: tells the predecessor we serve (it exits), then takes the pidfile
    /// it lets go of.
    fn acknowledge_predecessor(&mut self) {
        let Some(received) = self.pending_ack.take() else {
            return;
        };
        if let Err(e) = received.acknowledge() {
            warn!("the old daemon did not hear that the mount is served: {e}");
        }
        if let Some(path) = self.cfg.pidfile.clone() {
            match super::acquire_pidfile_patiently(&path) {
                Ok(p) => self.pidfile = Some(p),
                Err(e) => warn!(
                    "serving without a pidfile: {}",
                    crate::error_chain::Chain(&e)
                ),
            }
        }
    }

    fn resend_word(&self) -> &'static str {
        match self.conn.board.slots().resend.load(Ordering::Relaxed) {
            resend::YES => "yes",
            resend::NO => "no",
            _ => "unknown",
        }
    }

    fn on_peer(&mut self) -> Option<End> {
        let asked = match self.listener.as_ref()?.accept() {
            Ok(a) => a,
            Err(e) => {
                error!("handoff socket failed: {e}; `--takeover` is no longer possible");
                self.listener = None;
                return None;
            }
        };
        match asked {
            Asked::Status(asker) => {
                if let Err(e) = asker.answer(&self.status()) {
                    debug!("status: {e}");
                }
                None
            }
            Asked::Takeover(successor) => {
                self.park();
                let mut state = self.session_state();
                super::hand_ledger_over(&self.conn.board, &mut state.app);
                super::ring_handover::hand_over(&self.conn.board, &mut state.app);
                match successor.hand_over(&state, &self.conn.fuse) {
                    Ok(true) => return Some(End::HandedOver),
                    Ok(false) => warn!("the successor did not take the mount over; serving on"),
                    Err(e) => warn!("handing the mount over failed ({e}); serving on"),
                }
                if let Err(e) = self.spawn() {
                    error!("cannot start a worker after a failed handoff: {e}");
                    self.respawn_at = Some(Instant::now() + MAX_BACKOFF);
                }
                None
            }
        }
    }

    /// The session state on the board, under the generation last served (what a successor
    /// needs).
    fn session_state(&self) -> SessionState {
        let generation = self.conn.board.slots().generation.load(Ordering::Relaxed);
        let kept = self
            .conn
            .board
            .read_state()
            .ok()
            .flatten()
            .and_then(|b| SessionState::from_bytes(&b).ok());
        match kept {
            Some(s) => SessionState { generation, ..s },
            None => SessionState {
                version: STATE_VERSION,
                init: None,
                generation,
                app: super::app_state(&self.cfg),
            },
        }
    }

    /// What `lxcfs-rs status` shows.
    fn status(&self) -> serde_json::Value {
        let s = self.conn.board.slots();
        let dev = crate::mounts::mount_at(&crate::mounts::absolute(&self.cfg.mountpoint))
            .map(|(_, major, minor)| format!("{major}:{minor}"));
        let transport = self.transport();
        serde_json::json!({
            "mountpoint": self.cfg.mountpoint,
            "version": crate::version::version(),
            "supervisor_pid": std::process::id(),
            "worker_pid": self.worker.as_ref().map(|w| w.child.id()),
            "generation": s.generation.load(Ordering::Relaxed),
            // Over io_uring the requests that matter sit in ring entries, which the kernel
            // does not resend (what /dev/fuse still carries, it does): say no.
            "resend": match s.resend.load(Ordering::Relaxed) {
                _ if transport == crate::fuse::Transport::IoUring => Some(false),
                resend::YES => Some(true),
                resend::NO => Some(false),
                resend::UNKNOWN => None,
                other => {
                    debug!("the board says resend {other}");
                    None
                }
            },
            "waiting": self.waiting(),
            "worker_restarts": s.restarts.load(Ordering::Relaxed),
            "reads": s.counters.reads.load(Ordering::Relaxed),
            "fallbacks": s.counters.fallbacks.load(Ordering::Relaxed),
            "kept_bytes": s.kept.bytes.load(Ordering::Relaxed),
            "kept_refused": s.kept.refused.load(Ordering::Relaxed),
            "virtualized": s.virtualized.load(Ordering::Relaxed) != 0,
            "dev": dev,
            "threads": self.cfg.threads,
            "transport": transport,
            "systemd_store": self.in_systemd_store,
        })
    }

    /// How the kernel sends requests, as the INIT handshake kept on the board says.
    fn transport(&self) -> crate::fuse::Transport {
        match self.session_state().init {
            Some(n) if n.uses_io_uring() => crate::fuse::Transport::IoUring,
            _ => crate::fuse::Transport::DevFuse,
        }
    }

    /// Requests waiting on the connection, from fusectl (read into a stack buffer: the
    /// watchdog asks every second).
    fn waiting(&self) -> Option<u64> {
        use std::io::Read;
        let mut buf = [0u8; 24];
        let n = std::fs::File::open(self.waiting_file.as_ref()?)
            .and_then(|mut f| f.read(&mut buf))
            .ok()?;
        std::str::from_utf8(&buf[..n]).ok()?.trim().parse().ok()
    }

    /// Replaces a worker that answered nothing for [`WATCHDOG`] while requests waited.
    ///
    /// Over io_uring, what a killed worker held in its ring entries is served by the next
    /// worker (`fuse::uring::arena`), but a request the kernel put in an entry of a process
    /// whose buffers the next worker cannot reach (a daemon that handed the mount over)
    /// waits until unmount whatever we do, and each further kill would only cost a pause.
    /// So when a replacement did not end a stall over io_uring, what still waits is counted
    /// as stranded and said once, and only requests beyond those make a stall.
    fn watchdog(&mut self) {
        let Some(w) = self.worker.as_ref().filter(|w| w.ready) else {
            return;
        };
        let pid = w.child.id();
        self.killed_worker_not_gone(pid);
        let replies = self.conn.board.slots().replies.load(Ordering::Relaxed);
        let waiting = self.waiting().unwrap_or(0);
        self.stranded = self.stranded.min(waiting);
        let pending = waiting - self.stranded;
        if pending == 0 {
            self.ring_replaced = false;
        }
        if replies != self.progress.0 || pending == 0 {
            self.progress = (replies, Instant::now());
            return;
        }
        let stalled = self.progress.1.elapsed();
        if stalled < WATCHDOG {
            return;
        }
        let ring = self.transport() == crate::fuse::Transport::IoUring;
        if ring && self.ring_replaced {
            warn!(
                "{pending} request(s) still wait after a worker was replaced: they were \
                 handed to a ring entry no worker of this daemon can reach (the kernel cannot \
                 resend io_uring requests); they wait until the mount is unmounted \
                 (restart without --io-uring to avoid this)"
            );
            self.stranded = waiting;
            self.ring_replaced = false;
            self.progress = (replies, Instant::now());
            return;
        }
        self.ring_replaced = ring;
        warn!(
            "worker {pid} answered nothing for {stalled:?} while {pending} request(s) waited; \
             replacing it"
        );
        let worker = Pid::from_raw(pid as i32);
        // A stopped worker first gets to run once: over io_uring, requests the kernel
        // assigned to its entries are copied into them only in the worker's own context,
        // and a worker killed before that fails them (ECANCELED) rather than leaving them
        // for the next one. Over /dev/fuse it changes nothing.
        if kill(worker, Signal::SIGCONT).is_ok() {
            std::thread::sleep(STOPPED_GRACE);
        }
        let _ = kill(worker, Signal::SIGKILL);
        if self.killed.is_none_or(|(killed, _, _)| killed != pid) {
            self.killed = Some((pid, Instant::now(), false));
        }
        self.progress = (replies, Instant::now());
    }

    /// Says, once, that worker `pid`, killed a watchdog period ago, has still not exited: a
    /// thread of it waits in the kernel where SIGKILL cannot reach it (an uninterruptible
    /// wait, such as a read of a hung file). No worker can replace it until it exits, and
    /// every request of the mount waits.
    fn killed_worker_not_gone(&mut self, pid: u32) {
        let Some((killed, at, said)) = self.killed.as_mut() else {
            return;
        };
        if *killed != pid {
            // Reaped and replaced.
            self.killed = None;
            return;
        }
        if *said || at.elapsed() < WATCHDOG {
            return;
        }
        *said = true;
        error!(
            "worker {pid}, killed {:?} ago, has not exited: {}; until it exits no worker \
             replaces it and every request of {} waits",
            at.elapsed(),
            uninterruptible_thread(pid)
                .unwrap_or_else(|| "a thread of it waits in the kernel".into()),
            self.cfg.mountpoint.display()
        );
    }

    fn toggle_virtualization(&mut self) {
        let slots = self.conn.board.slots();
        let on = slots.virtualized.load(Ordering::Relaxed) == 0;
        slots.virtualized.store(u32::from(on), Ordering::Relaxed);
        if on {
            info!("SIGUSR2: switched into virtualization mode (files per reader)");
        } else {
            info!("SIGUSR2: switched into non-virtualization mode (the host's files)");
        }
        if let Some(w) = &self.worker {
            let _ = w.control.send(Message::Virtualize(on));
        }
    }

    /// Has the worker stop at a request boundary and exit, leaving the session state on the
    /// board. A worker that does not park in time is killed (what it held is resent to the
    /// next).
    fn park(&mut self) {
        let Some(mut w) = self.worker.take() else {
            return;
        };
        let asked = w.control.send(Message::Park).is_ok();
        let deadline = Instant::now() + PARK_PATIENCE;
        loop {
            match w.child.try_wait() {
                Ok(Some(status)) => {
                    if !status.success() {
                        self.conn.board.record_crash();
                    }
                    break;
                }
                Ok(None) if asked && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                _ => {
                    warn!("worker {} did not park; killing it", w.child.id());
                    let _ = w.child.kill();
                    let _ = w.child.wait();
                    self.conn.board.record_crash();
                    break;
                }
            }
        }
        self.conn
            .board
            .slots()
            .worker_pid
            .store(0, Ordering::Relaxed);
    }

    /// Parks the worker and executes the installed binary in this process, passing the
    /// connection and the board. Returns only when that failed, serving on.
    fn reexec(&mut self) {
        self.park();
        let mut pass: Vec<(&str, RawFd)> = Vec::with_capacity(self.conn.fuse.len() + 1);
        pass.push((FUSE, self.conn.fuse[0].as_raw_fd()));
        pass.extend(self.conn.fuse[1..].iter().map(|f| (CLONE, f.as_raw_fd())));
        pass.push((STATE, self.conn.board.fd().as_raw_fd()));
        let set_cloexec = |on: bool| {
            for &(_, fd) in &pass {
                // SAFETY: our own open descriptors.
                let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
                let flags = if on {
                    FdFlag::FD_CLOEXEC
                } else {
                    FdFlag::empty()
                };
                let _ = fcntl(fd, FcntlArg::F_SETFD(flags));
            }
        };
        set_cloexec(false);
        let err = Command::new(&self.exe)
            .arg0("lxcfs-rs")
            .args(self.args.iter().filter(|a| *a != "--takeover"))
            .env(fds::ENV, fds::env_value(pass.iter().copied()))
            .exec();
        set_cloexec(true);
        error!(
            "cannot execute {} ({err}); serving on with this binary",
            self.exe.display()
        );
        if let Err(e) = self.spawn() {
            error!("cannot start a worker: {e}");
            self.respawn_at = Some(Instant::now() + MAX_BACKOFF);
        }
    }

    fn finish(mut self, end: End) -> Result<(), DaemonError> {
        let mountpoint = self.cfg.mountpoint.clone();
        match end {
            End::HandedOver if self.cfg.wait_after_handoff => {
                info!(
                    "handed {} over to a successor; waiting for SIGTERM or SIGINT \
                     (--wait-after-handoff), holding nothing of the mount",
                    mountpoint.display()
                );
                return self.wait_idle();
            }
            End::HandedOver => {
                info!(
                    "handed {} over to a successor; exiting without unmounting",
                    mountpoint.display()
                );
                return Ok(());
            }
            End::Unmounted => {
                warn!(
                    "{} was unmounted from outside; exiting",
                    mountpoint.display()
                );
                handoff::remove_socket(&self.socket);
                return Ok(());
            }
            End::TakeoverFailed(why) => {
                // Dropping the unacknowledged handoff tells the predecessor to serve on.
                return Err(DaemonError::Worker(format!(
                    "{why}; the daemon that served {} serves on",
                    mountpoint.display()
                )));
            }
            End::NeverServed(why) => {
                handoff::remove_socket(&self.socket);
                if let Err(e) = umount2(&mountpoint, MntFlags::MNT_DETACH) {
                    warn!("cannot unmount {}: {e}", mountpoint.display());
                }
                return Err(DaemonError::Worker(why));
            }
            End::Stop(signal) => {
                notify::notify_systemd("STOPPING=1");
                self.park();
                if self.in_systemd_store {
                    info!(
                        "{signal:?}: exiting; systemd keeps the connection of {} for the next \
                         start (a restart is seamless; after a stop it is closed)",
                        mountpoint.display()
                    );
                    return Ok(());
                }
                handoff::remove_socket(&self.socket);
                info!("{signal:?}: unmounting {}", mountpoint.display());
                if let Err(e) = umount2(&mountpoint, MntFlags::empty()) {
                    // Busy (a reader's cwd, say): detach, so the mount point is free at once
                    // and the filesystem goes away when its last user does.
                    warn!("unmount failed ({e}); detaching instead");
                    let _ = umount2(&mountpoint, MntFlags::MNT_DETACH);
                }
            }
        }
        Ok(())
    }
}

impl Supervisor {
    /// After a handoff with `--wait-after-handoff`: lets go of the connection, the board, the
    /// handoff socket (now the successor's) and the pidfile, then sleeps until SIGTERM or
    /// SIGINT and exits 0, leaving the mount alone. Exiting at once would make a restarting
    /// supervisor (Docker's --restart, the kubelet) start this container again, and it would
    /// take the mount back from its successor.
    fn wait_idle(self) -> Result<(), DaemonError> {
        let Supervisor {
            conn,
            listener,
            pidfile,
            signals,
            ..
        } = self;
        drop((conn, listener, pidfile));
        loop {
            let mut fds = [PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(DaemonError::Signals(e)),
            }
            while let Some(info) = signals.read_signal().map_err(DaemonError::Signals)? {
                match Signal::try_from(info.ssi_signo as i32) {
                    Ok(s @ (Signal::SIGTERM | Signal::SIGINT)) => {
                        info!("{s:?}: exiting; the successor serves the mount");
                        return Ok(());
                    }
                    Ok(Signal::SIGCHLD) => {}
                    Ok(s) => info!("{s:?} ignored: the mount was handed over"),
                    Err(_) => {}
                }
            }
        }
    }
}

/// fusectl's `waiting` file for the FUSE mount at `mountpoint`: the connection's directory is
/// named by the device number (`major << 20 | minor`), read from mountinfo.
fn waiting_file(mountpoint: &Path) -> Option<PathBuf> {
    let (_, major, minor) = crate::mounts::mount_at(&crate::mounts::absolute(mountpoint))?;
    let dir = crate::mounts::fusectl_dir(major, minor);
    let file = dir.join("waiting");
    if file.exists() {
        return Some(file);
    }
    // fusectl is not mounted here: mount it (as systemd does at boot).
    let _ = nix::mount::mount(
        Some("fusectl"),
        own::FUSECTL,
        Some("fusectl"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    );
    file.exists().then_some(file)
}

/// The first thread of `pid` in uninterruptible sleep, named with where it waits:
/// `thread NAME waits in WCHAN`.
fn uninterruptible_thread(pid: u32) -> Option<String> {
    let worker = procfs::process::Process::new(pid as i32).ok()?;
    worker.tasks().ok()?.flatten().find_map(|task| {
        let stat = task.stat().ok().filter(|s| s.state == 'D')?;
        let wchan = std::fs::read_to_string(format!("/proc/{pid}/task/{}/wchan", task.tid))
            .unwrap_or_default();
        Some(format!("thread {} waits in {}", stat.comm, wchan.trim()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_three_deaths_in_ten_seconds_are_replaced_at_once() {
        assert_eq!(backoff(1), Duration::ZERO);
        assert_eq!(backoff(3), Duration::ZERO);
        assert_eq!(backoff(4), Duration::from_millis(100));
        assert_eq!(backoff(5), Duration::from_millis(200));
        assert_eq!(backoff(8), MAX_BACKOFF);
        assert_eq!(backoff(1000), MAX_BACKOFF);
    }

    #[test]
    fn a_thread_in_uninterruptible_sleep_is_named_with_where_it_waits() {
        // This test's threads run or sleep interruptibly; a gone pid has none.
        assert_eq!(uninterruptible_thread(std::process::id()), None);
        assert_eq!(uninterruptible_thread(u32::MAX >> 1), None);
        // A child stopped by SIGSTOP is in state T, not D: still none.
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGSTOP);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(uninterruptible_thread(pid), None);
        let _ = child.kill();
        let _ = child.wait();
    }
}
