//! Serving threads over `/dev/fuse` descriptors: started afresh (the kernel sends INIT) or
//! adopting a connection another process initialised, and parked at a request boundary to
//! hand the descriptors on.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::thread::JoinHandleExt;
use std::sync::Arc;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use log::{debug, error, info, warn};
use nix::errno::Errno;
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
use parking_lot::RwLock;

use super::dispatch::{Dispatcher, Outcome, Unsupported};
use super::filesystem::Filesystem;
use super::negotiate::Negotiated;
use super::observer::Observer;
use super::reply::DevFuse;
use super::state::{STATE_VERSION, SessionState};

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
#[derive(Debug, Clone, Copy)]
pub struct SessionConfig {
    /// Serving threads.
    pub threads: usize,
    /// Which struct files they read from.
    pub clones: Clones,
}

struct Shared<F> {
    fs: Arc<F>,
    init: RwLock<Option<Negotiated>>,
    parking: AtomicBool,
    ended: AtomicBool,
    unsupported: Unsupported,
    observer: Arc<dyn Observer>,
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
fn serve<F: Filesystem>(shared: &Shared<F>, thread: usize, fd: &OwnedFd, buffer: usize) {
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
        let mut dispatcher = Dispatcher {
            fs: &*shared.fs,
            init: &shared.init,
            unsupported: &shared.unsupported,
            observer: &*shared.observer,
            scratch: &mut scratch,
        };
        if let Some(unique) = unique_of(&buf[..n]) {
            shared.observer.taken(thread, unique);
        }
        let served = dispatcher.serve(&buf[..n], &mut DevFuse(fd.as_fd()));
        shared.observer.answered(thread);
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
