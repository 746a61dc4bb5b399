//! Support for the unit tests: the fake host trees the integration tests build too (one
//! builder, `tests/common/fixture_tree.rs`, included here), with `HostPaths` pointing into
//! them.

use std::ops::Deref;
use std::sync::Once;

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

    /// Writes v1 cgroup `name` under the `cpu` hierarchy (its `tasks` file) with a task in
    /// each of the given states, and returns its directory.
    pub(crate) fn cpu_cgroup_with_tasks(
        &self,
        name: &str,
        tasks: &[(u32, char)],
    ) -> std::path::PathBuf {
        let rel = format!("sys/fs/cgroup/cpu/{name}");
        let list: String = tasks.iter().map(|(tid, _)| format!("{tid}\n")).collect();
        self.write(&format!("{rel}/tasks"), &list);
        for &(tid, state) in tasks {
            self.stat(tid, 1, state, 100 + u64::from(tid));
        }
        self.path(&rel)
    }
}

impl Deref for Fixture {
    type Target = fixture_tree::Fixture;

    fn deref(&self) -> &Self::Target {
        &self.tree
    }
}

/// Turns debug logging on for this test binary (into a logger that drops every line), so
/// that `crate::fallback` gathers what a read fell back on, as it does in a daemon run with
/// `-d`. Once on, it stays on for every test: gathering changes no served byte.
pub(crate) fn debug_log_on() {
    static ON: Once = Once::new();
    ON.call_once(|| {
        // Another logger set first would be as good: any logger enabled at debug level.
        let _ = log::set_logger(&DROP_ALL);
        log::set_max_level(log::LevelFilter::Debug);
    });
}

/// A logger that takes every line and keeps none.
struct DropAll;

static DROP_ALL: DropAll = DropAll;

impl log::Log for DropAll {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, _: &log::Record<'_>) {}
    fn flush(&self) {}
}
