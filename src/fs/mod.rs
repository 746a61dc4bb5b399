//! The filesystem over the FUSE session layer: node ids, attributes, open-file snapshots
//! (bounded per group of readers) and listings.
//!
//! Nothing here knows about cgroups: what a path holds for a given reader, and which group
//! the reader is in, come from a [`Provider`]. Nothing here knows the wire protocol either: requests arrive through
//! [`crate::fuse::Filesystem`].

mod budget;
mod filesystem;
mod handles;
mod inodes;
mod ledger;
mod provider;
mod snapshots;

pub use budget::Limits;
pub use filesystem::LxcFs;
pub use inodes::{Collision, node_id};
pub use ledger::SnapshotLedger;
pub use provider::{Caller, Group, Node, NodeKind, Provider, Rendered};
