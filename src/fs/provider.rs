//! The interface between the FUSE layer and whatever decides file contents.

use std::fmt;
use std::io;
use std::sync::Arc;

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

/// Who sent a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// The reader's thread id as the daemon's pid namespace sees it; 0 when the kernel could
    /// not map it (a reader in a pid namespace the daemon cannot see).
    pub pid: u32,
    /// The FUSE request's id, for logs; 0 outside FUSE (`lxcfs-rs show`).
    pub request: u64,
}

impl Caller {
    /// The host itself: pid 0, which a provider answers with the host's view.
    pub const HOST: Caller = Caller { pid: 0, request: 0 };
}

/// Readers that share one bound on what the daemon keeps for their open files (for the
/// daemon's own provider, a cgroup). Opaque here: compared, hashed and named in the log.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Group(Arc<str>);

impl Group {
    /// The group called `name`; equal names are one group.
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        Group(name.into())
    }
}

impl fmt::Display for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A file's content made for one reader, and the reader's [`Group`], which pays for it if it
/// is kept.
pub struct Rendered {
    /// The whole content.
    pub bytes: Vec<u8>,
    /// Who the reader is for the daemon's bounds on what it keeps.
    pub group: Group,
}

/// Decides what the tree holds for a reader. Paths are relative to the mount point with no
/// leading slash (`""` is the root, `"proc/meminfo"` a file).
///
/// A caller with pid 0 gets the host's view: the FUSE layer relies on that to size files
/// (see `LxcFs::file_size`), as well as on readers it cannot map.
pub trait Provider: Send + Sync + 'static {
    /// The node at `path` as `caller` sees it, or `None` when it does not exist for them.
    fn node(&self, path: &str, caller: Caller) -> Option<Node>;
    /// The entries of directory `path` for `caller`: names and kinds, without `.` and `..`.
    fn list(&self, path: &str, caller: Caller) -> io::Result<Vec<(String, NodeKind)>>;
    /// The whole content of file `path` for `caller`.
    fn content(&self, path: &str, caller: Caller) -> io::Result<Vec<u8>>;
    /// [`Provider::content`] and `caller`'s group: what a read from the start serves and may
    /// keep. A provider finds the group from what it learnt making the content, if it can.
    fn render(&self, path: &str, caller: Caller) -> io::Result<Rendered>;
    /// The target of symlink `path`.
    fn readlink(&self, path: &str) -> io::Result<Vec<u8>>;
}
