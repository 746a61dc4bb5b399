//! Task counting over a cgroup subtree.

use super::Fixture;
use crate::cgroup::count_tasks;
use crate::model::TaskCounts;

#[test]
fn counts_states_over_descendants_and_skips_vanished_tids() {
    let fx = Fixture::new();
    let top = "sys/fs/cgroup/cpu/ctr";
    // 11 and 12 are threads of the same process; 99 vanished after the list was read.
    fx.write(&format!("{top}/tasks"), "10\n11\n12\n99\n");
    fx.write(&format!("{top}/child/tasks"), "20\r\n");
    fx.write(&format!("{top}/child/grandchild/tasks"), "30\nnot-a-tid\n");
    fx.write(&format!("{top}/child/cpu.shares"), "1024\n");
    fx.stat(10, 1, 'S', 500);
    fx.stat(11, 1, 'R', 900);
    fx.stat(12, 1, 'D', 700);
    fx.stat(20, 10, 'R', 800);
    fx.stat(30, 20, 'Z', 100);
    let (counts, newest) = count_tasks(&fx.host, &fx.path(top));
    assert_eq!(
        counts,
        TaskCounts {
            running: 2,
            blocked: 1,
            total: 5
        }
    );
    assert_eq!(newest.map(|n| n.tid), Some(11));
}

#[test]
fn v2_uses_cgroup_threads() {
    let fx = Fixture::new();
    let top = "sys/fs/cgroup/pod";
    fx.write(&format!("{top}/cgroup.threads"), "5\n");
    fx.write(&format!("{top}/cgroup.procs"), "5\n");
    fx.write(&format!("{top}/c/cgroup.threads"), "6\n7\n");
    fx.stat(5, 1, 'R', 10);
    fx.stat(6, 5, 'S', 30);
    fx.stat(7, 5, 'R', 30);
    let (counts, newest) = count_tasks(&fx.host, &fx.path(top));
    assert_eq!(
        counts,
        TaskCounts {
            running: 2,
            blocked: 0,
            total: 3
        }
    );
    assert_eq!(
        newest.map(|n| n.tid),
        Some(7),
        "equal start times: the larger tid is the newer"
    );
}

#[test]
fn empty_and_missing_cgroups() {
    let fx = Fixture::new();
    fx.write("sys/fs/cgroup/pids/empty/tasks", "");
    assert_eq!(
        count_tasks(&fx.host, &fx.path("sys/fs/cgroup/pids/empty")),
        (TaskCounts::default(), None)
    );
    assert_eq!(
        count_tasks(&fx.host, &fx.path("sys/fs/cgroup/pids/gone")),
        (TaskCounts::default(), None)
    );
}
