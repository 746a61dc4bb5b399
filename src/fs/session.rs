//! The FUSE request handlers.

use std::ffi::OsStr;
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use fuser::{
    AccessFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation,
    INodeNo, LockOwner, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry,
    ReplyOpen, ReplyXattr, Request,
};
use log::debug;
use parking_lot::Mutex;

use super::handles::{Handle, Handles, slice};
use super::inodes::{InodeInfo, Inodes, child_path};
use super::provider::{Caller, Node, NodeKind, Provider};

/// How long the kernel may keep a name, or a directory's attributes, that are the same for
/// every reader. Short, so a tree change (CPU hotplug) shows quickly, but long enough that a
/// loop reopening the same file does not pay for a lookup each time.
const STABLE_TTL: Duration = Duration::from_secs(1);
/// Per-reader names and file attributes are not cached: their truth depends on who asks.
const NO_TTL: Duration = Duration::ZERO;
/// Sizes are reported in whole pages.
const PAGE: u64 = 4096;

/// The lxcfs-rs filesystem over some [`Provider`].
pub struct LxcFs<P: Provider> {
    provider: Arc<P>,
    inodes: Inodes,
    handles: Handles,
    started: SystemTime,
}

/// Who sent `req`.
fn caller(req: &Request) -> Caller {
    Caller {
        pid: req.pid(),
        request: u64::from(req.unique()),
    }
}

/// The file type the kernel is told for a node kind.
impl From<NodeKind> for FileType {
    fn from(kind: NodeKind) -> Self {
        match kind {
            NodeKind::Dir => FileType::Directory,
            NodeKind::File => FileType::RegularFile,
            NodeKind::Symlink => FileType::Symlink,
        }
    }
}

/// The errno for an I/O error from the provider.
fn errno(e: &io::Error) -> Errno {
    e.raw_os_error().map(Errno::from_i32).unwrap_or(Errno::EIO)
}

/// How long the kernel may cache a node's name and its attributes.
fn ttls(node: Node) -> (Duration, Duration) {
    let entry = if node.same_for_all {
        STABLE_TTL
    } else {
        NO_TTL
    };
    let attr = if node.kind == NodeKind::Dir {
        entry
    } else {
        NO_TTL
    };
    (entry, attr)
}

impl<P: Provider> LxcFs<P> {
    /// A filesystem serving what `provider` says.
    pub fn new(provider: Arc<P>) -> Self {
        LxcFs {
            provider,
            inodes: Inodes::default(),
            handles: Handles::default(),
            started: SystemTime::now(),
        }
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

    fn attr(&self, ino: u64, info: &InodeInfo, node: Node, caller: Caller) -> FileAttr {
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
        let kind = FileType::from(node.kind);
        FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: self.started,
            mtime: self.started,
            ctime: self.started,
            crtime: self.started,
            kind,
            perm,
            nlink,
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }

    /// Resolves an inode to what the table knows of it and the node it is for this reader.
    fn resolve(&self, ino: u64, caller: Caller) -> Result<(Arc<InodeInfo>, Node), Errno> {
        let info = self.inodes.get(ino).ok_or(Errno::ENOENT)?;
        let node = self
            .provider
            .node(&info.path, caller)
            .ok_or(Errno::ENOENT)?;
        Ok((info, node))
    }
}

impl<P: Provider> Filesystem for LxcFs<P> {
    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let Some(dir) = self.inodes.path(parent.0) else {
            return reply.error(Errno::ENOENT);
        };
        let Some(name) = name.to_str() else {
            return reply.error(Errno::ENOENT);
        };
        let path = child_path(&dir, name);
        let Some(node) = self.provider.node(&path, caller(req)) else {
            return reply.error(Errno::ENOENT);
        };
        let ino = self.inodes.intern(&path);
        let Some(info) = self.inodes.get(ino) else {
            return reply.error(Errno::ENOENT);
        };
        let (entry_ttl, attr_ttl) = ttls(node);
        reply.entry_with_ttls(
            &attr_ttl,
            &entry_ttl,
            &self.attr(ino, &info, node, caller(req)),
            Generation(0),
        );
    }

    fn getattr(&self, req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.resolve(ino.0, caller(req)) {
            Ok((info, node)) => {
                reply.attr(&ttls(node).1, &self.attr(ino.0, &info, node, caller(req)))
            }
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.resolve(ino.0, caller(req)) {
            Ok((info, node)) if node.kind == NodeKind::Symlink => {
                match self.provider.readlink(&info.path) {
                    Ok(target) => reply.data(&target),
                    Err(e) => reply.error(errno(&e)),
                }
            }
            Ok(_) => reply.error(Errno::EINVAL),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if flags.0 & nix::libc::O_ACCMODE != nix::libc::O_RDONLY {
            return reply.error(Errno::EACCES);
        }
        match self.resolve(ino.0, caller(req)) {
            Ok((inode, node)) if node.kind == NodeKind::File => {
                let fh = self.handles.insert(Handle {
                    inode,
                    snapshot: Mutex::new(None),
                    entries: Vec::new(),
                });
                // Direct I/O: every read(2) comes to us with its reader, nothing is cached.
                reply.opened(FileHandle(fh), FopenFlags::FOPEN_DIRECT_IO);
            }
            Ok((_, node)) if node.kind == NodeKind::Dir => reply.error(Errno::EISDIR),
            Ok(_) => reply.error(Errno::EINVAL),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        // A read(2) on a direct-I/O file carries the caller's lock owner. A read without one
        // is the kernel filling the inode's page cache, which splice/sendfile readers
        // (busybox cat, Python's shutil) go through even on direct-I/O files. That cache is
        // shared by every reader of the inode, so whatever we put there would reach other
        // containers. Refusing it makes splice fail with EINVAL, the answer for a file
        // without splice support, and those readers fall back to read(2), which is right.
        if lock_owner.is_none() {
            debug!(
                "refusing page-cache read of fh {} by pid {}",
                fh.0,
                req.pid()
            );
            return reply.error(Errno::EINVAL);
        }
        let Some(handle) = self.handles.get(fh.0) else {
            return reply.error(Errno::EBADF);
        };
        let mut snapshot = handle.snapshot.lock();
        if offset == 0 || snapshot.is_none() {
            match self.provider.content(&handle.inode.path, caller(req)) {
                Ok(bytes) => {
                    handle
                        .inode
                        .served
                        .fetch_max(bytes.len() as u64, Ordering::Relaxed);
                    *snapshot = Some(Arc::from(bytes));
                }
                Err(e) => return reply.error(errno(&e)),
            }
        }
        let data = snapshot.clone().unwrap_or_else(|| Arc::from(Vec::new()));
        drop(snapshot);
        reply.data(slice(&data, offset, size));
    }

    // ENOSYS for flush, xattrs and access tells the kernel once that we have nothing to
    // say, and it stops asking (no FLUSH on every close). Answered here only to keep fuser
    // from logging a warning each time.
    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::ENOSYS);
    }

    fn getxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _size: u32,
        reply: ReplyXattr,
    ) {
        reply.error(Errno::ENOSYS);
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, _size: u32, reply: ReplyXattr) {
        reply.error(Errno::ENOSYS);
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        reply.error(Errno::ENOSYS);
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.handles.remove(fh.0);
        reply.ok();
    }

    fn opendir(&self, req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let (inode, node) = match self.resolve(ino.0, caller(req)) {
            Ok(found) => found,
            Err(e) => return reply.error(e),
        };
        if node.kind != NodeKind::Dir {
            return reply.error(Errno::ENOTDIR);
        }
        let path = &*inode.path;
        let listed = match self.provider.list(path, caller(req)) {
            Ok(listed) => listed,
            Err(e) => return reply.error(errno(&e)),
        };
        let parent = self
            .inodes
            .intern(path.rsplit_once('/').map_or("", |(dir, _)| dir));
        let mut entries = vec![
            (ino.0, NodeKind::Dir, ".".to_string()),
            (parent, NodeKind::Dir, "..".to_string()),
        ];
        for (name, kind) in listed {
            entries.push((self.inodes.intern(&child_path(path, &name)), kind, name));
        }
        let fh = self.handles.insert(Handle {
            inode: inode.clone(),
            snapshot: Mutex::new(None),
            entries,
        });
        reply.opened(FileHandle(fh), FopenFlags::empty());
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let Some(handle) = self.handles.get(fh.0) else {
            return reply.error(Errno::EBADF);
        };
        for (i, (ino, kind, name)) in handle.entries.iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(*ino), (i + 1) as u64, FileType::from(*kind), name) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.handles.remove(fh.0);
        reply.ok();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    /// The host (pid 0) sees 10,000 bytes, pid 7 (a small container) 100, pid 8 200.
    struct Sizes;

    impl Provider for Sizes {
        fn node(&self, _path: &str, _caller: Caller) -> Option<Node> {
            Some(Node {
                kind: NodeKind::File,
                same_for_all: true,
            })
        }
        fn list(&self, _path: &str, _caller: Caller) -> io::Result<Vec<(String, NodeKind)>> {
            Ok(Vec::new())
        }
        fn content(&self, _path: &str, caller: Caller) -> io::Result<Vec<u8>> {
            Ok(vec![
                b'x';
                [10_000, 100, 200]
                    [caller.pid.saturating_sub(6) as usize % 3]
            ])
        }
        fn readlink(&self, _path: &str) -> io::Result<Vec<u8>> {
            Err(io::Error::from_raw_os_error(nix::libc::EINVAL))
        }
    }

    fn pid(pid: u32) -> Caller {
        Caller { pid, request: 1 }
    }

    fn inode() -> InodeInfo {
        InodeInfo {
            path: Arc::from("proc/cpuinfo"),
            served: AtomicU64::new(0),
        }
    }

    #[test]
    fn size_covers_the_host_view_even_when_a_container_asks_first() {
        let fs = LxcFs::new(Arc::new(Sizes));
        let info = inode();
        assert_eq!(
            fs.file_size(&info, pid(7)),
            12_288,
            "10,000 host bytes, page-rounded"
        );
        assert_eq!(fs.file_size(&info, pid(0)), 12_288);
    }

    #[test]
    fn node_kinds_map_to_fuse_file_types() {
        assert_eq!(FileType::from(NodeKind::Dir), FileType::Directory);
        assert_eq!(FileType::from(NodeKind::File), FileType::RegularFile);
        assert_eq!(FileType::from(NodeKind::Symlink), FileType::Symlink);
    }

    #[test]
    fn size_grows_with_what_was_served_and_is_never_zero() {
        let fs = LxcFs::new(Arc::new(Sizes));
        let info = inode();
        info.served.store(20_000, Ordering::Relaxed);
        assert_eq!(fs.file_size(&info, pid(8)), 20_480);
        let empty = InodeInfo {
            path: Arc::from("proc/x"),
            served: AtomicU64::new(0),
        };
        struct Empty;
        impl Provider for Empty {
            fn node(&self, _: &str, _: Caller) -> Option<Node> {
                None
            }
            fn list(&self, _: &str, _: Caller) -> io::Result<Vec<(String, NodeKind)>> {
                Ok(Vec::new())
            }
            fn content(&self, _: &str, _: Caller) -> io::Result<Vec<u8>> {
                Ok(Vec::new())
            }
            fn readlink(&self, _: &str) -> io::Result<Vec<u8>> {
                Ok(Vec::new())
            }
        }
        assert_eq!(LxcFs::new(Arc::new(Empty)).file_size(&empty, pid(1)), PAGE);
    }
}
