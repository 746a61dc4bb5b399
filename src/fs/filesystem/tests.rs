use super::*;

/// A small tree: `proc/` with one file whose size depends on the reader (the host, pid 0,
/// sees 10,000 bytes, pid 7 100, pid 8 200; the content carries the reader's pid), and a
/// `cpu/` directory listed out of order.
struct Sizes;

impl Provider for Sizes {
    fn node(&self, path: &str, _caller: Caller) -> Option<Node> {
        let kind = match path {
            "" | "proc" | "cpu" => NodeKind::Dir,
            "proc/cpuinfo" | "cpu/b" | "cpu/a" => NodeKind::File,
            _ => return None,
        };
        Some(Node {
            kind,
            same_for_all: true,
        })
    }
    fn list(&self, path: &str, _caller: Caller) -> io::Result<Vec<(String, NodeKind)>> {
        Ok(match path {
            "" => vec![
                ("proc".into(), NodeKind::Dir),
                ("cpu".into(), NodeKind::Dir),
            ],
            "proc" => vec![("cpuinfo".into(), NodeKind::File)],
            "cpu" => vec![("b".into(), NodeKind::File), ("a".into(), NodeKind::File)],
            _ => vec![],
        })
    }
    fn content(&self, _path: &str, caller: Caller) -> io::Result<Vec<u8>> {
        let len = [10_000, 100, 200][caller.pid.saturating_sub(6) as usize % 3];
        let mut v = format!("pid {} ", caller.pid).into_bytes();
        v.resize(len, b'x');
        Ok(v)
    }
    fn render(&self, path: &str, caller: Caller) -> io::Result<Rendered> {
        Ok(Rendered {
            bytes: self.content(path, caller)?,
            group: by_pid(caller),
        })
    }
    fn readlink(&self, _path: &str) -> io::Result<Vec<u8>> {
        Err(io::Error::from_raw_os_error(nix::libc::EINVAL))
    }
}

/// Each reader pid a group of its own.
fn by_pid(caller: Caller) -> Group {
    Group::new(format!("pid {}", caller.pid))
}

fn pid(pid: u32) -> Caller {
    Caller { pid, request: 1 }
}

fn ctx(pid: u32) -> Ctx {
    Ctx { unique: 1, pid }
}

fn inode() -> InodeInfo {
    InodeInfo::new("proc/cpuinfo")
}

fn fs(generation: u32) -> LxcFs<Sizes> {
    LxcFs::new(Arc::new(Sizes), generation).unwrap()
}

const READ: Option<u64> = Some(1);

#[test]
fn size_covers_the_host_view_even_when_a_container_asks_first() {
    let fs = fs(1);
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
    assert_eq!(FileKind::from(NodeKind::Dir), FileKind::Dir);
    assert_eq!(FileKind::from(NodeKind::File), FileKind::File);
    assert_eq!(FileKind::from(NodeKind::Symlink), FileKind::Symlink);
}

#[test]
fn size_grows_with_what_was_served_and_is_never_zero() {
    let fs = fs(1);
    let info = inode();
    info.served.store(20_000, Ordering::Relaxed);
    assert_eq!(fs.file_size(&info, pid(8)), 20_480);
    let empty = InodeInfo::new("proc/x");
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
        fn render(&self, _: &str, caller: Caller) -> io::Result<Rendered> {
            Ok(Rendered {
                bytes: Vec::new(),
                group: by_pid(caller),
            })
        }
        fn readlink(&self, _: &str) -> io::Result<Vec<u8>> {
            Ok(Vec::new())
        }
    }
    let empty_fs = LxcFs::new(Arc::new(Empty), 1).unwrap();
    assert_eq!(empty_fs.file_size(&empty, pid(1)), PAGE);
}

#[test]
fn every_node_is_known_by_its_fixed_id_without_a_lookup() {
    let fs = fs(1);
    let id = crate::fs::inodes::node_id("proc/cpuinfo");
    let (attr, _) = fs.getattr(ctx(7), id).unwrap();
    assert_eq!(attr.ino, id);
    assert_eq!(attr.kind, FileKind::File);
    let opened = fs.open(ctx(7), id, nix::libc::O_RDONLY as u32).unwrap();
    assert!(opened.direct_io);
    assert_eq!(opened.fh >> 40, 1, "generation 1");
    assert_eq!(fs.getattr(ctx(7), 12345), Err(Errno::ENOENT));
}

#[test]
fn handles_from_a_predecessor_are_adopted() {
    let fs = fs(2);
    let id = crate::fs::inodes::node_id("proc/cpuinfo");
    let old_fh = 1 << 40 | 9;
    // At offset 0: rendered for this reader.
    let first = fs.read(ctx(7), id, old_fh, 0, 4, READ).unwrap();
    assert_eq!(first.bytes(), b"pid ");
    // At a later offset of a handle never seen: rendered and sliced.
    let other = fs.read(ctx(8), id, 1 << 40 | 10, 4, 1, READ).unwrap();
    assert_eq!(other.bytes(), b"8");
    // The adopted handle keeps its snapshot like any other.
    let again = fs.read(ctx(8), id, old_fh, 4, 1, READ).unwrap();
    assert_eq!(again.bytes(), b"7", "sliced from the offset-0 snapshot");
    fs.release(id, old_fh);
    // A directory handle is listed again; the offset means the same entry.
    let mut buf = Vec::new();
    let mut out = DirBuf::new(&mut buf, 4096);
    let cpu = crate::fs::inodes::node_id("cpu");
    fs.readdir(ctx(7), cpu, 1 << 40 | 11, 2, &mut out).unwrap();
    let names: Vec<&[u8]> = dirent_names(out.bytes());
    assert_eq!(names, [b"a".as_slice(), b"b"], "sorted, after . and ..");
    fs.releasedir(cpu, 1 << 40 | 11);
}

/// A ledger in memory, as the board keeps it between workers.
#[derive(Default)]
struct MemLedger(Mutex<std::collections::HashMap<u64, usize>>);

impl SnapshotLedger for MemLedger {
    fn note(&self, fh: u64, len: usize) {
        self.0.lock().insert(fh, len);
    }
    fn noted(&self, fh: u64) -> Option<usize> {
        self.0.lock().get(&fh).copied()
    }
}

#[test]
fn a_successor_answers_eof_where_the_predecessors_snapshot_ended() {
    let ledger = Arc::new(MemLedger::default());
    let id = crate::fs::inodes::node_id("proc/cpuinfo");
    let fh = 1 << 40 | 9;
    // The predecessor served pid 7 its whole file (100 bytes), then died.
    let old = fs(1).with_ledger(ledger.clone());
    assert_eq!(
        old.read(ctx(7), id, fh, 0, 4096, READ)
            .unwrap()
            .bytes()
            .len(),
        100
    );
    assert_eq!(ledger.noted(fh), Some(100));
    // Its successor gets the reader's EOF read: a fresh render for pid 8 would be 200 bytes,
    // whose tail would follow the 100 the reader has.
    let new = fs(2).with_ledger(ledger.clone());
    assert!(
        new.read(ctx(8), id, fh, 100, 4096, READ)
            .unwrap()
            .bytes()
            .is_empty()
    );
    // Within the old snapshot (a reader reading in pieces) the fresh render is sliced.
    assert_eq!(
        new.read(ctx(8), id, 1 << 40 | 9, 4, 1, READ)
            .unwrap()
            .bytes(),
        b"8"
    );
    // Without a ledger entry (another handle), sliced as before.
    let other = new.read(ctx(8), id, 1 << 40 | 10, 100, 4096, READ).unwrap();
    assert_eq!(other.bytes().len(), 100);
}

#[test]
fn an_unknown_node_with_an_unknown_handle_is_ebadf() {
    let fs = fs(2);
    assert_eq!(
        fs.read(ctx(7), 424242, 1 << 40 | 9, 0, 4, READ)
            .unwrap_err(),
        Errno::EBADF
    );
}

#[test]
fn page_cache_reads_are_refused() {
    let fs = fs(1);
    let id = crate::fs::inodes::node_id("proc/cpuinfo");
    let fh = fs.open(ctx(7), id, 0).unwrap().fh;
    assert_eq!(
        fs.read(ctx(7), id, fh, 0, 10, None).unwrap_err(),
        Errno::EINVAL
    );
}

#[test]
fn listings_are_sorted_after_dot_entries() {
    let fs = fs(1);
    let cpu = crate::fs::inodes::node_id("cpu");
    let fh = fs.opendir(ctx(7), cpu).unwrap();
    let mut buf = Vec::new();
    let mut out = DirBuf::new(&mut buf, 4096);
    fs.readdir(ctx(7), cpu, fh, 0, &mut out).unwrap();
    assert_eq!(
        dirent_names(out.bytes()),
        [b".".as_slice(), b"..", b"a", b"b"]
    );
}

/// The names in a READDIR reply.
fn dirent_names(mut bytes: &[u8]) -> Vec<&[u8]> {
    let mut names = Vec::new();
    while bytes.len() >= 24 {
        let len = u32::from_ne_bytes(bytes[16..20].try_into().unwrap()) as usize;
        names.push(&bytes[24..24 + len]);
        bytes = &bytes[(24 + len).next_multiple_of(8)..];
    }
    names
}

#[test]
fn opens_with_equal_content_share_one_snapshot() {
    let fs = fs(1);
    let id = crate::fs::inodes::node_id("proc/cpuinfo");
    let a = fs.open(ctx(7), id, 0).unwrap().fh;
    let b = fs.open(ctx(7), id, 0).unwrap().fh;
    let c = fs.open(ctx(8), id, 0).unwrap().fh;
    let ra = fs.read(ctx(7), id, a, 0, 1, READ).unwrap();
    let rb = fs.read(ctx(7), id, b, 0, 1, READ).unwrap();
    let rc = fs.read(ctx(8), id, c, 0, 1, READ).unwrap();
    assert!(
        Arc::ptr_eq(&ra.data, &rb.data),
        "same reader, same bytes: one allocation"
    );
    assert!(
        !Arc::ptr_eq(&ra.data, &rc.data),
        "another reader's view is its own"
    );
    assert_eq!(&rc.data[..6], b"pid 8 ");
}

/// `proc/cpuinfo` as a file that changes at every read: the n-th rendering is `100 + n`
/// copies of the n-th letter, so that a read tells which rendering it was sliced from. Each
/// reader pid is a group of its own.
#[derive(Default)]
struct Ticking(std::sync::atomic::AtomicUsize);

impl Provider for Ticking {
    fn node(&self, path: &str, caller: Caller) -> Option<Node> {
        Sizes.node(path, caller)
    }
    fn list(&self, path: &str, caller: Caller) -> io::Result<Vec<(String, NodeKind)>> {
        Sizes.list(path, caller)
    }
    fn content(&self, _path: &str, _caller: Caller) -> io::Result<Vec<u8>> {
        let n = self.0.fetch_add(1, Ordering::Relaxed);
        Ok(vec![b'a' + (n % 26) as u8; 100 + n])
    }
    fn render(&self, path: &str, caller: Caller) -> io::Result<Rendered> {
        Ok(Rendered {
            bytes: self.content(path, caller)?,
            group: by_pid(caller),
        })
    }
    fn readlink(&self, path: &str) -> io::Result<Vec<u8>> {
        Sizes.readlink(path)
    }
}

/// A filesystem over [`Ticking`] where a group may hold `snapshots` snapshots of up to 150
/// bytes, each with its entry.
fn ticking(snapshots: usize) -> LxcFs<Ticking> {
    let per = 150 + crate::fs::snapshots::OVERHEAD + ENTRY_COST;
    LxcFs::new(Arc::new(Ticking::default()), 1)
        .unwrap()
        .with_limits(Limits {
            group: snapshots * per,
            ..Limits::DEFAULT
        })
}

/// The letter a read was sliced from.
fn letter(fs: &LxcFs<Ticking>, pid: u32, fh: u64, offset: u64) -> u8 {
    let id = crate::fs::inodes::node_id("proc/cpuinfo");
    let r = fs.read(ctx(pid), id, fh, offset, 1, READ).unwrap();
    assert_eq!(r.bytes().len(), 1, "a byte at {offset}");
    r.bytes()[0]
}

#[test]
fn a_group_over_its_bound_is_served_without_snapshots_and_others_keep_theirs() {
    let fs = ticking(3);
    let id = crate::fs::inodes::node_id("proc/cpuinfo");
    let open = |pid| fs.open(ctx(pid), id, 0).unwrap().fh;
    let hog: Vec<u64> = (0..5).map(|_| open(7)).collect();
    let first: Vec<u8> = hog.iter().map(|&fh| letter(&fs, 7, fh, 0)).collect();
    assert_eq!(fs.handles.len(), 3, "three snapshots fit the group");
    for (i, &fh) in hog.iter().enumerate() {
        let later = letter(&fs, 7, fh, 1);
        if i < 3 {
            assert_eq!(later, first[i], "open {i} slices its snapshot");
        } else {
            assert_ne!(later, first[i], "open {i} is made again: nothing was kept");
        }
    }
    // Another group is not held back by the first.
    let other = open(8);
    let mine = letter(&fs, 8, other, 0);
    assert_eq!(letter(&fs, 8, other, 50), mine, "kept for the other group");
    // The hog gives its opens back: it may keep again.
    for &fh in &hog {
        fs.release(id, fh);
    }
    let again = open(7);
    let fresh = letter(&fs, 7, again, 0);
    assert_eq!(letter(&fs, 7, again, 1), fresh);
    fs.release(id, again);
    fs.release(id, other);
    assert_eq!(
        fs.accounts.held(),
        0,
        "every release gives its charges back"
    );
    assert_eq!(fs.handles.len(), 0);
}

#[test]
fn a_file_read_to_its_end_keeps_only_its_length_and_ends_there() {
    let fs = ticking(3);
    let id = crate::fs::inodes::node_id("proc/cpuinfo");
    let fh = fs.open(ctx(7), id, 0).unwrap().fh;
    let whole = fs.read(ctx(7), id, fh, 0, 4096, READ).unwrap();
    assert_eq!(whole.bytes().len(), 100);
    assert_eq!(
        fs.accounts.held(),
        ENTRY_COST,
        "no snapshot kept for a file read whole"
    );
    // A newer rendering is longer: its tail must not follow.
    assert!(
        fs.read(ctx(7), id, fh, 100, 4096, READ)
            .unwrap()
            .bytes()
            .is_empty()
    );
    // Read in pieces: the snapshot goes once the last piece is read.
    let fh = fs.open(ctx(7), id, 0).unwrap().fh;
    let head = fs.read(ctx(7), id, fh, 0, 60, READ).unwrap();
    let len = head.data.len() as u64;
    assert!(fs.accounts.held() > 2 * ENTRY_COST, "kept while being read");
    let tail = fs.read(ctx(7), id, fh, 60, 4096, READ).unwrap();
    assert_eq!(tail.bytes().len() as u64, len - 60);
    assert_eq!(tail.bytes()[0], head.bytes()[0], "one rendering");
    assert_eq!(fs.accounts.held(), 2 * ENTRY_COST, "only lengths are left");
    assert!(
        fs.read(ctx(7), id, fh, len, 4096, READ)
            .unwrap()
            .bytes()
            .is_empty()
    );
}

#[test]
fn rereading_from_the_start_needs_no_room_for_two_versions() {
    let fs = ticking(1);
    let id = crate::fs::inodes::node_id("proc/cpuinfo");
    let fh = fs.open(ctx(7), id, 0).unwrap().fh;
    for _ in 0..5 {
        let now = letter(&fs, 7, fh, 0);
        assert_eq!(
            letter(&fs, 7, fh, 1),
            now,
            "kept: the old version went first"
        );
    }
}

#[test]
fn opens_and_directories_hold_nothing_until_a_file_is_read() {
    let fs = fs(1);
    let id = crate::fs::inodes::node_id("proc/cpuinfo");
    for _ in 0..100 {
        fs.open(ctx(7), id, 0).unwrap();
    }
    let cpu = crate::fs::inodes::node_id("cpu");
    let dir = fs.opendir(ctx(7), cpu).unwrap();
    assert_eq!(fs.handles.len(), 0);
    let mut buf = Vec::new();
    let mut out = DirBuf::new(&mut buf, 4096);
    fs.readdir(ctx(7), cpu, dir, 3, &mut out).unwrap();
    assert_eq!(dirent_names(out.bytes()), [b"b".as_slice()], "listed again");
    assert_eq!(fs.accounts.held(), 0);
}

#[test]
fn the_first_read_of_an_open_keeps_a_snapshot_whatever_its_offset() {
    let fs = ticking(3);
    let id = crate::fs::inodes::node_id("proc/cpuinfo");
    let fh = fs.open(ctx(7), id, 0).unwrap().fh;
    let first = letter(&fs, 7, fh, 5);
    assert_eq!(
        letter(&fs, 7, fh, 6),
        first,
        "sliced from the same rendering"
    );
    // Read to the end, then short of it without a rewind: made afresh, as seq_file does.
    let len = fs.read(ctx(7), id, fh, 7, 4096, READ).unwrap().data.len() as u64;
    assert_ne!(letter(&fs, 7, fh, 1), first);
    assert!(len > 7);
}

/// A tree with one file every reader has and one (`cpu1`, as a cpuset hides it) that only
/// pid 7 has.
struct PerReader;

impl Provider for PerReader {
    fn node(&self, path: &str, caller: Caller) -> Option<Node> {
        let (kind, same_for_all) = match path {
            "" => (NodeKind::Dir, true),
            "meminfo" => (NodeKind::File, true),
            "cpu1" if caller.pid == 7 => (NodeKind::Dir, false),
            "cpu1/online" if caller.pid == 7 => (NodeKind::File, false),
            _ => return None,
        };
        Some(Node { kind, same_for_all })
    }
    fn list(&self, path: &str, _caller: Caller) -> io::Result<Vec<(String, NodeKind)>> {
        Ok(match path {
            "" => vec![("meminfo".into(), NodeKind::File)],
            _ => vec![],
        })
    }
    fn content(&self, _path: &str, caller: Caller) -> io::Result<Vec<u8>> {
        Ok(format!("pid {}\n", caller.pid).into_bytes())
    }
    fn render(&self, path: &str, caller: Caller) -> io::Result<Rendered> {
        Ok(Rendered {
            bytes: self.content(path, caller)?,
            group: by_pid(caller),
        })
    }
    fn readlink(&self, _path: &str) -> io::Result<Vec<u8>> {
        Err(io::Error::from_raw_os_error(nix::libc::EINVAL))
    }
}

#[test]
fn attributes_the_same_for_every_reader_are_cached_and_per_reader_ones_are_not() {
    let fs = LxcFs::new(Arc::new(PerReader), 1).unwrap();
    let meminfo = fs.lookup(ctx(8), ROOT_INO, b"meminfo").unwrap();
    assert_eq!(
        (meminfo.entry_ttl, meminfo.attr_ttl),
        (STABLE_TTL, STABLE_TTL),
        "a file every reader has, with a size that is not the asker's"
    );
    assert!(STABLE_TTL > Duration::ZERO);
    let (attr, ttl) = fs.getattr(ctx(8), meminfo.attr.ino).unwrap();
    assert_eq!(ttl, STABLE_TTL, "fstat of an open file");
    assert_eq!(
        fs.getattr(ctx(9), meminfo.attr.ino).unwrap().0.size,
        attr.size,
        "another reader is told the same size"
    );
    assert_eq!(fs.getattr(ctx(8), ROOT_INO).unwrap().1, STABLE_TTL);

    let cpu = fs.lookup(ctx(7), ROOT_INO, b"cpu1").unwrap();
    assert_eq!((cpu.entry_ttl, cpu.attr_ttl), (NO_TTL, NO_TTL));
    let online = fs.lookup(ctx(7), cpu.attr.ino, b"online").unwrap();
    assert_eq!((online.entry_ttl, online.attr_ttl), (NO_TTL, NO_TTL));
    assert_eq!(fs.getattr(ctx(7), online.attr.ino).unwrap().1, NO_TTL);
    assert_eq!(
        fs.getattr(ctx(8), online.attr.ino),
        Err(Errno::ENOENT),
        "hidden from pid 8, which is why nothing about it may be cached"
    );
}
