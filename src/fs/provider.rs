//! The interface between the FUSE layer and whatever decides file contents.

use std::io;

/// What kind of node a path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// A directory.
    Dir,
    /// A regular file whose content is produced per reader.
    File,
    /// A symbolic link.
    Symlink,
}

/// A node as the provider describes it to one reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Node {
    /// Directory, file or symlink.
    pub kind: NodeKind,
    /// True when the node exists for every reader (so the kernel may cache its name);
    /// false when whether it exists depends on who asks (a `cpuN` entry hidden by a cpuset).
    pub same_for_all: bool,
}

/// Decides what the tree holds for a reader. Paths are relative to the mount point with no
/// leading slash (`""` is the root, `"proc/meminfo"` a file); `pid` is the reader's thread id
/// as the daemon's pid namespace sees it, 0 when the kernel could not map it.
pub trait Provider: Send + Sync + 'static {
    /// The node at `path` as `pid` sees it, or `None` when it does not exist for that reader.
    fn node(&self, path: &str, pid: u32) -> Option<Node>;
    /// The entries of directory `path` for `pid`: names and kinds, without `.` and `..`.
    fn list(&self, path: &str, pid: u32) -> io::Result<Vec<(String, NodeKind)>>;
    /// The whole content of file `path` for `pid`.
    fn content(&self, path: &str, pid: u32) -> io::Result<Vec<u8>>;
    /// The target of symlink `path`.
    fn readlink(&self, path: &str) -> io::Result<Vec<u8>>;
}
