//! Serving threads over `/dev/fuse` descriptors: started afresh (the kernel sends INIT) or
//! adopting a connection another process initialised, and parked at a request boundary to
//! hand the descriptors on.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::thread::JoinHandleExt;
use std::sync::Arc;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use log::{debug, error, info, warn};
use nix::errno::Errno;
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
use parking_lot::{Mutex, RwLock};
use serde::Serialize;

use super::dispatch::{Dispatcher, Outcome, Unsupported};
use super::filesystem::Filesystem;
use super::negotiate::Negotiated;
use super::observer::Observer;
use super::reply::DevFuse;
use super::state::{STATE_VERSION, SessionState};
use super::uring::{self, queue::Event, queue::Queue};

/// The signal that kicks a serving thread out of a blocking `read(2)` so it sees it must
/// park. SIGURG: ignored by default, never sent by the kernel to a process without sockets
/// in urgent mode, and used the same way by Go's runtime.
const KICK: Signal = Signal::SIGURG;

/// How a session begins.
#[derive(Debug, Clone)]
pub enum Start {
    /// A connection just mounted: the kernel's INIT comes first.
    Fresh {
        /// Generation of the file handles this session gives out.
        generation: u32,
        /// What the application needs a successor to know (it travels in the state blob).
        app: serde_json::Value,
    },
    /// A connection a session parked: no INIT comes (unless that session never answered it).
    /// The state's generation is the one served under: a successor process takes
    /// [`SessionState::next_generation`], a process resuming its own parked session keeps it.
    Adopt(SessionState),
}

/// Which `/dev/fuse` struct files the serving threads read from. A request a thread has
/// read sits on the processing queue of the struct file it was read from: if that file
/// outlives the process, the request waits for a successor's `FUSE_NOTIFY_RESEND`; if it
/// dies with the process, the request fails at once (ECONNABORTED).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clones {
    /// Thread `i` reads the given descriptor `i` (round robin when there are fewer), so
    /// requests in flight outlive this process when another holds the same descriptors.
    Given,
    /// Threads beyond the given descriptors read `FUSE_DEV_IOC_CLONE`s of the first, made
    /// here, so threads do not meet on one processing queue.
    Missing,
    /// Every thread reads a clone made here; the given descriptors are only held. For kernels
    /// that cannot resend: a request in flight when this process dies fails rather than
    /// waiting forever for an answer that cannot come.
    Own,
}

/// Settings of a session.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Serving threads.
    pub threads: usize,
    /// Which struct files they read from.
    pub clones: Clones,
    /// Ask the kernel for FUSE-over-io_uring and serve its queues when it agrees (see
    /// [`uring`](super::uring)).
    pub io_uring: bool,
    /// A path of this mount to open once from each CPU after its queue registered (see
    /// [`kick`]): the root, which costs no rendering.
    pub kick: Option<std::path::PathBuf>,
    /// Where the ring entries' buffers live so that the next worker of the mount finds
    /// them (see [`uring::arena`]); without it each ring has buffers of its own and what a
    /// dead worker left in its entries is never answered.
    pub ring_memory: Option<RingMemory>,
}

/// A shared file (and the offset in it) holding the ring entries' buffers of a mount.
#[derive(Debug, Clone)]
pub struct RingMemory {
    /// The file: one that outlives each worker, as the daemon's board does.
    pub fd: Arc<OwnedFd>,
    /// Where in it the arena starts.
    pub offset: u64,
}

/// How requests reach the serving threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Transport {
    /// `read(2)` and `writev(2)` on `/dev/fuse`.
    #[serde(rename = "/dev/fuse")]
    DevFuse,
    /// One io_uring queue per CPU (and `/dev/fuse` for FORGET and INTERRUPT).
    #[serde(rename = "io_uring")]
    IoUring,
}

struct Shared<F> {
    fs: Arc<F>,
    init: RwLock<Option<Negotiated>>,
    parking: AtomicBool,
    ended: AtomicBool,
    unsupported: Unsupported,
    observer: Arc<dyn Observer>,
    /// Whether INIT asks for io_uring.
    io_uring: bool,
    /// The path [`kick`] opens.
    kick: Option<std::path::PathBuf>,
    /// See [`SessionConfig::ring_memory`].
    ring_memory: Option<RingMemory>,
    /// Classic serving threads; ring threads are numbered after them for the observer.
    classic: usize,
    /// Ring threads, once INIT agreed on io_uring.
    rings: Mutex<Vec<JoinHandle<()>>>,
    rings_started: AtomicBool,
    /// Ring queues registered without an error so far.
    rings_registered: AtomicUsize,
    /// Ring queues expected.
    ring_queues: AtomicUsize,
}

/// A running session.
pub struct Session<F: Filesystem> {
    shared: Arc<Shared<F>>,
    fds: Vec<Arc<OwnedFd>>,
    workers: Vec<JoinHandle<()>>,
    generation: u32,
    app: serde_json::Value,
}

/// What [`Session::park`] hands back.
pub struct Parked {
    /// The descriptors the session was started with.
    pub fds: Vec<OwnedFd>,
    /// What a successor needs to serve them.
    pub state: SessionState,
}

extern "C" fn kicked(_: nix::libc::c_int) {}

/// Installs the no-op KICK handler, without SA_RESTART so that a blocked read returns EINTR.
fn install_kick_handler() -> io::Result<()> {
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| {
        let action = SigAction::new(
            SigHandler::Handler(kicked),
            SaFlags::empty(),
            SigSet::empty(),
        );
        // SAFETY: the handler does nothing, so it is async-signal-safe.
        if let Err(e) = unsafe { sigaction(KICK, &action) } {
            result = Err(io::Error::from(e));
        }
    });
    result
}

/// `ioctl(FUSE_DEV_IOC_CLONE)`: `_IOR(229, 0, uint32_t)`.
mod ioctl {
    nix::ioctl_read!(fuse_dev_ioc_clone, 229, 0, u32);
}

/// A new `/dev/fuse` struct file attached to the connection `fd` serves
/// (`FUSE_DEV_IOC_CLONE`): requests read from it wait on its own processing queue.
pub fn clone_device(fd: &OwnedFd) -> io::Result<OwnedFd> {
    let clone: OwnedFd = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(crate::host::own::DEV_FUSE)?
        .into();
    let mut source = fd.as_raw_fd() as u32;
    // SAFETY: the ioctl reads one u32 from a valid pointer.
    unsafe { ioctl::fuse_dev_ioc_clone(clone.as_raw_fd(), &mut source) }?;
    Ok(clone)
}

impl<F: Filesystem> Session<F> {
    /// Starts serving `fds` (descriptors of one connection; at least one) with `fs`.
    /// `observer` hears the handshake, each request taken and answered, and, once, the end of
    /// the connection (unmounted or aborted; not a [`park`](Self::park)).
    pub fn start(
        fs: Arc<F>,
        fds: Vec<OwnedFd>,
        start: Start,
        config: SessionConfig,
        observer: Arc<dyn Observer>,
    ) -> io::Result<Self> {
        if fds.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a FUSE session needs a /dev/fuse descriptor",
            ));
        }
        install_kick_handler()?;
        let (init, generation, app) = match start {
            Start::Fresh { generation, app } => (None, generation, app),
            Start::Adopt(state) => (state.init, state.generation, state.app),
        };
        let buffer = init.map_or_else(Negotiated::default_read_buffer_size, |n| {
            Negotiated::read_buffer_size(n.max_write)
        });
        let shared = Arc::new(Shared {
            fs,
            init: RwLock::new(init),
            parking: AtomicBool::new(false),
            ended: AtomicBool::new(false),
            unsupported: Unsupported::default(),
            observer,
            io_uring: config.io_uring,
            kick: config.kick.clone(),
            ring_memory: config.ring_memory.clone(),
            classic: config.threads.max(1),
            rings: Mutex::new(Vec::new()),
            rings_started: AtomicBool::new(false),
            rings_registered: AtomicUsize::new(0),
            ring_queues: AtomicUsize::new(0),
        });
        let fds: Vec<Arc<OwnedFd>> = fds.into_iter().map(Arc::new).collect();
        let threads = config.threads.max(1);
        let mut session = Session {
            shared,
            fds,
            workers: Vec::with_capacity(threads),
            generation,
            app,
        };
        // Every descriptor first, so that a failed clone leaves no thread serving.
        let mut thread_fds = Vec::with_capacity(threads);
        for i in 0..threads {
            let own = match config.clones {
                Clones::Given => false,
                Clones::Missing => i >= session.fds.len(),
                Clones::Own => true,
            };
            thread_fds.push(if own {
                Arc::new(clone_device(&session.fds[0])?)
            } else {
                session.fds[i % session.fds.len()].clone()
            });
        }
        // An adopted connection that already speaks io_uring sends its requests to the
        // queues: they need entries at once.
        if init.is_some_and(|n| n.uses_io_uring()) {
            start_rings(&session.shared, &session.fds[0]);
        }
        for (i, fd) in thread_fds.into_iter().enumerate() {
            let shared = session.shared.clone();
            let worker = std::thread::Builder::new()
                .name(format!("fuse-{i}"))
                .spawn(move || serve(&shared, i, &fd, buffer));
            match worker {
                Ok(w) => session.workers.push(w),
                Err(e) => {
                    // The threads already started must not serve on unowned.
                    session.park();
                    return Err(e);
                }
            }
        }
        Ok(session)
    }

    /// The filesystem served.
    pub fn filesystem(&self) -> Arc<F> {
        self.shared.fs.clone()
    }

    /// The generation of the file handles this session gives out.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// The INIT handshake, once known.
    pub fn negotiated(&self) -> Option<Negotiated> {
        *self.shared.init.read()
    }

    /// How requests reach the serving threads: io_uring once every queue registered its
    /// entries.
    pub fn transport(&self) -> Transport {
        transport(&self.shared)
    }

    /// Whether the connection has ended (unmounted or aborted).
    pub fn ended(&self) -> bool {
        self.shared.ended.load(Ordering::Acquire)
    }

    /// Stops reading at a request boundary, lets requests in flight finish, and hands back
    /// the descriptors with the state a successor needs. Readers meanwhile wait in the kernel.
    pub fn park(mut self) -> Parked {
        self.shared.parking.store(true, Ordering::Release);
        let started = Instant::now();
        // A kick can land just before a thread enters read(2) and be lost, so kick until
        // every thread is out.
        self.workers.append(&mut self.shared.rings.lock());
        while self.workers.iter().any(|w| !w.is_finished()) {
            for w in self.workers.iter().filter(|w| !w.is_finished()) {
                let _ = nix::sys::pthread::pthread_kill(w.as_pthread_t(), KICK);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        debug!("parked in {:?}", started.elapsed());
        let fds = std::mem::take(&mut self.fds)
            .into_iter()
            .filter_map(|fd| Arc::try_unwrap(fd).ok())
            .collect();
        Parked {
            fds,
            state: SessionState {
                version: STATE_VERSION,
                init: self.negotiated(),
                generation: self.generation,
                app: std::mem::take(&mut self.app),
            },
        }
    }

    /// Waits up to `timeout` for the serving threads to end (after an unmount); true if
    /// they did.
    pub fn wait(&mut self, timeout: Duration) -> bool {
        self.workers.append(&mut self.shared.rings.lock());
        let deadline = Instant::now() + timeout;
        while self.workers.iter().any(|w| !w.is_finished()) {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        true
    }
}

/// Writes `FUSE_NOTIFY_RESEND` to `fd`: a bare header, notify code 7 in `error`, unique 0.
/// The kernel requeues every request read but not yet answered on any descriptor of the
/// connection (a dead predecessor's), with bit 63 set in their `unique`; write it before
/// serving threads start, or requests they hold come again. A kernel before 6.9 answers
/// EINVAL and aborts nothing.
pub fn resend(fd: std::os::fd::BorrowedFd<'_>) -> io::Result<()> {
    let header = fuse_abi::linux::fuse_out_header {
        len: 16,
        error: fuse_abi::linux::fuse_notify_code::FUSE_NOTIFY_RESEND as i32,
        unique: 0,
    };
    let n = nix::unistd::write(fd, zerocopy::IntoBytes::as_bytes(&header))?;
    if n == 16 {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "short RESEND write",
        ))
    }
}

/// One serving thread: read a request, serve it, until parked or the connection ends.
fn serve<F: Filesystem>(shared: &Arc<Shared<F>>, thread: usize, fd: &Arc<OwnedFd>, buffer: usize) {
    let mut unblock = SigSet::empty();
    unblock.add(KICK);
    let _ = unblock.thread_unblock();
    // The only allocations of the thread's life: the request buffer and the reply scratch.
    let mut buf = vec![0u8; buffer];
    let mut scratch = Vec::with_capacity(4096);
    loop {
        if shared.parking.load(Ordering::Acquire) {
            return;
        }
        let n = match nix::unistd::read(fd, &mut buf) {
            Ok(n) => n,
            // EINTR: kicked (see the loop head); ENOENT: the request was interrupted before
            // we got it; EAGAIN: another thread took it.
            Err(Errno::EINTR | Errno::ENOENT | Errno::EAGAIN) => continue,
            Err(Errno::ENODEV) => {
                end(shared, "the filesystem was unmounted");
                return;
            }
            Err(e) => {
                error!("reading /dev/fuse failed: {e}");
                end(shared, "reading the connection failed");
                return;
            }
        };
        let mut dispatcher = dispatcher(shared, &mut scratch);
        if let Some(unique) = unique_of(&buf[..n]) {
            shared.observer.taken(thread, unique);
        }
        let served = dispatcher.serve(&buf[..n], &mut DevFuse(fd.as_fd()));
        shared.observer.answered(thread);
        // The INIT just answered agreed on io_uring: the kernel takes entries from now on.
        if shared.io_uring
            && !shared.rings_started.load(Ordering::Acquire)
            && shared.init.read().is_some_and(|n| n.uses_io_uring())
        {
            start_rings(shared, fd);
        }
        match served {
            Ok(Outcome::Served) => {}
            Ok(Outcome::Destroyed) => info!("the kernel sent DESTROY"),
            Err(e) if e.raw_os_error() == Some(Errno::ENODEV as i32) => {
                end(shared, "the filesystem was unmounted");
                return;
            }
            Err(e) => warn!("writing a FUSE reply failed: {e}"),
        }
    }
}

/// A dispatcher of the session's, with a serving thread's scratch buffer.
fn dispatcher<'a, F: Filesystem>(
    shared: &'a Shared<F>,
    scratch: &'a mut Vec<u8>,
) -> Dispatcher<'a, F> {
    Dispatcher {
        fs: &*shared.fs,
        init: &shared.init,
        unsupported: &shared.unsupported,
        observer: &*shared.observer,
        scratch,
        io_uring: shared.io_uring,
    }
}

/// Starts one ring thread per queue, once per session.
fn start_rings<F: Filesystem>(shared: &Arc<Shared<F>>, fd: &Arc<OwnedFd>) {
    if shared.rings_started.swap(true, Ordering::AcqRel) {
        return;
    }
    let Some(init) = *shared.init.read() else {
        return;
    };
    let queues = match uring::queue_count() {
        Ok(n) => n,
        Err(e) => {
            error!("io_uring: cannot count the possible CPUs ({e}); serving on /dev/fuse");
            return;
        }
    };
    shared.ring_queues.store(queues, Ordering::Release);
    let payload = uring::payload_size(init.max_write, init.max_pages);
    let arena = shared.ring_memory.as_ref().and_then(|m| {
        uring::arena::Arena::open(m.fd.as_fd(), m.offset, queues, payload)
            .map(Arc::new)
            .inspect_err(|e| {
                warn!(
                    "io_uring: cannot map the shared ring buffers ({e}); what this worker \
                     leaves in its ring entries if it dies is never answered"
                )
            })
            .ok()
    });
    let mut rings = shared.rings.lock();
    for qid in 0..queues {
        let shared = shared.clone();
        let fd = fd.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("fuse-ring-{qid}"))
            .spawn({
                let arena = arena.clone();
                move || serve_ring(&shared, qid as u16, &fd, payload, arena.as_ref())
            });
        match spawned {
            Ok(t) => rings.push(t),
            Err(e) => error!("io_uring: cannot start the thread of queue {qid}: {e}"),
        }
    }
    debug!("serving over io_uring: {queues} queues");
}

/// How long a kick's child waits for its answer before it gives up (a queue whose worker
/// died with it queued; the next worker's kick or readers bring it in long before).
const KICK_PATIENCE_SECS: u32 = 60;

/// Opens `path` once from a process on CPU `qid`. The kernel gives a newly registered entry
/// only requests that come after it: those it queued while the queue had no entry (a
/// predecessor's threads gone, before this one registered) wait for the next commit on
/// that queue. This open is a request on that queue; its commit fetches the next waiting
/// one, and so on. Without it a lone reader waits until someone else reads on its CPU.
///
/// A child process opens it, not a thread of ours: a thread waiting for its own mount's
/// answer cannot be killed, so if this worker died before answering, that thread would keep
/// the whole worker from ever exiting. The child waits instead, holding nothing of ours,
/// until a successor answers it.
fn kick(path: &std::path::Path, qid: u16) {
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return;
    };
    let spawned = std::thread::Builder::new()
        .name(format!("fuse-kick-{qid}"))
        .spawn(move || {
            let qid_cpu = usize::from(qid);
            // SAFETY: an all-zero cpu_set_t is the empty set.
            let mut cpus: nix::libc::cpu_set_t = unsafe { std::mem::zeroed() };
            if qid_cpu >= 8 * std::mem::size_of::<nix::libc::cpu_set_t>() {
                return;
            }
            // SAFETY: `qid_cpu` is within the set, checked above.
            unsafe { nix::libc::CPU_SET(qid_cpu, &mut cpus) };
            // SAFETY: between fork and _exit the child makes only async-signal-safe calls
            // (sched_setaffinity, close_range, alarm, open, _exit) on memory prepared before.
            match unsafe { nix::unistd::fork() } {
                Ok(nix::unistd::ForkResult::Child) => unsafe {
                    use nix::libc;
                    let code = if libc::sched_setaffinity(
                        0,
                        std::mem::size_of::<libc::cpu_set_t>(),
                        (&raw const cpus).cast(),
                    ) != 0
                    {
                        1
                    } else {
                        libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
                        // Never left behind for good: a request still queued when the
                        // alarm fires is withdrawn and the child dies.
                        libc::alarm(KICK_PATIENCE_SECS);
                        let fd = libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
                        if fd < 0 { 2 } else { 0 }
                    };
                    libc::_exit(code)
                },
                Ok(nix::unistd::ForkResult::Parent { child }) => {
                    match nix::sys::wait::waitpid(child, None) {
                        Ok(nix::sys::wait::WaitStatus::Exited(_, 0)) => {}
                        other => debug!(
                            "io_uring queue {qid}: kick open of {} ended {other:?}",
                            path.to_string_lossy()
                        ),
                    }
                }
                Err(e) => warn!("io_uring queue {qid}: cannot start its kick: {e}"),
            }
        });
    if let Err(e) = spawned {
        warn!("io_uring queue {qid}: cannot start its kick: {e}");
    }
}

/// The transport in use: io_uring once every queue registered.
fn transport<F>(shared: &Shared<F>) -> Transport {
    let queues = shared.ring_queues.load(Ordering::Acquire);
    if queues > 0 && shared.rings_registered.load(Ordering::Acquire) == queues {
        Transport::IoUring
    } else {
        Transport::DevFuse
    }
}

/// One ring thread: on its queue's CPU, serve what the kernel puts into its entries and
/// commit each reply, until parked or the connection ends.
fn serve_ring<F: Filesystem>(
    shared: &Shared<F>,
    qid: u16,
    fd: &OwnedFd,
    payload: usize,
    arena: Option<&Arc<uring::arena::Arena>>,
) {
    let mut unblock = SigSet::empty();
    unblock.add(KICK);
    let _ = unblock.thread_unblock();
    // The kernel queues a request on the reader's CPU; serving it there saves a wake-up on
    // another CPU. A CPU that is offline now cannot be pinned to: serve from anywhere.
    let mut cpus = nix::sched::CpuSet::new();
    if cpus.set(usize::from(qid)).is_ok()
        && let Err(e) = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &cpus)
    {
        debug!("io_uring queue {qid}: not pinned to CPU {qid}: {e}");
    }
    let mut queue = match Queue::register(fd.as_fd(), qid, payload, arena) {
        Ok(q) => q,
        Err(e) => {
            error!("io_uring queue {qid}: cannot register its entries: {e}");
            return;
        }
    };
    shared.rings_registered.fetch_add(1, Ordering::AcqRel);
    if let Some(path) = &shared.kick {
        kick(path, qid);
    }
    let thread = shared.classic + usize::from(qid);
    let mut scratch = Vec::with_capacity(4096);
    let mut stop: Option<Errno> = None;
    let mut refused = false;
    while stop.is_none() && !shared.parking.load(Ordering::Acquire) {
        let turned = queue.turn(|queue, event| match event {
            // The kernel refuses ring commands while `enable_uring` is off, even on a
            // connection that began with it on. The reply is still in the entry: offer it
            // again until the parameter is back (the reader waits meanwhile).
            Event::Failed {
                index,
                errno: Errno::EOPNOTSUPP,
            } => {
                if !refused {
                    error!(
                        "io_uring queue {qid}: the kernel refuses the ring ({}: off?); readers \
                         on CPU {qid} wait until it is back on",
                        crate::host::own::FUSE_ENABLE_URING
                    );
                    refused = true;
                }
                std::thread::sleep(Duration::from_millis(200));
                if let Err(e) = queue.retry(index) {
                    error!("io_uring queue {qid}: {e}");
                }
            }
            Event::Failed { errno, .. } => stop = Some(errno),
            Event::Request { index, bytes } => {
                if std::mem::take(&mut refused) {
                    info!("io_uring queue {qid}: the kernel takes the ring again");
                }
                let unique = unique_of(bytes).unwrap_or(0);
                shared.observer.taken(thread, unique);
                let mut sink = queue.sink(index);
                let served = dispatcher(shared, &mut scratch).serve(bytes, &mut sink);
                // An entry is re-armed only by a commit, so every request gets an answer.
                if !sink.written() {
                    let _ = super::reply::error(&mut sink, unique, Errno::EIO);
                }
                shared.observer.answered(thread);
                match served {
                    Ok(Outcome::Destroyed) => info!("the kernel sent DESTROY"),
                    Ok(Outcome::Served) => {}
                    Err(e) => warn!("writing a FUSE reply into io_uring queue {qid} failed: {e}"),
                }
                if let Err(e) = queue.commit(index, unique) {
                    error!("io_uring queue {qid}: {e}");
                }
            }
        });
        if let Err(e) = turned {
            error!("io_uring queue {qid}: {e}");
            stop = Some(Errno::from_raw(e.raw_os_error().unwrap_or(nix::libc::EIO)));
        }
    }
    match stop {
        // The connection was unmounted or aborted: the kernel ends every queue's commands.
        Some(Errno::ENOTCONN | Errno::ECONNABORTED | Errno::ENODEV) => {
            end(shared, "the filesystem was unmounted")
        }
        Some(errno) => {
            shared.rings_registered.fetch_sub(1, Ordering::AcqRel);
            error!("io_uring queue {qid} stopped: {errno}; its requests wait for /dev/fuse");
        }
        None => {}
    }
    let _ = queue.flush();
}

/// The `unique` of the request in `buf`, when it holds a whole header.
fn unique_of(buf: &[u8]) -> Option<u64> {
    use zerocopy::FromBytes;
    fuse_abi::linux::fuse_in_header::read_from_prefix(buf)
        .ok()
        .map(|(h, _)| h.unique)
}

/// Marks the connection ended, telling the owner once.
fn end<F>(shared: &Shared<F>, why: &str) {
    if !shared.ended.swap(true, Ordering::AcqRel) {
        debug!("FUSE session ends: {why}");
        shared.observer.ended();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resend_is_a_bare_header_with_notify_code_7() {
        let (read, write) = nix::unistd::pipe().unwrap();
        resend(write.as_fd()).unwrap();
        let mut got = [0u8; 32];
        let n = nix::unistd::read(&read, &mut got).unwrap();
        assert_eq!(
            &got[..n],
            [16, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            "len 16, notify code 7 in `error`, unique 0"
        );
    }
}
