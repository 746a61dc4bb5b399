//! The filesystem over the FUSE session layer: node ids, attributes, open-file snapshots and
//! listings.
//!
//! Nothing here knows about cgroups: what a path holds for a given reader comes from a
//! [`Provider`]. Nothing here knows the wire protocol either: requests arrive through
//! [`crate::fuse::Filesystem`].

mod filesystem;
mod handles;
mod inodes;
mod ledger;
mod provider;
mod snapshots;

pub use filesystem::LxcFs;
pub use inodes::{Collision, node_id};
pub use ledger::SnapshotLedger;
pub use provider::{Caller, Node, NodeKind, Provider};
