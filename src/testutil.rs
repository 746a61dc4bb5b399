//! Support for the unit tests: the fake host trees the integration tests build too (one
//! builder, `tests/common/fixture_tree.rs`, included here), with `HostPaths` pointing into
//! them.

use std::ops::Deref;

use crate::host::HostPaths;

#[path = "../tests/common/fixture_tree.rs"]
mod fixture_tree;

pub(crate) use fixture_tree::{Proc, stat_line};

/// A fake host tree and the host paths pointing into it.
pub(crate) struct Fixture {
    tree: fixture_tree::Fixture,
    /// Paths pointing into the tree.
    pub(crate) host: HostPaths,
}

impl Fixture {
    /// An empty tree in a new temporary directory.
    pub(crate) fn new() -> Self {
        let tree = fixture_tree::Fixture::new();
        let host = HostPaths::under(tree.root());
        Fixture { tree, host }
    }
}

impl Deref for Fixture {
    type Target = fixture_tree::Fixture;

    fn deref(&self) -> &Self::Target {
        &self.tree
    }
}
