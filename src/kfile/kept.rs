//! Kernel files kept open: each serving thread keeps the descriptors of the kernel files it
//! reads (`/proc/meminfo`, `/proc/stat`, cgroup files, `/sys` CPU lists) and re-reads them
//! with `pread` from offset 0, which makes procfs, sysfs and cgroupfs generate the file
//! afresh. That saves the path walk, open and close of every read (about half the cost of a
//! host file, docs/performance notes in the README).
//!
//! Safe by construction:
//! - only files on procfs, sysfs and cgroupfs are kept (a fixture tree on a disk is never
//!   stale);
//! - of a process's files only `/proc/<pid>/{cgroup,stat,status}`, on a shelf of their own:
//!   a kept descriptor of a process's file is bound to that process (once it exits, a read
//!   answers ESRCH, also when its pid was given to another process since, which is then
//!   opened afresh), so it never shows another process's data. Pollers (`top`, monitoring
//!   agents, JVMs) and pid-namespace inits are read again and again; one-shot readers bring a
//!   new pid every time, and their own shelf keeps them from pushing cgroup files out. A
//!   thread's `task/<tid>/` files are not kept: counting a cgroup's tasks reads one per
//!   thread, which would only churn the shelf. A kept one holds its process's `struct pid`
//!   and so its pid namespace, like a cgroup file its dying cgroup, until let go (below);
//! - never a cgroup's member list (`tasks`, `cgroup.procs`, `cgroup.threads`): on v1 an open
//!   descriptor keeps the pid list it loaded for as long as it is read at least once a
//!   second, so a kept one would never see a task come or go;
//! - a kept cgroup file whose cgroup was removed answers ENODEV (also when a cgroup of the
//!   same name was made since): it is dropped and the path opened again, which then finds
//!   the new cgroup or nothing;
//! - per thread, so no two reads share a descriptor's position, and bounded (least recently
//!   used dropped first);
//! - let go of once unused for [`IDLE`]: an open file of a removed cgroup keeps the dying
//!   cgroup in kernel memory, and containers come and go. A thread drops its idle
//!   descriptors when it next reads, and a sweeper thread every [`SWEEP_EVERY`] drops those
//!   of threads that do not read (a daemon nobody reads from, or a serving thread the
//!   kernel gives no request), so a removed cgroup is let go within `IDLE + SWEEP_EVERY` of
//!   its last read whatever the load.

use std::fs::File;
use std::io::{self, Read};
use std::num::NonZeroUsize;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Once, Weak};
use std::time::{Duration, Instant};

use lru::LruCache;
use nix::errno::Errno;
use nix::sys::statfs::{
    CGROUP_SUPER_MAGIC, CGROUP2_SUPER_MAGIC, PROC_SUPER_MAGIC, SYSFS_MAGIC, fstatfs,
};
use parking_lot::Mutex;

/// Descriptors of kernel files kept per thread: a reader's files take about 6, so this covers
/// a few dozen busy containers per thread; the daemon raises its descriptor limit to match.
pub const PER_THREAD: usize = 64;

/// Descriptors of processes' files kept per thread, besides [`PER_THREAD`]: pollers' cgroup
/// files and pid-namespace inits' start times, a few per busy container.
pub const PROCESS_PER_THREAD: usize = 32;

/// The files of a process that are kept: those read again and again for one reader (its
/// cgroups) or for its pid namespace's init (its start time, its status). All are made whole
/// by one `single_open` show, and answer ESRCH once the process is gone.
const PROCESS_FILES: [&str; 3] = ["cgroup", "stat", "status"];

/// Cgroup files listing members, whose v1 form caches the list per open descriptor
/// (`cgroup_pidlist_start` reuses it until a second passes without a read).
const MEMBER_LISTS: [&str; 3] = ["tasks", "cgroup.procs", "cgroup.threads"];

/// Files of `/proc` the kernel makes as one record (`single_open`): a read that returns less
/// than it asked for has the whole file. Other `/proc` files (`cpuinfo`, `diskstats`, `swaps`)
/// are lists of records, and a read can stop short before a record that would overflow the
/// kernel's buffer; those are read until a read returns nothing.
const PROC_SINGLE_RECORD: [&str; 4] = ["meminfo", "stat", "uptime", "loadavg"];

/// How long a descriptor is kept without being read.
pub const IDLE: Duration = Duration::from_secs(10);

/// How often the sweeper looks for idle descriptors of every thread.
pub const SWEEP_EVERY: Duration = Duration::from_secs(5);

/// One thread's kept descriptors, by path, with when each was last read. Locked by its
/// thread for each read, and by the sweeper for a moment every [`SWEEP_EVERY`].
type Shelf = Mutex<LruCache<PathBuf, (File, Instant, Ends)>>;

/// How to tell that a kept file was read whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ends {
    /// At a read shorter than asked (the file is one record, or one sysfs page): the read
    /// that would return nothing is a system call for nothing, on every file of every read.
    AtShortRead,
    /// At a read that returns nothing.
    AtEmptyRead,
}

/// Every thread's shelf, for the sweeper; a thread that ended leaves a dead entry, dropped
/// at the next sweep.
static SHELVES: Mutex<Vec<Weak<Shelf>>> = Mutex::new(Vec::new());

/// A new shelf of `capacity` descriptors, registered for the sweeper.
fn new_shelf(capacity: usize) -> Arc<Shelf> {
    let shelf = Arc::new(Mutex::new(LruCache::new(
        NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN),
    )));
    // Pruned here too: a process without the sweeper (a one-shot command) still starts
    // threads that read.
    let mut shelves = SHELVES.lock();
    shelves.retain(|w| w.strong_count() > 0);
    shelves.push(Arc::downgrade(&shelf));
    drop(shelves);
    shelf
}

thread_local! {
    /// Kernel files that are about no process.
    static KEPT: Arc<Shelf> = new_shelf(PER_THREAD);
    /// Processes' files ([`PROCESS_FILES`]).
    static KEPT_PROCESS: Arc<Shelf> = new_shelf(PROCESS_PER_THREAD);
}

/// Whether `path` is `<proc>/<pid>/<name>` with a numeric `<pid>` and a name in
/// [`PROCESS_FILES`]: the process's files that are kept (when on procfs, see `keepable`).
/// A thread's `<proc>/<pid>/task/<tid>/<name>` is not.
fn process_file(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str());
    let pid_dir = path.parent();
    let pid = pid_dir.and_then(Path::file_name).and_then(|n| n.to_str());
    let above = pid_dir.and_then(Path::parent).and_then(Path::file_name);
    match (name, pid) {
        (Some(name), Some(pid)) => {
            PROCESS_FILES.contains(&name)
                && !pid.is_empty()
                && pid.bytes().all(|b| b.is_ascii_digit())
                && above != Some("task".as_ref())
        }
        _ => false,
    }
}

/// The shelf `path` goes on.
fn shelf_of(path: &Path) -> &'static std::thread::LocalKey<Arc<Shelf>> {
    if process_file(path) {
        &KEPT_PROCESS
    } else {
        &KEPT
    }
}

/// Starts the sweeper, once per process. Long-lived readers (the serving worker, the seccomp
/// agent) call it; one-shot commands do not, and must not: the `reattach` helper has to stay
/// single-threaded for `setns(CLONE_NEWNS)`, which refuses a process with other threads.
pub fn start_sweeper() {
    static STARTED: Once = Once::new();
    STARTED.call_once(|| {
        let spawned = std::thread::Builder::new()
            .name("kept-sweeper".into())
            .spawn(|| {
                loop {
                    std::thread::sleep(SWEEP_EVERY);
                    sweep(Instant::now());
                }
            });
        if let Err(e) = spawned {
            log::warn!(
                "cannot start the sweeper of kept descriptors; an idle thread keeps its \
                 descriptors (and removed cgroups) until it reads again: {e}"
            );
        }
    });
}

/// Drops the descriptors of `shelf` unused for longer than [`IDLE`] at `now`.
fn drop_idle(shelf: &mut LruCache<PathBuf, (File, Instant, Ends)>, now: Instant) {
    while shelf
        .peek_lru()
        .is_some_and(|(_, (_, used, _))| now.saturating_duration_since(*used) > IDLE)
    {
        shelf.pop_lru();
    }
}

/// Drops every thread's descriptors that are idle at `now`, and the shelves of threads that
/// ended.
fn sweep(now: Instant) {
    let live: Vec<Arc<Shelf>> = {
        let mut shelves = SHELVES.lock();
        shelves.retain(|w| w.strong_count() > 0);
        shelves.iter().filter_map(Weak::upgrade).collect()
    };
    for shelf in live {
        drop_idle(&mut shelf.lock(), now);
    }
}

/// Whether an open file may be kept (a kernel file, and of a process's files only
/// [`PROCESS_FILES`]), and if so how its end is told.
fn keepable(path: &Path, file: &File) -> Option<Ends> {
    let fs = fstatfs(file).ok()?.filesystem_type();
    if [SYSFS_MAGIC, CGROUP_SUPER_MAGIC, CGROUP2_SUPER_MAGIC].contains(&fs) {
        // A cgroup file's `seq_show` prints it whole; a sysfs attribute is one page at most.
        // Member lists are never kept (see the module's doc). A cgroup may well have a
        // numeric name: only procfs has processes' files.
        let member_list = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| MEMBER_LISTS.contains(&n));
        return (!member_list).then_some(Ends::AtShortRead);
    }
    if fs != PROC_SUPER_MAGIC {
        return None;
    }
    if process_file(path) {
        return Some(Ends::AtShortRead);
    }
    let per_process = path.components().any(|c| {
        c.as_os_str()
            .to_str()
            .is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
    });
    if per_process {
        // `task/<tid>/...` and the like.
        return None;
    }
    let parent = path.parent().and_then(Path::file_name);
    let single = parent == Some("proc".as_ref())
        && path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| PROC_SINGLE_RECORD.contains(&n))
        || parent == Some("pressure".as_ref());
    Some(if single {
        Ends::AtShortRead
    } else {
        Ends::AtEmptyRead
    })
}

/// Where a file's bytes ended up.
enum Filled {
    /// `stack[..len]`.
    Stack(usize),
    /// Too large for the stack buffer.
    Heap(Vec<u8>),
}

/// One read at `offset`: positional for a kept kernel file (which is re-read from 0 each
/// time), sequential otherwise (a fixture may be a FIFO, which has no offsets).
fn read_once(file: &File, buf: &mut [u8], offset: usize, positional: bool) -> io::Result<usize> {
    if positional {
        file.read_at(buf, offset as u64)
    } else {
        (&mut &*file).read(buf)
    }
}

/// Whether a read that returned `n` of the `asked` bytes was the file's last: it returned
/// nothing, or less than asked of a file the kernel makes whole.
fn ended(n: usize, asked: usize, kept: Option<Ends>) -> bool {
    n == 0 || (n < asked && kept == Some(Ends::AtShortRead))
}

/// Reads the whole file from offset 0 into `stack`, continuing on the heap when it does not
/// fit. `kept`: read positionally, its end told as given; `None`: read sequentially to an
/// empty read.
fn fill(file: &File, stack: &mut [u8], kept: Option<Ends>) -> io::Result<Filled> {
    let positional = kept.is_some();
    let mut len = 0;
    while len < stack.len() {
        let asked = stack.len() - len;
        match read_once(file, &mut stack[len..], len, positional) {
            Ok(n) => {
                len += n;
                if ended(n, asked, kept) {
                    return Ok(Filled::Stack(len));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let mut heap = stack.to_vec();
    loop {
        heap.resize(len + 4096, 0);
        match read_once(file, &mut heap[len..], len, positional) {
            Ok(n) => {
                len += n;
                if ended(n, 4096, kept) {
                    heap.truncate(len);
                    return Ok(Filled::Heap(heap));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Whether an error on a kept descriptor means "open the path again": the cgroup was
/// removed (ENODEV) or the process is gone (ESRCH).
fn stale(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error().map(Errno::from_raw),
        Some(Errno::ENODEV | Errno::ESRCH)
    )
}

/// Reads all of `path` (through a kept descriptor where it may be kept) into `stack` and
/// hands the bytes to `f`.
pub fn read<T>(path: &Path, stack: &mut [u8], f: impl FnOnce(&[u8]) -> T) -> io::Result<T> {
    let now = Instant::now();
    let shelf = shelf_of(path);
    // A kept descriptor is read in place: no key to allocate, nothing to move.
    let kept = shelf.with(|k| {
        let mut k = k.lock();
        drop_idle(&mut k, now);
        let (file, used, ends) = k.get_mut(path)?;
        let result = fill(file, stack, Some(*ends));
        match &result {
            Ok(_) => *used = now,
            // Gone (ENODEV, ESRCH: opened again below) or failing: not kept any more.
            Err(_) => {
                k.pop(path);
            }
        }
        Some(result)
    });
    let filled = match kept {
        Some(Ok(bytes)) => bytes,
        Some(Err(e)) if !stale(&e) => return Err(e),
        _ => {
            let file = File::open(path)?;
            let keep = keepable(path, &file);
            let bytes = fill(&file, stack, keep)?;
            if let Some(ends) = keep {
                shelf.with(|k| k.lock().put(path.to_path_buf(), (file, now, ends)));
            }
            bytes
        }
    };
    Ok(match filled {
        Filled::Stack(len) => f(&stack[..len]),
        Filled::Heap(heap) => f(&heap),
    })
}

/// How many descriptors of kernel files about no process this thread keeps.
#[cfg(test)]
pub fn count() -> usize {
    KEPT.with(|k| k.lock().len())
}

/// How many descriptors of processes' files this thread keeps.
#[cfg(test)]
fn process_count() -> usize {
    KEPT_PROCESS.with(|k| k.lock().len())
}

/// Whether any thread keeps a descriptor of `path`.
#[cfg(test)]
fn kept_anywhere(path: &Path) -> bool {
    SHELVES
        .lock()
        .iter()
        .filter_map(Weak::upgrade)
        .any(|shelf| shelf.lock().contains(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sweeper_lets_go_of_the_descriptors_of_a_thread_that_reads_no_more() {
        // A file no other test reads.
        let path = Path::new("/proc/sys/kernel/random/boot_id");
        let (read_tx, read_rx) = std::sync::mpsc::channel();
        let (end_tx, end_rx) = std::sync::mpsc::channel::<()>();
        let idle = std::thread::spawn(move || {
            text(path).unwrap();
            read_tx.send(count()).unwrap();
            // Idle: no read, so nothing here drops the descriptor.
            end_rx.recv().unwrap();
            count()
        });
        assert!(read_rx.recv().unwrap() >= 1);
        assert!(kept_anywhere(path), "kept by the thread that read it");
        sweep(Instant::now());
        assert!(kept_anywhere(path), "used just now: kept");
        // Ages that thread's descriptors past IDLE (only its own: other tests' stay fresh).
        for shelf in SHELVES.lock().iter().filter_map(Weak::upgrade) {
            let mut shelf = shelf.lock();
            if shelf.contains(path) {
                for (_, (_, used, _)) in shelf.iter_mut() {
                    *used -= IDLE + Duration::from_secs(1);
                }
            }
        }
        sweep(Instant::now());
        assert!(
            !kept_anywhere(path),
            "idle past IDLE: closed while its thread sleeps"
        );
        end_tx.send(()).unwrap();
        assert_eq!(
            idle.join().unwrap(),
            0,
            "the thread's own count agrees (its other files were idle too)"
        );
    }

    #[test]
    fn descriptors_unused_for_a_while_are_let_go() {
        let meminfo = Path::new("/proc/meminfo");
        text(meminfo).unwrap();
        assert!(KEPT.with(|k| k.lock().contains(meminfo)));
        // Age every entry past IDLE, then read something else.
        KEPT.with(|k| {
            for (_, (_, used, _)) in k.lock().iter_mut() {
                *used -= IDLE + Duration::from_secs(1);
            }
        });
        text(Path::new("/proc/uptime")).unwrap();
        assert!(!KEPT.with(|k| k.lock().contains(meminfo)));
        assert_eq!(count(), 1, "only the file just read");
    }

    fn text(path: &Path) -> io::Result<String> {
        read(path, &mut [0u8; 64], |b| {
            String::from_utf8_lossy(b).into_owned()
        })
    }

    #[test]
    fn files_on_disk_are_never_kept() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("meminfo");
        std::fs::write(&p, "one").unwrap();
        let before = count();
        assert_eq!(text(&p).unwrap(), "one");
        // Replaced by a new file, as a test's fixture is: the new one is read.
        let q = dir.path().join("next");
        std::fs::write(&q, "two").unwrap();
        std::fs::rename(&q, &p).unwrap();
        assert_eq!(text(&p).unwrap(), "two");
        assert_eq!(count(), before);
    }

    #[test]
    fn proc_files_are_kept_and_read_afresh_and_a_processs_apart() {
        let meminfo = Path::new("/proc/meminfo");
        let first = text(meminfo).unwrap();
        assert!(
            first.starts_with("MemTotal:"),
            "larger than the stack buffer too"
        );
        // Past the stack buffer it ends at a short read: whole all the same.
        let keys = |t: &str| {
            t.lines()
                .map(|l| l.split(':').next().unwrap_or("").to_owned())
                .collect::<Vec<_>>()
        };
        let direct = std::fs::read_to_string(meminfo).unwrap();
        assert_eq!(keys(&text(meminfo).unwrap()), keys(&direct));
        let kept = count();
        assert!(kept >= 1);
        // /proc/uptime moves: a kept descriptor re-read at 0 shows the new value.
        let uptime = Path::new("/proc/uptime");
        let a = text(uptime).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(30));
        let b = text(uptime).unwrap();
        assert_ne!(a, b, "re-read from offset 0 regenerates");
        assert_eq!(count(), kept + 1);
        // A process's files: its cgroup, stat and status kept on a shelf of their own, its
        // threads' files not at all.
        let processes = process_count();
        let me = std::process::id();
        text(&PathBuf::from(format!("/proc/{me}/task/{me}/stat"))).unwrap();
        assert_eq!((count(), process_count()), (kept + 1, processes));
        text(&PathBuf::from(format!("/proc/{me}/stat"))).unwrap();
        assert_eq!((count(), process_count()), (kept + 1, processes + 1));
    }

    #[test]
    fn a_kept_file_of_a_process_that_is_gone_is_not_read() {
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .expect("sleep");
        let path = PathBuf::from(format!("/proc/{}/cgroup", child.id()));
        let before = text(&path).expect("a live process's cgroups");
        assert!(!before.is_empty());
        assert!(KEPT_PROCESS.with(|k| k.lock().contains(&path)), "kept");
        child.kill().unwrap();
        child.wait().unwrap();
        // The kept descriptor answers ESRCH; the path, opened again, no longer exists (or,
        // were the pid given out again, would be the new process's).
        let after = text(&path).expect_err("the process is gone");
        assert_eq!(after.kind(), io::ErrorKind::NotFound, "{after}");
        assert!(!KEPT_PROCESS.with(|k| k.lock().contains(&path)), "let go");
    }

    #[test]
    fn a_numerically_named_cgroups_files_are_kept() {
        let Some(root) = ["/sys/fs/cgroup/memory", "/sys/fs/cgroup"]
            .into_iter()
            .find(|d| Path::new(d).join("cgroup.procs").exists())
        else {
            panic!("no cgroup hierarchy at /sys/fs/cgroup/memory or /sys/fs/cgroup");
        };
        let dir = Path::new(root).join(format!("{}", 900_000 + std::process::id()));
        std::fs::create_dir(&dir).expect("a cgroup");
        let file = ["memory.limit_in_bytes", "cgroup.controllers"]
            .into_iter()
            .map(|f| dir.join(f))
            .find(|f| f.exists())
            .expect("a file of the cgroup");
        let kept = text(&file).map(|_| KEPT.with(|k| k.lock().contains(&file)));
        let processes = process_count();
        // The descriptor goes before the cgroup can be removed.
        KEPT.with(|k| k.lock().pop(&file));
        std::fs::remove_dir(&dir).expect("removing the cgroup");
        assert!(
            kept.expect("read"),
            "a cgroup named by digits is no process: kept"
        );
        assert_eq!(processes, process_count());
    }

    #[test]
    fn only_files_the_kernel_makes_whole_end_at_a_short_read() {
        let ends = |p: &str| keepable(Path::new(p), &File::open(p).unwrap());
        assert_eq!(ends("/proc/meminfo"), Some(Ends::AtShortRead));
        assert_eq!(ends("/proc/stat"), Some(Ends::AtShortRead));
        assert_eq!(
            ends("/sys/devices/system/cpu/online"),
            Some(Ends::AtShortRead)
        );
        // Lists of records: a read may stop short before one that would not fit.
        assert_eq!(ends("/proc/cpuinfo"), Some(Ends::AtEmptyRead));
        assert_eq!(ends("/proc/vmstat"), Some(Ends::AtEmptyRead));
        assert_eq!(ends("/proc/self/stat"), Some(Ends::AtEmptyRead));
        let me = std::process::id();
        for file in ["cgroup", "stat", "status"] {
            assert_eq!(ends(&format!("/proc/{me}/{file}")), Some(Ends::AtShortRead));
        }
        assert_eq!(ends(&format!("/proc/{me}/environ")), None);
        assert_eq!(ends(&format!("/proc/{me}/task/{me}/stat")), None);
        let cgroup_file = [
            "/sys/fs/cgroup/cgroup.controllers",
            "/sys/fs/cgroup/cpuset/cpuset.cpus",
        ]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("a cgroup file at the root of a hierarchy");
        assert_eq!(ends(cgroup_file), Some(Ends::AtShortRead));
    }

    #[test]
    fn a_list_of_records_longer_than_the_stack_buffer_is_read_whole() {
        // /proc/zoneinfo: one record per zone, over 4 KiB.
        let path = Path::new("/proc/zoneinfo");
        let lines = |t: &str| {
            t.lines()
                .map(|l| l.split(' ').next().unwrap_or("").to_owned())
                .collect::<Vec<_>>()
        };
        let direct = std::fs::read_to_string(path).unwrap();
        assert!(direct.len() > 4096, "{} bytes", direct.len());
        for _ in 0..2 {
            let kept = read(path, &mut [0u8; 4096], |b| {
                String::from_utf8_lossy(b).into_owned()
            })
            .unwrap();
            assert_eq!(lines(&kept), lines(&direct));
        }
    }

    #[test]
    fn the_cache_is_bounded() {
        let before = count();
        let dir = Path::new("/proc/sys/kernel");
        let mut read = 0;
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            if e.path().is_file() && text(&e.path()).is_ok() {
                read += 1;
            }
        }
        assert!(read > PER_THREAD, "{read} files read");
        assert!(count() <= PER_THREAD && count() >= before.min(PER_THREAD));
    }
}
