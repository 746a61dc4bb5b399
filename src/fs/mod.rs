//! The FUSE side: inode numbers, open-file snapshots and the request handlers.
//!
//! Nothing here knows about cgroups: what a path holds for a given reader comes from a
//! [`Provider`].

mod handles;
mod inodes;
mod provider;
mod session;

pub use provider::{Caller, Node, NodeKind, Provider};
pub use session::LxcFs;
