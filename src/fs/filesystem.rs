//! The FUSE requests answered over a [`Provider`]: node ids, attributes, opens, per-open
//! snapshots (bounded per reader group) and directory listings.

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use log::{debug, error};
use nix::errno::Errno;
use parking_lot::Mutex;

use super::budget::{Accounts, Limits};
use super::handles::{ENTRY_COST, Found, Handles, Kept};
use super::inodes::{Collision, InodeInfo, Inodes, ROOT_INO, child_path};
use super::ledger::SnapshotLedger;
use super::provider::{Caller, Group, Node, NodeKind, Provider, Rendered};
use super::snapshots;
use crate::fuse::reply::DirBuf;
use crate::fuse::{Attr, Ctx, Entry, FileKind, Filesystem, Opened, RESENT, ReadData};

/// How long the kernel may keep a name and its attributes when both are the same for every
/// reader. Short, so a tree change (CPU hotplug) shows quickly, but long enough that a loop
/// reopening the same file pays for neither a LOOKUP nor, at each `fstat` (`cat`, stdio,
/// Python twice, Go's `os.ReadFile`), a GETATTR round trip.
const STABLE_TTL: Duration = Duration::from_secs(1);
/// Per-reader names and attributes (a `cpuN` entry a cpuset hides) are not cached: their
/// truth depends on who asks, and the kernel's cache is shared by every reader.
const NO_TTL: Duration = Duration::ZERO;
/// Sizes are reported in whole pages.
const PAGE: u64 = 4096;
/// An unknown node id makes the tree be walked again (a CPU came online), at most this often.
const REWALK_EVERY: Duration = Duration::from_secs(1);

/// The lxcfs-rs filesystem over some [`Provider`].
pub struct LxcFs<P: Provider> {
    provider: Arc<P>,
    inodes: Inodes,
    handles: Handles,
    accounts: Accounts,
    started: SystemTime,
    last_walk: Mutex<Instant>,
    ledger: Option<Arc<dyn SnapshotLedger>>,
}

/// Who sent a request, as the provider is told.
fn caller(ctx: Ctx) -> Caller {
    Caller {
        pid: ctx.pid,
        request: ctx.unique,
    }
}

/// The file type the kernel is told for a node kind.
impl From<NodeKind> for FileKind {
    fn from(kind: NodeKind) -> Self {
        match kind {
            NodeKind::Dir => FileKind::Dir,
            NodeKind::File => FileKind::File,
            NodeKind::Symlink => FileKind::Symlink,
        }
    }
}

/// An empty read: the reader is at the end of its file.
fn end_of_file() -> ReadData {
    ReadData::slice(Arc::from(&[][..]), 0, 0)
}

/// The errno for an I/O error from the provider.
fn errno(e: &io::Error) -> Errno {
    e.raw_os_error().map_or(Errno::EIO, Errno::from_raw)
}

/// How long the kernel may cache a node's name and its attributes: the same time for both.
///
/// A file's attributes are the same for every reader too: fixed mode, owner and times, and a
/// size that is the largest content served so far (see `file_size`), not the asker's. A stale
/// size cuts no read: files are opened direct-I/O, whose `read(2)` goes to the daemon until it
/// answers short (fs/fuse/file.c `fuse_direct_read_iter`, which never looks at `i_size`).
fn ttl(node: Node) -> Duration {
    if node.same_for_all {
        STABLE_TTL
    } else {
        NO_TTL
    }
}

impl<P: Provider> LxcFs<P> {
    /// A filesystem serving what `provider` says, giving out file handles of `generation`.
    /// The whole tree (as the host sees it) is walked to register every node id, so that a
    /// collision is found now and ids pinned by bind mounts resolve without a LOOKUP.
    pub fn new(provider: Arc<P>, generation: u32) -> Result<Self, Collision> {
        let fs = LxcFs {
            provider,
            inodes: Inodes::default(),
            handles: Handles::new(generation),
            accounts: Accounts::new(Limits::DEFAULT),
            started: SystemTime::now(),
            last_walk: Mutex::new(Instant::now()),
            ledger: None,
        };
        fs.walk()?;
        Ok(fs)
    }

    /// Bounds what each reader group, and all of them, make the filesystem keep by `limits`
    /// rather than [`Limits::DEFAULT`].
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.accounts = Accounts::new(limits);
        self
    }

    /// Notes each snapshot's length in `ledger`, and reads it there for handles adopted from
    /// a predecessor (see [`SnapshotLedger`]).
    pub fn with_ledger(mut self, ledger: Arc<dyn SnapshotLedger>) -> Self {
        self.ledger = Some(ledger);
        self
    }

    /// Registers every path under the root, as the host sees the tree.
    fn walk(&self) -> Result<(), Collision> {
        let mut dirs = vec![String::new()];
        while let Some(dir) = dirs.pop() {
            let Ok(entries) = self.provider.list(&dir, Caller::HOST) else {
                continue;
            };
            for (name, kind) in entries {
                let path = child_path(&dir, &name);
                self.inodes.intern(&path)?;
                if kind == NodeKind::Dir {
                    dirs.push(path);
                }
            }
        }
        debug!("{} node ids registered", self.inodes.len());
        Ok(())
    }

    /// What the table knows of `ino`, walking the tree again (at most once a second) when
    /// it knows nothing: a CPU that came online after start-up.
    fn inode(&self, ino: u64) -> Option<Arc<InodeInfo>> {
        if let Some(info) = self.inodes.get(ino) {
            return Some(info);
        }
        {
            let mut last = self.last_walk.lock();
            if last.elapsed() < REWALK_EVERY {
                return None;
            }
            *last = Instant::now();
        }
        if let Err(e) = self.walk() {
            error!("{e}");
        }
        self.inodes.get(ino)
    }

    /// The size reported for a file: the larger of its host content (what pid 0 gets) and
    /// the largest content served from it so far, rounded up to a page. Rendering the file
    /// for each stat() would double the cost of most reads (glibc's stdio fstat()s before its
    /// first read); a size not below what readers get (a container's view is never larger
    /// than the host's but for a few bytes, which the page rounding covers) keeps tools that
    /// trust st_size (Node's readFileSync) from truncating; and a size above zero keeps the
    /// kernel's splice path from stopping at offset 0 before it asks us (see `read`).
    fn file_size(&self, info: &InodeInfo, caller: Caller) -> u64 {
        let mut served = info.served.load(Ordering::Relaxed);
        if served == 0 {
            let len = |who| {
                self.provider
                    .content(&info.path, who)
                    .map_or(0, |c| c.len() as u64)
            };
            let host = Caller { pid: 0, ..caller };
            let seed = len(host).max(len(caller));
            served = info.served.fetch_max(seed, Ordering::Relaxed).max(seed);
        }
        served.max(1).next_multiple_of(PAGE)
    }

    fn attr(&self, ino: u64, info: &InodeInfo, node: Node, caller: Caller) -> Attr {
        let (perm, nlink, size) = match node.kind {
            NodeKind::Dir => (0o555, 2, 0),
            NodeKind::Symlink => {
                let len = self
                    .provider
                    .readlink(&info.path)
                    .map_or(0, |t| t.len() as u64);
                (0o777, 1, len)
            }
            NodeKind::File => (0o444, 1, self.file_size(info, caller)),
        };
        Attr {
            ino,
            kind: node.kind.into(),
            perm,
            nlink,
            size,
            time: self.started,
        }
    }

    /// Resolves a node id to what the table knows of it and the node it is for this reader.
    fn resolve(&self, ino: u64, caller: Caller) -> Result<(Arc<InodeInfo>, Node), Errno> {
        let info = self.inode(ino).ok_or(Errno::ENOENT)?;
        let node = self
            .provider
            .node(&info.path, caller)
            .ok_or(Errno::ENOENT)?;
        Ok((info, node))
    }

    /// The entries of directory `info` for `caller`, `.` and `..` first, then sorted by
    /// name, so that a READDIR offset means the same entry to a successor daemon.
    fn listing(
        &self,
        ino: u64,
        info: &InodeInfo,
        caller: Caller,
    ) -> Result<Vec<(u64, NodeKind, String)>, Errno> {
        let path = &*info.path;
        let mut listed = self.provider.list(path, caller).map_err(|e| errno(&e))?;
        listed.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let parent = if ino == ROOT_INO {
            ROOT_INO
        } else {
            self.intern(path.rsplit_once('/').map_or("", |(dir, _)| dir))?
        };
        let mut entries = Vec::with_capacity(listed.len() + 2);
        entries.push((ino, NodeKind::Dir, ".".to_string()));
        entries.push((parent, NodeKind::Dir, "..".to_string()));
        for (name, kind) in listed {
            entries.push((self.intern(&child_path(path, &name))?, kind, name));
        }
        Ok(entries)
    }

    /// A read of `size` bytes at `offset` from handle `fh` of `info` made afresh for the
    /// reader, and kept for the reads after it as far as the reader's group may hold it.
    fn read_afresh(
        &self,
        ctx: Ctx,
        ino: u64,
        info: &InodeInfo,
        fh: u64,
        offset: u64,
        size: u32,
    ) -> Result<ReadData, Errno> {
        crate::failpoint::on_read(&info.path, ctx.unique & RESENT != 0);
        let Rendered { bytes, group } = self
            .provider
            .render(&info.path, caller(ctx))
            .map_err(|e| errno(&e))?;
        info.served.fetch_max(bytes.len() as u64, Ordering::Relaxed);
        if let Some(ledger) = &self.ledger {
            ledger.note(fh, bytes.len());
        }
        // What the handle kept before goes first: a reader rereading from 0 (`top`) needs no
        // room for two versions.
        self.handles.forget(fh);
        let reaches_end = offset.saturating_add(u64::from(size)) >= bytes.len() as u64;
        let data = self.keep(fh, ino, group, bytes, reaches_end);
        Ok(ReadData::slice(data, offset, size))
    }

    /// Keeps what handle `fh` of file `ino` was served: the bytes themselves while the reader
    /// has more to read, only their length once this read `reaches_end`. Nothing when `group`
    /// cannot pay for it: its reads past the start are then made afresh each time and sliced,
    /// which costs it consistency between its own reads (the kernel's seq_file answers a read
    /// after a seek that way) and costs the others nothing. Refusing its opens instead
    /// (ENOMEM, EMFILE) would break every program in it that reads a file, not only the one
    /// that hoards descriptors.
    fn keep(
        &self,
        fh: u64,
        ino: u64,
        group: Group,
        bytes: Vec<u8>,
        reaches_end: bool,
    ) -> Arc<[u8]> {
        let account = self.accounts.of(group);
        let Some(entry) = account.charge(ENTRY_COST) else {
            return Arc::from(bytes);
        };
        if reaches_end {
            self.handles.keep(fh, Kept::ended(bytes.len(), entry));
            return Arc::from(bytes);
        }
        match snapshots::keep(&account, ino, bytes) {
            Ok(snapshot) => {
                let data = snapshot.bytes.clone();
                self.handles.keep(fh, Kept::reading(snapshot, entry));
                data
            }
            Err(bytes) => Arc::from(bytes),
        }
    }

    fn intern(&self, path: &str) -> Result<u64, Errno> {
        self.inodes.intern(path).map_err(|e| {
            error!("{e}");
            Errno::EIO
        })
    }
}

impl<P: Provider> Filesystem for LxcFs<P> {
    fn lookup(&self, ctx: Ctx, parent: u64, name: &[u8]) -> Result<Entry, Errno> {
        let dir = self.inode(parent).ok_or(Errno::ENOENT)?;
        let name = std::str::from_utf8(name).map_err(|_| Errno::ENOENT)?;
        if name.is_empty() || name.contains('/') {
            return Err(Errno::ENOENT);
        }
        let path = child_path(&dir.path, name);
        let node = self
            .provider
            .node(&path, caller(ctx))
            .ok_or(Errno::ENOENT)?;
        let ino = self.intern(&path)?;
        let info = self.inodes.get(ino).ok_or(Errno::ENOENT)?;
        Ok(Entry {
            attr: self.attr(ino, &info, node, caller(ctx)),
            entry_ttl: ttl(node),
            attr_ttl: ttl(node),
        })
    }

    fn getattr(&self, ctx: Ctx, ino: u64) -> Result<(Attr, Duration), Errno> {
        let (info, node) = self.resolve(ino, caller(ctx))?;
        Ok((self.attr(ino, &info, node, caller(ctx)), ttl(node)))
    }

    fn readlink(&self, ctx: Ctx, ino: u64) -> Result<Vec<u8>, Errno> {
        match self.resolve(ino, caller(ctx))? {
            (info, node) if node.kind == NodeKind::Symlink => {
                self.provider.readlink(&info.path).map_err(|e| errno(&e))
            }
            _ => Err(Errno::EINVAL),
        }
    }

    fn open(&self, ctx: Ctx, ino: u64, flags: u32) -> Result<Opened, Errno> {
        if flags as i32 & nix::libc::O_ACCMODE != nix::libc::O_RDONLY {
            return Err(Errno::EACCES);
        }
        match self.resolve(ino, caller(ctx))? {
            // Nothing is kept until the first read.
            (_, node) if node.kind == NodeKind::File => Ok(Opened {
                fh: self.handles.number(),
                // Direct I/O: every read(2) comes to us with its reader, nothing is cached.
                direct_io: true,
            }),
            (_, node) if node.kind == NodeKind::Dir => Err(Errno::EISDIR),
            _ => Err(Errno::EINVAL),
        }
    }

    fn read(
        &self,
        ctx: Ctx,
        ino: u64,
        fh: u64,
        offset: u64,
        size: u32,
        lock_owner: Option<u64>,
    ) -> Result<ReadData, Errno> {
        // A read(2) on a direct-I/O file carries the caller's lock owner. A read without one
        // is the kernel filling the inode's page cache, which splice/sendfile readers
        // (busybox cat, Python's shutil) go through even on direct-I/O files. That cache is
        // shared by every reader of the inode, so whatever we put there would reach other
        // containers. Refusing it makes splice fail with EINVAL, the answer for a file
        // without splice support, and those readers fall back to read(2), which is right.
        if lock_owner.is_none() {
            debug!("refusing page-cache read of fh {fh} by pid {}", ctx.pid);
            return Err(Errno::EINVAL);
        }
        if offset != 0 {
            match self.handles.find(fh, offset, size) {
                Found::Snapshot(data) => return Ok(ReadData::slice(data, offset, size)),
                Found::Ended(len) if offset >= len as u64 => return Ok(end_of_file()),
                // Read to its end, then short of it without a rewind: made afresh, as the
                // kernel's seq_file does for a read after a seek.
                Found::Ended(_) => {}
                // Nothing kept: the first read of this open, a handle whose group could not
                // pay for a snapshot, or one opened by a predecessor, whose snapshot died with
                // it: where that ended, the ledger may know.
                Found::Nothing => {
                    let ended = self.ledger.as_ref().and_then(|l| l.noted(fh));
                    if ended.is_some_and(|len| offset >= len as u64) {
                        return Ok(end_of_file());
                    }
                }
            }
        }
        let info = self.inode(ino).ok_or(Errno::EBADF)?;
        self.read_afresh(ctx, ino, &info, fh, offset, size)
    }

    fn release(&self, _ino: u64, fh: u64) {
        self.handles.forget(fh);
    }

    fn opendir(&self, ctx: Ctx, ino: u64) -> Result<u64, Errno> {
        let (_, node) = self.resolve(ino, caller(ctx))?;
        if node.kind != NodeKind::Dir {
            return Err(Errno::ENOTDIR);
        }
        // Nothing is kept for a directory (100,000 open directories would otherwise hold
        // 100,000 listings): each READDIR lists it again, sorted, so that an offset means the
        // same entry to every call, and to a successor daemon.
        Ok(self.handles.number())
    }

    fn readdir(
        &self,
        ctx: Ctx,
        ino: u64,
        _fh: u64,
        offset: u64,
        out: &mut DirBuf<'_>,
    ) -> Result<(), Errno> {
        let info = self.inode(ino).ok_or(Errno::EBADF)?;
        let entries = self.listing(ino, &info, caller(ctx))?;
        for (i, (ino, kind, name)) in entries.iter().enumerate().skip(offset as usize) {
            if !out.add(*ino, (i + 1) as u64, (*kind).into(), name.as_bytes()) {
                break;
            }
        }
        Ok(())
    }

    fn releasedir(&self, _ino: u64, _fh: u64) {}
}

#[cfg(test)]
mod tests;
