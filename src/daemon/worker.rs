//! The worker: the process that serves FUSE requests, started (and restarted) by its
//! supervisor with the `/dev/fuse` descriptors, the board and a control channel inherited.
//! It holds nothing that must survive it: the supervisor keeps the descriptors, the board
//! keeps the session state and the journal of requests in flight, and the kernel keeps
//! requests this process had read on the supervisor's struct files, to be resent to the next
//! worker.

use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use log::{debug, error, info, warn};
use nix::errno::Errno;

use super::board::{Board, resend};
use super::control::{Channel, Message};
use super::error::DaemonError;
use super::fds::{self, CLONE, CONTROL, FUSE, STATE};
use super::{DaemonConfig, app_state, raise_descriptor_limit};
use crate::fs::{LxcFs, SnapshotLedger};
use crate::fuse::{
    Clones, Negotiated, Observer, RESENT, RingMemory, Session, SessionConfig, SessionState, Start,
    state::STATE_VERSION,
};
use crate::view::View;

/// The exit code of a worker whose connection ended (the filesystem was unmounted): the
/// supervisor stops too.
pub(super) const EXIT_ENDED: i32 = 3;

/// The journal and the handshake, kept on the board.
struct Journal {
    board: &'static Board,
    generation: u32,
    app: serde_json::Value,
    /// The serving thread (plus one) serving a suspect, 0 when none is. Requests that were in
    /// flight at the last crash come back together; served side by side, an innocent one
    /// slower than the poison pill would be in flight at the next crash too and be answered
    /// EIO with it. One at a time, only the pill is in flight when it crashes the worker again.
    suspect_owner: AtomicUsize,
}

impl Journal {
    fn keep_state(&self, init: Option<Negotiated>) {
        let state = SessionState {
            version: STATE_VERSION,
            init,
            generation: self.generation,
            app: self.app.clone(),
        };
        if let Err(e) = self.board.write_state(&state.to_bytes()) {
            error!("cannot keep the session state for the next worker: {e}");
        }
    }
}

/// The board's snapshot ledger, which outlives this worker.
struct Ledger(&'static Board);

impl SnapshotLedger for Ledger {
    fn note(&self, fh: u64, len: usize) {
        self.0.note_snapshot(fh, len);
    }
    fn noted(&self, fh: u64) -> Option<usize> {
        self.0.noted_snapshot(fh)
    }
}

impl Observer for Journal {
    fn initialised(&self, negotiated: &Negotiated) {
        self.keep_state(Some(*negotiated));
    }
    fn taken(&self, thread: usize, unique: u64) {
        if unique & RESENT != 0 && self.board.was_in_flight_at_last_crash(unique & !RESENT) {
            // Not in the journal until it is the one suspect served: a crash meanwhile
            // cannot count it.
            while self
                .suspect_owner
                .compare_exchange(0, thread + 1, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
        if let Some(slot) = self.board.slots().in_flight.get(thread) {
            slot.store(unique, Ordering::Relaxed);
        }
    }
    fn answered(&self, thread: usize) {
        let slots = self.board.slots();
        if let Some(slot) = slots.in_flight.get(thread) {
            slot.store(0, Ordering::Relaxed);
        }
        slots.replies.fetch_add(1, Ordering::Relaxed);
        let _ = self.suspect_owner.compare_exchange(
            thread + 1,
            0,
            Ordering::Release,
            Ordering::Relaxed,
        );
    }
    fn poisoned(&self, base: u64) -> bool {
        self.board.is_poisoned(base)
    }
    fn ended(&self) {
        info!("the filesystem was unmounted; the worker exits");
        std::process::exit(EXIT_ENDED);
    }
}

/// Whether the kernel will resend what a dead worker held: asked by writing the
/// notification itself, which on a kernel that has it also requeues any request a dead
/// predecessor held (none before the first worker), and which older kernels refuse with
/// EINVAL without harm.
fn resend_held_requests(cfg: &DaemonConfig, fd: std::os::fd::BorrowedFd<'_>) -> bool {
    if cfg.no_resend {
        info!("--no-resend: a request in flight when this worker dies fails instead of waiting");
        return false;
    }
    match crate::fuse::resend(fd) {
        Ok(()) => {
            debug!("asked the kernel to resend requests a previous worker held");
            true
        }
        Err(e) if e.raw_os_error() == Some(Errno::EINVAL as i32) => {
            warn!(
                "this kernel cannot resend FUSE requests (Linux 6.9 and later can): if this \
                 worker dies, the reads it is serving fail"
            );
            false
        }
        Err(e) => {
            warn!("FUSE_NOTIFY_RESEND failed ({e}); serving as on a kernel without it");
            false
        }
    }
}

/// Serves as a worker until parked, until the connection ends, or until the supervisor is
/// gone.
pub(super) fn run(cfg: &DaemonConfig) -> Result<(), DaemonError> {
    let worker_err = |what: String| DaemonError::Worker(what);
    let mut inherited = fds::from_our_exec()
        .map_err(|e| worker_err(e.to_string()))?
        .ok_or_else(|| {
            worker_err(format!(
                "no inherited descriptors ({} unset): --worker is started by lxcfs-rs itself",
                fds::ENV
            ))
        })?;
    let mut fuse = inherited.take(FUSE);
    fuse.extend(inherited.take(CLONE));
    let (Some(state_fd), Some(control_fd)) =
        (inherited.take_one(STATE), inherited.take_one(CONTROL))
    else {
        return Err(worker_err(
            "the board or the control channel is missing".into(),
        ));
    };
    if fuse.is_empty() {
        return Err(worker_err("no /dev/fuse descriptor was passed".into()));
    }
    // A panic anywhere must not leave a request half served on a thread that is gone: the
    // process dies, and the next worker gets the request again.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        std::process::abort();
    }));
    let board: &'static Board = Box::leak(Box::new(
        Board::open(state_fd).map_err(|e| worker_err(format!("the board: {e}")))?,
    ));
    let control = Channel::from_fd(control_fd);
    let slots = board.slots();
    crate::stats::share(&slots.counters, &slots.kept);
    raise_descriptor_limit();

    if crate::failpoint::worker_fails_to_start() {
        return Err(worker_err("failpoint worker:exit".into()));
    }
    let view = Arc::new(View::new(cfg.host.clone(), cfg.view)?);
    view.set_virtualized(slots.virtualized.load(Ordering::Relaxed) != 0);
    let generation = (slots.generation.load(Ordering::Relaxed) + 1) & 0xff_ffff;
    slots.generation.store(generation, Ordering::Relaxed);
    let kept = match board.read_state() {
        Ok(Some(blob)) => Some(
            SessionState::from_bytes(&blob)
                .map_err(|e| worker_err(format!("the session state on the board: {e}")))?,
        ),
        Ok(None) => None,
        Err(e) => return Err(worker_err(format!("reading the session state: {e}"))),
    };
    let journal = Arc::new(Journal {
        board,
        generation,
        app: app_state(cfg),
        suspect_owner: AtomicUsize::new(0),
    });
    let start = match &kept {
        // A connection that was initialised: no INIT comes again.
        Some(state) if state.init.is_some() => {
            journal.keep_state(state.init);
            Start::Adopt(SessionState {
                generation,
                app: journal.app.clone(),
                ..state.clone()
            })
        }
        // A fresh mount (or one whose INIT was never answered: it is resent below).
        _ => Start::Fresh {
            generation,
            app: journal.app.clone(),
        },
    };
    let resends = resend_held_requests(cfg, fuse[0].as_fd());
    slots.resend.store(
        if resends { resend::YES } else { resend::NO },
        Ordering::Relaxed,
    );
    let fs = Arc::new(LxcFs::new(view.clone(), generation)?.with_ledger(Arc::new(Ledger(board))));
    crate::kfile::kept::start_sweeper();
    let config = SessionConfig {
        threads: cfg.threads,
        clones: if resends { Clones::Given } else { Clones::Own },
        io_uring: cfg.io_uring,
        kick: Some(crate::mounts::absolute(&cfg.mountpoint)),
        ring_memory: match board.fd().try_clone_to_owned() {
            Ok(fd) => Some(RingMemory {
                fd: Arc::new(fd),
                offset: super::board::RING_AT,
            }),
            Err(e) => {
                warn!("cannot share the io_uring entries' buffers through the board: {e}");
                None
            }
        },
    };
    let session =
        Session::start(fs, fuse, start, config, journal).map_err(|source| DaemonError::Adopt {
            path: cfg.mountpoint.clone(),
            source,
        })?;
    slots
        .worker_pid
        .store(std::process::id(), Ordering::Relaxed);
    control
        .send(Message::Ready)
        .map_err(|e| worker_err(format!("telling the supervisor: {e}")))?;
    debug!("worker serving under generation {generation}");
    loop {
        match control.recv() {
            Ok(Some(Message::Park)) => {
                let parked = session.park();
                if let Err(e) = board.write_state(&parked.state.to_bytes()) {
                    error!("cannot leave the session state on the board: {e}");
                }
                board.clear_in_flight();
                slots.worker_pid.store(0, Ordering::Relaxed);
                let _ = control.send(Message::Parked);
                return Ok(());
            }
            Ok(Some(Message::Virtualize(on))) => view.set_virtualized(on),
            Ok(Some(other)) => warn!("worker: unexpected {other:?} from the supervisor"),
            // The supervisor is gone (it sets our parent-death signal, so this is brief).
            Ok(None) | Err(_) => std::process::exit(1),
        }
    }
}
