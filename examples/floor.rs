//! The benchmark's floor: the smallest FUSE filesystem lxcfs-rs's own session layer
//! ([`lxcfs_rs::fuse`]) can serve, so that `scripts/bench` shows, in the same run as the
//! kernel, the C lxcfs and lxcfs-rs, how fast a read through this transport can be at all.
//! What lxcfs-rs takes beyond the floor is its own work (node tables, handles, rendering the
//! cgroup's view); what the floor takes beyond the kernel is FUSE's.
//!
//! `floor [--threads N] [--io-uring] MOUNTPOINT` mounts `fuse.lxcfs-floor` read-only at MOUNTPOINT and
//! serves the files the benchmark reads by default (`proc/meminfo`, `proc/cpuinfo`,
//! `proc/stat`, `proc/uptime`, `sys/devices/system/cpu/online`) and their directories.
//! Every file holds the same fixed [`SIZE`] bytes, made once, so a read does no host I/O
//! and no allocation beyond the session layer's. Everything else is as lxcfs-rs serves:
//! the mount flags, the thread count, cloned `/dev/fuse` descriptors, direct-I/O opens and
//! the TTLs (1 s for names and attributes, as lxcfs-rs gives every node that is the same for
//! all readers). It unmounts on SIGTERM, SIGINT or SIGHUP.

use std::error::Error;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use clap::Parser;
use log::{info, warn};
use lxcfs_rs::fuse::reply::DirBuf;
use lxcfs_rs::fuse::{
    Attr, Clones, Ctx, Entry, FileKind, Filesystem, OnEnd, Opened, ReadData, Session,
    SessionConfig, Start,
};
use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, umount2};
use nix::sys::signal::{SigSet, Signal, kill};
use nix::unistd::getpid;

/// The size of every file: about what lxcfs-rs renders for a container's `/proc/meminfo`.
/// The benchmark checks a floor target by it (`-T floor=ROOT,pid=PID,fixed=1400`).
const SIZE: usize = 1400;

/// How long the kernel may keep a name and its attributes: lxcfs-rs's `STABLE_TTL` for the
/// nodes every reader sees alike (all of these).
const STABLE_TTL: Duration = Duration::from_secs(1);

/// One node of the tree; its node id is its index in [`TREE`] plus 1 (FUSE's root is 1).
struct Node {
    /// The parent's node id (0 for the root).
    parent: u64,
    name: &'static str,
    kind: FileKind,
}

const fn node(parent: u64, name: &'static str, kind: FileKind) -> Node {
    Node { parent, name, kind }
}

/// The whole tree: the benchmark's default files and their directories.
const TREE: &[Node] = &[
    node(0, "", FileKind::Dir),         // 1
    node(1, "proc", FileKind::Dir),     // 2
    node(2, "meminfo", FileKind::File), // 3
    node(2, "cpuinfo", FileKind::File), // 4
    node(2, "stat", FileKind::File),    // 5
    node(2, "uptime", FileKind::File),  // 6
    node(1, "sys", FileKind::Dir),      // 7
    node(7, "devices", FileKind::Dir),  // 8
    node(8, "system", FileKind::Dir),   // 9
    node(9, "cpu", FileKind::Dir),      // 10
    node(10, "online", FileKind::File), // 11
];

/// The floor filesystem: [`TREE`], every file holding `content`.
struct Floor {
    content: Arc<[u8]>,
    started: SystemTime,
}

impl Floor {
    fn new() -> Self {
        let line = b"lxcfs-rs floor: the same fixed bytes in every file, for every reader\n";
        let mut content: Vec<u8> = line.iter().copied().cycle().take(SIZE).collect();
        content[SIZE - 1] = b'\n';
        Floor {
            content: content.into(),
            started: SystemTime::now(),
        }
    }

    fn node(ino: u64) -> Result<&'static Node, Errno> {
        let i = usize::try_from(ino.wrapping_sub(1)).map_err(|_| Errno::ENOENT)?;
        TREE.get(i).ok_or(Errno::ENOENT)
    }

    fn attr(&self, ino: u64) -> Result<(Attr, Duration), Errno> {
        let node = Self::node(ino)?;
        let (perm, nlink, size) = match node.kind {
            FileKind::File => (0o444, 1, SIZE as u64),
            _ => (0o555, 2, 0),
        };
        let attr = Attr {
            ino,
            kind: node.kind,
            perm,
            nlink,
            size,
            time: self.started,
        };
        Ok((attr, STABLE_TTL))
    }
}

/// The node ids and nodes of `parent`'s children.
fn children(parent: u64) -> impl Iterator<Item = (u64, &'static Node)> {
    (1u64..)
        .zip(TREE)
        .filter(move |(_, n)| n.parent == parent && !n.name.is_empty())
}

impl Filesystem for Floor {
    fn lookup(&self, _: Ctx, parent: u64, name: &[u8]) -> Result<Entry, Errno> {
        let (ino, _) = children(parent)
            .find(|(_, n)| n.name.as_bytes() == name)
            .ok_or(Errno::ENOENT)?;
        let (attr, attr_ttl) = self.attr(ino)?;
        Ok(Entry {
            attr,
            entry_ttl: STABLE_TTL,
            attr_ttl,
        })
    }

    fn getattr(&self, _: Ctx, ino: u64) -> Result<(Attr, Duration), Errno> {
        self.attr(ino)
    }

    fn readlink(&self, _: Ctx, _: u64) -> Result<Vec<u8>, Errno> {
        Err(Errno::EINVAL)
    }

    fn open(&self, _: Ctx, ino: u64, flags: u32) -> Result<Opened, Errno> {
        if flags as i32 & nix::libc::O_ACCMODE != nix::libc::O_RDONLY {
            return Err(Errno::EACCES);
        }
        match Self::node(ino)?.kind {
            // No handle to keep: every open reads the same bytes.
            FileKind::File => Ok(Opened {
                fh: 0,
                direct_io: true,
            }),
            FileKind::Dir => Err(Errno::EISDIR),
            FileKind::Symlink => Err(Errno::EINVAL),
        }
    }

    fn read(
        &self,
        _: Ctx,
        _: u64,
        _: u64,
        offset: u64,
        size: u32,
        _: Option<u64>,
    ) -> Result<ReadData, Errno> {
        Ok(ReadData::slice(self.content.clone(), offset, size))
    }

    fn release(&self, _: u64, _: u64) {}

    fn opendir(&self, _: Ctx, ino: u64) -> Result<u64, Errno> {
        match Self::node(ino)?.kind {
            FileKind::Dir => Ok(0),
            _ => Err(Errno::ENOTDIR),
        }
    }

    fn readdir(
        &self,
        _: Ctx,
        ino: u64,
        _: u64,
        offset: u64,
        out: &mut DirBuf<'_>,
    ) -> Result<(), Errno> {
        let parent = Self::node(ino)?.parent.max(1);
        let dots = [(ino, ".", FileKind::Dir), (parent, "..", FileKind::Dir)];
        let entries = dots
            .into_iter()
            .chain(children(ino).map(|(i, n)| (i, n.name, n.kind)));
        for (i, (child, name, kind)) in entries.enumerate().skip(offset as usize) {
            if !out.add(child, i as u64 + 1, kind, name.as_bytes()) {
                break;
            }
        }
        Ok(())
    }

    fn releasedir(&self, _: u64, _: u64) {}
}

/// `floor [--threads N] [--io-uring] MOUNTPOINT`.
#[derive(Parser)]
#[command(
    about = "A FUSE filesystem of fixed 1400-byte files on lxcfs-rs's session layer: \
                   the floor scripts/bench measures lxcfs-rs against"
)]
struct Args {
    /// Where to mount (an existing directory).
    mountpoint: PathBuf,
    /// Threads serving FUSE requests [default: as lxcfs-rs, the number of CPUs, at least 4,
    /// at most 16].
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=256))]
    threads: Option<u16>,
    /// Serve over FUSE-over-io_uring when the kernel offers it, as lxcfs-rs --io-uring.
    #[arg(long)]
    io_uring: bool,
}

impl Args {
    /// lxcfs-rs's rule, so both serve with as many threads.
    fn threads(&self) -> usize {
        self.threads
            .map_or_else(lxcfs_rs::cli::default_threads, usize::from)
    }
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    match run(&Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("floor: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Mounts, serves until a stop signal (or an unmount from outside), unmounts.
fn run(args: &Args) -> Result<(), Box<dyn Error>> {
    let mnt = &args.mountpoint;
    // Blocked before any thread exists, so only the main thread's sigwait sees them.
    let mut stop = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        stop.add(s);
    }
    stop.thread_block()?;
    // As lxcfs-rs mounts (src/daemon/mount.rs), under a name of its own.
    let flags = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    let fuse = lxcfs_rs::fuse::mount::mount(mnt, "lxcfs-floor", "fuse.lxcfs-floor", flags, &[])
        .map_err(|e| format!("mounting {}: {e}", mnt.display()))?;
    let threads = args.threads();
    let config = SessionConfig {
        threads,
        clones: Clones::Missing,
        io_uring: args.io_uring,
        kick: None,
        // One process, never restarted: its ring buffers need not outlive it.
        ring_memory: None,
    };
    let start = Start::Fresh {
        generation: 1,
        app: serde_json::Value::Null,
    };
    // An unmount from outside ends the session: wake the main thread.
    let wake = || {
        let _ = kill(getpid(), Signal::SIGTERM);
    };
    let observer = Arc::new(OnEnd(wake));
    let mut session = Session::start(Arc::new(Floor::new()), vec![fuse], start, config, observer)
        .inspect_err(|_| {
        let _ = umount2(mnt, MntFlags::MNT_DETACH);
    })?;
    info!("serving {} with {threads} threads", mnt.display());
    let signal = stop.wait()?;
    if !session.ended() {
        info!("{signal:?}: unmounting {}", mnt.display());
        if let Err(e) = umount2(mnt, MntFlags::empty()) {
            warn!("unmount failed ({e}); detaching instead");
            umount2(mnt, MntFlags::MNT_DETACH)?;
        }
    }
    if !session.wait(Duration::from_secs(3)) {
        warn!("FUSE session still busy after unmount; exiting anyway");
    }
    Ok(())
}
