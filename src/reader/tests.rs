//! Pid-namespace tests on fixture `/proc` trees.

use crate::reader::{NsInit, PidNsCache, ReaderError, start_ticks};
use crate::testutil::{Fixture, Proc, stat_line};

/// The host's processes: 1 (init) and 50 (a container runtime), plus a container whose init is
/// host pid 100, with a shell 101 and its child 102.
fn host() -> Fixture {
    let fx = Fixture::new();
    let p = |pid, ppid, nspid, ns, start| Proc {
        pid,
        ppid,
        nspid,
        ns,
        state: 'S',
        start,
    };
    fx.process(p(1, 0, &[1], "host", 1));
    fx.process(p(50, 1, &[50], "host", 10));
    fx.process(p(100, 50, &[100, 1], "ctr", 1000));
    fx.process(p(101, 100, &[101, 7], "ctr", 1100));
    fx.process(p(102, 101, &[102, 8], "ctr", 1200));
    fx
}

#[test]
fn host_namespace_reader_has_no_init() {
    let fx = host();
    let cache = PidNsCache::new(fx.host.clone());
    assert_eq!(cache.init_of(50).unwrap(), None);
    assert_eq!(cache.init_of(1).unwrap(), None);
}

#[test]
fn init_found_through_the_ppid_chain_and_cached() {
    let fx = host();
    let cache = PidNsCache::new(fx.host.clone());
    let init = NsInit {
        pid: 100,
        start_ticks: 1000,
    };
    assert_eq!(cache.init_of(102).unwrap(), Some(init));
    assert_eq!(
        cache.init_of(100).unwrap(),
        Some(init),
        "init is its own init"
    );

    // With the middle of the chain gone, only the cache can still answer.
    fx.remove("proc/101");
    assert_eq!(cache.init_of(102).unwrap(), Some(init));
    let fresh = PidNsCache::new(fx.host.clone());
    assert_eq!(
        fresh.init_of(102).unwrap(),
        Some(init),
        "...or the scan of all processes"
    );
}

#[test]
fn cached_init_is_dropped_when_its_start_time_changes() {
    let fx = host();
    let cache = PidNsCache::new(fx.host.clone());
    assert_eq!(
        cache.init_of(102).unwrap(),
        Some(NsInit {
            pid: 100,
            start_ticks: 1000
        })
    );

    // Pid 100 is now another process (same pid, later start) and no longer the init; the
    // namespace (same inode) got a new init 200 above 101.
    fx.process(Proc {
        pid: 100,
        ppid: 1,
        nspid: &[100],
        ns: "host",
        state: 'S',
        start: 5000,
    });
    fx.process(Proc {
        pid: 200,
        ppid: 50,
        nspid: &[200, 1],
        ns: "ctr",
        state: 'S',
        start: 4000,
    });
    fx.process(Proc {
        pid: 101,
        ppid: 200,
        nspid: &[101, 7],
        ns: "ctr",
        state: 'S',
        start: 4100,
    });
    assert_eq!(
        cache.init_of(102).unwrap(),
        Some(NsInit {
            pid: 200,
            start_ticks: 4000
        })
    );
}

#[test]
fn setns_reader_finds_the_init_by_scanning() {
    let fx = host();
    // `docker exec`: the shell's parent is the runtime, outside the namespace.
    fx.process(Proc {
        pid: 300,
        ppid: 50,
        nspid: &[300, 20],
        ns: "ctr",
        state: 'S',
        start: 3000,
    });
    fx.process(Proc {
        pid: 301,
        ppid: 300,
        nspid: &[301, 21],
        ns: "ctr",
        state: 'R',
        start: 3100,
    });
    let cache = PidNsCache::new(fx.host.clone());
    assert_eq!(
        cache.init_of(301).unwrap(),
        Some(NsInit {
            pid: 100,
            start_ticks: 1000
        })
    );
}

#[test]
fn namespace_without_init_uses_its_oldest_ancestor_inside() {
    let fx = host();
    fx.process(Proc {
        pid: 400,
        ppid: 50,
        nspid: &[400, 2],
        ns: "dying",
        state: 'S',
        start: 3000,
    });
    fx.process(Proc {
        pid: 401,
        ppid: 400,
        nspid: &[401, 3],
        ns: "dying",
        state: 'S',
        start: 3100,
    });
    let cache = PidNsCache::new(fx.host.clone());
    assert_eq!(
        cache.init_of(401).unwrap(),
        Some(NsInit {
            pid: 400,
            start_ticks: 3000
        })
    );

    // Not cached: once the real init shows up it is found.
    fx.process(Proc {
        pid: 402,
        ppid: 50,
        nspid: &[402, 1],
        ns: "dying",
        state: 'S',
        start: 2000,
    });
    fx.process(Proc {
        pid: 400,
        ppid: 402,
        nspid: &[400, 2],
        ns: "dying",
        state: 'S',
        start: 3000,
    });
    assert_eq!(
        cache.init_of(401).unwrap(),
        Some(NsInit {
            pid: 402,
            start_ticks: 2000
        })
    );
}

#[test]
fn vanished_reader_is_an_error() {
    let fx = host();
    let cache = PidNsCache::new(fx.host.clone());
    match cache.init_of(999).unwrap_err() {
        ReaderError::Gone { pid, path } => {
            assert_eq!(pid, 999);
            assert_eq!(path, fx.path("proc/999/ns/pid"));
        }
        e => panic!("{e}"),
    }
    fx.remove("proc/102/ns");
    assert!(matches!(
        cache.init_of(102),
        Err(ReaderError::Gone { pid: 102, .. })
    ));
}

#[test]
fn malformed_status_is_an_error() {
    let fx = host();
    fx.write("proc/102/status", "Name:\tx\nPPid:\t101\n");
    let cache = PidNsCache::new(fx.host.clone());
    assert!(matches!(
        cache.init_of(102),
        Err(ReaderError::Malformed { pid: 102, .. })
    ));
}

#[test]
fn nested_namespaces() {
    let fx = host();
    // A namespace inside the container: its init is container pid 9, host pid 500.
    fx.process(Proc {
        pid: 500,
        ppid: 102,
        nspid: &[500, 9, 1],
        ns: "inner",
        state: 'S',
        start: 6000,
    });
    fx.process(Proc {
        pid: 501,
        ppid: 500,
        nspid: &[501, 10, 2],
        ns: "inner",
        state: 'S',
        start: 6100,
    });
    let cache = PidNsCache::new(fx.host.clone());
    assert_eq!(
        cache.init_of(501).unwrap(),
        Some(NsInit {
            pid: 500,
            start_ticks: 6000
        })
    );
    assert_eq!(
        cache.init_of(102).unwrap(),
        Some(NsInit {
            pid: 100,
            start_ticks: 1000
        })
    );

    assert_eq!(
        cache.pid_as_seen_by(102, 501),
        Some(10),
        "the container sees its nested process"
    );
    assert_eq!(cache.pid_as_seen_by(501, 501), Some(2));
    assert_eq!(
        cache.pid_as_seen_by(501, 102),
        None,
        "the inner namespace cannot see its parent's"
    );
}

#[test]
fn pid_as_seen_by() {
    let fx = host();
    fx.process(Proc {
        pid: 600,
        ppid: 50,
        nspid: &[600, 1],
        ns: "other",
        state: 'S',
        start: 7000,
    });
    let cache = PidNsCache::new(fx.host.clone());
    assert_eq!(cache.pid_as_seen_by(102, 101), Some(7));
    assert_eq!(cache.pid_as_seen_by(102, 100), Some(1));
    assert_eq!(
        cache.pid_as_seen_by(102, 600),
        None,
        "a sibling container at the same depth"
    );
    assert_eq!(cache.pid_as_seen_by(102, 50), None, "a host process");
    assert_eq!(
        cache.pid_as_seen_by(50, 101),
        Some(101),
        "the host sees host pids"
    );
    assert_eq!(cache.pid_as_seen_by(102, 999), None, "gone");
}

#[test]
fn start_ticks_with_a_hostile_comm() {
    let fx = host();
    fx.write(
        "proc/77/stat",
        &stat_line(77, ") R 1 2 3 (", 'S', 1, 424242),
    );
    assert_eq!(start_ticks(&fx.host, 77).unwrap(), 424242);
    fx.write("proc/78/stat", "78 (x)");
    assert!(matches!(
        start_ticks(&fx.host, 78),
        Err(ReaderError::Malformed { pid: 78, .. })
    ));
    assert!(matches!(
        start_ticks(&fx.host, 79),
        Err(ReaderError::Gone { pid: 79, .. })
    ));
}

#[test]
fn cache_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<PidNsCache>();
}

#[test]
fn host_namespace_is_remembered_by_inode() {
    // Once one host reader showed the host namespace's inode, a second host reader is
    // answered from that inode alone: its status file is never needed.
    let fx = Fixture::new();
    fx.process(Proc {
        pid: 10,
        ppid: 1,
        nspid: &[10],
        ns: "host",
        state: 'S',
        start: 5,
    });
    fx.process(Proc {
        pid: 11,
        ppid: 1,
        nspid: &[11],
        ns: "host",
        state: 'S',
        start: 6,
    });
    let cache = PidNsCache::new(fx.host.clone());
    assert_eq!(cache.init_of(10).unwrap(), None);
    fx.remove("proc/11/status");
    assert_eq!(cache.init_of(11).unwrap(), None);
}
