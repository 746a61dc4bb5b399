//! What a filesystem served by a [`Session`](super::Session) implements: one method per
//! request it answers, in plain types. The session does the protocol: decoding, INIT,
//! replies, and the requests answered the same for every filesystem (STATFS, FLUSH, xattrs,
//! ACCESS, IOCTL, FORGET, INTERRUPT).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use nix::errno::Errno;

use super::reply::DirBuf;

/// Who sent a request, and which one it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ctx {
    /// The request's id (logs only; the session echoes it in the reply).
    pub unique: u64,
    /// The caller's thread id in the daemon's pid namespace; 0 when the kernel could not map
    /// it.
    pub pid: u32,
}

/// The type of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A directory.
    Dir,
    /// A regular file.
    File,
    /// A symbolic link.
    Symlink,
}

impl FileKind {
    /// The `S_IFMT` bits of `st_mode`.
    pub fn mode_bits(self) -> u32 {
        match self {
            FileKind::Dir => nix::libc::S_IFDIR,
            FileKind::File => nix::libc::S_IFREG,
            FileKind::Symlink => nix::libc::S_IFLNK,
        }
    }

    /// The `d_type` of a directory entry.
    pub fn dirent_type(self) -> u32 {
        u32::from(match self {
            FileKind::Dir => nix::libc::DT_DIR,
            FileKind::File => nix::libc::DT_REG,
            FileKind::Symlink => nix::libc::DT_LNK,
        })
    }
}

/// A node's attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr {
    /// Node id, which is also `st_ino`.
    pub ino: u64,
    /// Type.
    pub kind: FileKind,
    /// Permission bits.
    pub perm: u32,
    /// Link count.
    pub nlink: u32,
    /// Size in bytes.
    pub size: u64,
    /// atime, mtime and ctime.
    pub time: SystemTime,
}

/// A LOOKUP's answer: the node and how long the kernel may keep the name and attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The node found.
    pub attr: Attr,
    /// How long the name may be cached.
    pub entry_ttl: Duration,
    /// How long the attributes may be cached.
    pub attr_ttl: Duration,
}

/// What OPEN gives back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    /// The file handle later requests carry.
    pub fh: u64,
    /// Bypass the page cache: every `read(2)` comes to the filesystem with its caller.
    pub direct_io: bool,
}

/// Bytes a READ returns: a range of a shared snapshot, written out without a copy.
#[derive(Debug, Clone)]
pub struct ReadData {
    /// The whole snapshot.
    pub data: Arc<[u8]>,
    /// Where the reply starts in it.
    pub start: usize,
    /// Where the reply ends in it.
    pub end: usize,
}

impl ReadData {
    /// The bytes of `data` a read of `size` at `offset` returns.
    pub fn slice(data: Arc<[u8]>, offset: u64, size: u32) -> Self {
        let len = data.len() as u64;
        let start = offset.min(len) as usize;
        let end = offset.saturating_add(u64::from(size)).min(len) as usize;
        ReadData { data, start, end }
    }

    /// The reply's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }
}

/// A read-only filesystem. Every method answers one request; an `Err` is sent as that errno.
pub trait Filesystem: Send + Sync + 'static {
    /// The entry `name` in directory `parent`.
    fn lookup(&self, ctx: Ctx, parent: u64, name: &[u8]) -> Result<Entry, Errno>;
    /// The attributes of `ino`, and how long the kernel may keep them.
    fn getattr(&self, ctx: Ctx, ino: u64) -> Result<(Attr, Duration), Errno>;
    /// The target of symlink `ino`.
    fn readlink(&self, ctx: Ctx, ino: u64) -> Result<Vec<u8>, Errno>;
    /// Opens file `ino` with `open(2)` `flags`.
    fn open(&self, ctx: Ctx, ino: u64, flags: u32) -> Result<Opened, Errno>;
    /// Reads `size` bytes at `offset` from `fh`, an open of `ino`. `lock_owner` is `None`
    /// when the kernel reads to fill its page cache rather than for a `read(2)`.
    fn read(
        &self,
        ctx: Ctx,
        ino: u64,
        fh: u64,
        offset: u64,
        size: u32,
        lock_owner: Option<u64>,
    ) -> Result<ReadData, Errno>;
    /// Forgets `fh` (last close of a file).
    fn release(&self, ino: u64, fh: u64);
    /// Opens directory `ino`; returns the handle.
    fn opendir(&self, ctx: Ctx, ino: u64) -> Result<u64, Errno>;
    /// Fills `out` with the entries of `fh` (an open of directory `ino`) from index `offset`.
    fn readdir(
        &self,
        ctx: Ctx,
        ino: u64,
        fh: u64,
        offset: u64,
        out: &mut DirBuf<'_>,
    ) -> Result<(), Errno>;
    /// Forgets `fh` (last close of a directory).
    fn releasedir(&self, ino: u64, fh: u64);
}
