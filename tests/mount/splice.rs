//! sendfile and splice readers (busybox `cat`, Python's `shutil.copyfile`): the kernel serves
//! them through the inode's page cache, shared by every reader, so the daemon refuses those
//! reads (EINVAL) and the readers fall back to read(2), which gets each reader its own view.
//!
//! The race reproducer runs against our daemon (no wrong read) and against the C lxcfs, which
//! serves the page cache and gets wrong reads: so the reproducer is shown able to fail.

use std::fs::{self, File};
use std::io::Read;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use nix::unistd::{gettid, pipe};

use crate::common::*;

/// Rounds of the race: each reader makes two splice reads (into a file, into a pipe) and a
/// read(2) per round, so 2 x 2 x 150 = 600 splice reads in all. lxcfs 5.0.3 gets most of its
/// host reader's splice reads wrong on this kernel (the size clamp below), so against lxcfs a
/// run without a single wrong read does not happen.
const ROUNDS: usize = 150;

/// How long one reader's loop may take (it takes about 2 s).
const RACE_LIMIT: Duration = Duration::from_secs(120);

/// The file both readers race on: short, and different for a reader pinned to one CPU.
const ONLINE: &str = "sys/devices/system/cpu/online";

/// One reader's loop, run in its cgroup: per round busybox `cat` (sendfile, so splice) into a
/// regular file and into a pipe, then `dd` (read(2)), each into a file of its own, so that
/// every byte, final newline included, is compared.
const READER_LOOP: &str = r#"f=$1 out=$2 n=$3 bb=$4 i=0
while [ "$i" -lt "$n" ]; do
  "$bb" cat "$f" > "$out/file.$i" || exit 1
  "$bb" cat "$f" | dd of="$out/pipe.$i" status=none || exit 1
  dd if="$f" of="$out/read.$i" bs=65536 status=none || exit 1
  i=$((i + 1))
done"#;

/// The busybox on PATH (the one `scripts/deps.sh test` installs), or `None` after saying
/// why the test cannot run.
fn busybox() -> Option<PathBuf> {
    let found = find_program("busybox");
    if found.is_none() {
        skip("busybox is not installed (apt-get install busybox-static)");
    }
    found
}

/// The CPUs of the cpuset hierarchy's root (what an unrestricted reader sees online), as a
/// kernel CPU list.
fn root_cpus() -> String {
    let root = v1_mounts()
        .remove("cpuset")
        .expect("no v1 cpuset hierarchy (require!(mount) checks it)");
    fs::read_to_string(root.join("cpuset.cpus"))
        .expect("reading the root cpuset.cpus")
        .trim()
        .to_string()
}

/// The CPUs of a kernel CPU list such as `0-3,6`.
fn cpus_of(list: &str) -> Vec<u32> {
    let num = |s: &str| {
        s.parse::<u32>()
            .unwrap_or_else(|e| panic!("CPU list {list:?}: {e}"))
    };
    let mut cpus = Vec::new();
    for part in list.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => cpus.extend(num(a)..=num(b)),
            None => cpus.push(num(part)),
        }
    }
    cpus
}

/// The first CPU of the host's cpuset, for a reader pinned to one CPU; `None` (after saying
/// why) on a host with fewer than two, where a pinned reader's view is the host's and the
/// race could not tell one view from the other.
fn cpu_to_pin() -> Option<u32> {
    let list = root_cpus();
    let cpus = cpus_of(&list);
    if cpus.len() < 2 {
        skip(&format!(
            "the host has fewer than two CPUs (cpuset {list:?}): a reader pinned to one CPU \
             would see the host's CPU list, so the race could not show a wrong view"
        ));
        return None;
    }
    Some(cpus[0])
}

/// What one reader of the race read.
struct Reader {
    /// Which reader, for messages.
    name: &'static str,
    /// Its read(2) content (every round's read(2) agreed on it).
    view: String,
    /// Its splice reads whose content differed from `view`, as `file.7 "0-"`.
    wrong: Vec<String>,
    /// How many splice reads it made.
    splices: usize,
}

/// Starts `argv` (a reader's loop) in `cg`, its output kept for [`finish_reader`].
fn start_reader(cg: &Cgroup, argv: &[&str]) -> Child {
    cg.command(argv)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting a reader loop {argv:?}: {e}"))
}

/// Waits for a reader loop (killing it after [`RACE_LIMIT`]), asserts it exited 0 and
/// returns what it printed. Its output is a few lines, which the pipe holds until then.
fn finish_reader(name: &str, mut child: Child) -> String {
    let Some(status) = wait_timeout(&mut child, RACE_LIMIT) else {
        signal(child.id(), nix::sys::signal::Signal::SIGKILL);
        let _ = child.wait();
        panic!("the {name} reader's loop did not finish within {RACE_LIMIT:?} (killed it)");
    };
    let (mut stdout, mut stderr) = (String::new(), String::new());
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut stdout);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    assert_ne!(
        status.code(),
        Some(97),
        "the {name} reader could not join its cgroup: {stderr}"
    );
    assert!(
        status.success(),
        "the {name} reader's loop failed ({status}): {stderr}"
    );
    stdout
}

/// Reads back what a reader's loop wrote into `out`: its read(2) view (the same in every
/// round, else the file is not a stable place to race on) and its splice reads that differ.
fn collect(name: &'static str, out: &Path, rounds: usize) -> Reader {
    let read = |f: String| {
        let p = out.join(&f);
        let bytes = fs::read(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()));
        (f, String::from_utf8_lossy(&bytes).into_owned())
    };
    let view = read("read.0".into()).1;
    let mut wrong = Vec::new();
    for i in 0..rounds {
        let (f, again) = read(format!("read.{i}"));
        assert_eq!(
            again, view,
            "the {name} reader's read(2) of round {i} ({f}) differs from round 0's"
        );
        for kind in ["file", "pipe"] {
            let (f, got) = read(format!("{kind}.{i}"));
            if got != view {
                wrong.push(format!("{f} {got:?}"));
            }
        }
    }
    Reader {
        name,
        view,
        wrong,
        splices: 2 * rounds,
    }
}

/// The race: a reader pinned to one CPU and a reader on every CPU of the host read
/// `<mnt>/sys/devices/system/cpu/online` at the same time, `rounds` times each, with busybox
/// `cat` and with read(2). Asserts that their read(2) views differ (or the race could not
/// show anything) and returns what each read.
fn race(mnt: &Path, pin: u32, rounds: usize, busybox: &Path) -> [Reader; 2] {
    let pinned = Cgroup::new();
    pinned.set_cpus(&pin.to_string());
    let host = Cgroup::new();
    let dir = TestDir::new();
    let file = mnt.join(ONLINE);
    let file = file.to_str().expect("utf-8 path");
    let outs = ["pinned", "host"].map(|name| {
        let out = dir.join(name);
        fs::create_dir(&out).expect("creating a reader's output dir");
        out
    });
    let rounds_arg = rounds.to_string();
    let busybox = busybox.to_str().expect("utf-8 path");
    let out_args = outs
        .each_ref()
        .map(|o| o.to_str().expect("utf-8 path").to_string());
    let children = [(&pinned, &out_args[0]), (&host, &out_args[1])].map(|(cg, out)| {
        start_reader(
            cg,
            &[
                "sh",
                "-c",
                READER_LOOP,
                "sh",
                file,
                out,
                &rounds_arg,
                busybox,
            ],
        )
    });
    for (name, child) in ["pinned", "host"].into_iter().zip(children) {
        finish_reader(name, child);
    }
    let readers = [
        collect("pinned", &outs[0], rounds),
        collect("host", &outs[1], rounds),
    ];
    assert_ne!(
        readers[0].view, readers[1].view,
        "with read(2), the reader pinned to CPU {pin} and the reader on every CPU must see \
         different lists, or the race cannot show a reader getting the other's"
    );
    readers
}

/// How many splice reads of the race were wrong, and a few of them for messages.
fn wrong_reads(readers: &[Reader]) -> (usize, usize, String) {
    let wrong = readers.iter().map(|r| r.wrong.len()).sum();
    let total = readers.iter().map(|r| r.splices).sum();
    let detail = readers
        .iter()
        .map(|r| {
            format!(
                "{} reader (read(2) view {:?}): {} of {} wrong, e.g. {:?}",
                r.name,
                r.view,
                r.wrong.len(),
                r.splices,
                &r.wrong[..r.wrong.len().min(5)]
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    (wrong, total, detail)
}

/// Every splice read of the race gets the reader's own view, as its read(2) does.
#[test]
fn splice_readers_get_their_own_view() {
    require!(mount);
    let Some(busybox) = busybox() else { return };
    let Some(pin) = cpu_to_pin() else { return };
    assert_busybox_cat_takes_sendfile(&busybox);
    let d = Daemon::start(&[]);
    let readers = race(&d.mnt, pin, ROUNDS, &busybox);
    let (wrong, total, detail) = wrong_reads(&readers);
    assert_eq!(
        (wrong, total),
        (0, 4 * ROUNDS),
        "splice reads that differed from the reader's read(2), of all splice reads:\n{detail}"
    );
}

/// The same race against the C lxcfs, which serves the page cache: its splice reads come out
/// wrong, so the race above is able to fail. Not by luck of timing: splice from a FUSE file is
/// clamped to the inode's cached size, and a pinned reader's short page-cache fill ("0\n")
/// shrinks that size, so every host splice read after it is cut to "0-" (about 295 of the
/// host reader's 300 here); a pinned read that finds the host's pages gets "0-" as well.
#[test]
fn splice_race_catches_lxcfs() {
    require!(mount);
    require!(
        program "lxcfs",
        "the C lxcfs is not installed (apt-get install lxcfs fuse3)"
    );
    let Some(busybox) = busybox() else { return };
    let Some(pin) = cpu_to_pin() else { return };
    let d = Daemon::start_c_lxcfs();

    // The EINVAL that `sendfile_is_refused_and_read_works` expects is our daemon's doing: on
    // lxcfs the same call copies.
    let src = File::open(d.path(ONLINE)).expect("opening lxcfs's online");
    let (_pipe_r, pipe_w) = pipe().expect("pipe");
    let r = sendfile(pipe_w.as_fd(), src.as_fd(), 1 << 20);
    assert!(
        r.as_ref().is_ok_and(|n| *n > 0),
        "sendfile from lxcfs's {ONLINE} into a pipe: expected bytes copied, got {r:?}"
    );

    let readers = race(&d.mnt, pin, ROUNDS, &busybox);
    let (wrong, total, detail) = wrong_reads(&readers);
    eprintln!("lxcfs: {wrong} of {total} splice reads wrong\n{detail}");
    assert!(
        wrong > 0,
        "lxcfs serves splice reads from the shared page cache: expected wrong reads, got none \
         of {total}:\n{detail}"
    );
}

/// sendfile(2) from a mounted file, into a pipe and into a regular file, fails with EINVAL
/// because the daemon refused the page-cache read (its `-d` log names this thread), and
/// read(2) of the same open file then reads the whole file.
#[test]
fn sendfile_is_refused_and_read_works() {
    require!(mount);
    let d = Daemon::start(&["-d"]);
    let dir = TestDir::new();
    let tid = gettid().as_raw() as u32;
    for rel in [ONLINE, "proc/meminfo"] {
        let path = d.path(rel);
        let (pipe_r, pipe_w) = pipe().expect("pipe");
        let regular = File::create(dir.join("copy")).expect("creating the copy");
        for (target, to) in [
            ("a pipe", pipe_w.as_fd()),
            ("a regular file", regular.as_fd()),
        ] {
            let mut src = File::open(&path).expect("opening the mounted file");
            let before = refusals_by(&d.log(), tid);
            let r = sendfile(to, src.as_fd(), 1 << 20);
            assert_eq!(
                errno_of(&r),
                Some(nix::libc::EINVAL),
                "sendfile of {rel} into {target}: expected EINVAL, got {r:?}"
            );
            assert!(
                wait_refusals_after(&d, tid, before),
                "sendfile of {rel} into {target} failed, but the daemon's log shows no \
                 \"{REFUSAL} ... by pid {tid}\": the EINVAL did not come from the daemon; \
                 log:\n{}",
                d.log()
            );
            let mut text = String::new();
            src.read_to_string(&mut text)
                .unwrap_or_else(|e| panic!("read(2) of {rel} after the failed sendfile: {e}"));
            assert!(
                text.ends_with('\n') && text.len() > 1,
                "read(2) of {rel} after the failed sendfile: expected the whole file, read {text:?}"
            );
            if rel == ONLINE {
                assert_eq!(
                    text,
                    fs::read_to_string(&path).expect("reading online again"),
                    "read(2) of {rel} after the failed sendfile: the same as a fresh read"
                );
            } else {
                assert_eq!(
                    keys(&text),
                    keys(&fs::read_to_string(&path).expect("reading meminfo again")),
                    "read(2) of {rel} after the failed sendfile: every line"
                );
            }
        }
        drop(pipe_r);
    }
}

/// Waits (up to 5 s) for the log to show more refusals by `tid` than `before`.
fn wait_refusals_after(d: &Daemon, tid: u32, before: usize) -> bool {
    wait_until(Duration::from_secs(5), || {
        refusals_by(&d.log(), tid) > before
    })
}

/// Copies each Python reader makes in [`shutil_copyfile_copies_the_readers_own_view`].
const SHUTIL_ROUNDS: usize = 300;

/// A Python reader: its own read(2) view of `src`, then `shutil.copyfile(src, dst)` `n` times
/// counting the copies that differ from that view, then one copy of `meminfo` to
/// `dst.meminfo`. Prints `PID WRONG VIEW SAMPLES`, the bytes in hex (a copy served from the
/// page cache can be a page of zeros, so the samples are cut to 16 bytes).
const SHUTIL_LOOP: &str = r#"import os, shutil, sys
src, dst, n, meminfo = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
with open(src, "rb") as f:
    view = f.read()
wrong = []
for _ in range(n):
    shutil.copyfile(src, dst)
    with open(dst, "rb") as f:
        got = f.read()
    if got != view:
        wrong.append(got[:16].hex())
shutil.copyfile(meminfo, dst + ".meminfo")
print(os.getpid(), len(wrong), view.hex(), ",".join(wrong[:5]) or "-")
"#;

/// What one Python reader printed.
struct Copier {
    pid: u32,
    wrong: usize,
    /// Its read(2) view, in hex.
    view: String,
    /// A few wrong copies, in hex.
    samples: String,
}

fn parse_copier(name: &str, out: &str) -> Copier {
    let fields: Vec<&str> = out.split_whitespace().collect();
    let [pid, wrong, view, samples] = fields[..] else {
        panic!("the {name} Python reader printed {out:?}, not PID WRONG VIEW SAMPLES");
    };
    let num = |s: &str| {
        s.parse::<usize>()
            .unwrap_or_else(|e| panic!("the {name} Python reader printed {out:?}: {e}"))
    };
    Copier {
        pid: num(pid) as u32,
        wrong: num(wrong),
        view: view.to_string(),
        samples: samples.to_string(),
    }
}

/// The bytes of `text` in hex, as Python's `bytes.hex()` writes them.
fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

/// Python's `shutil.copyfile` copies with sendfile, which the daemon refuses (each reader's
/// pid is in its log), and falls back to read(2): two readers copying at the same time, one
/// pinned to a CPU and limited to 128 MiB, one on the whole host, each get their own view in
/// every copy.
#[test]
fn shutil_copyfile_copies_the_readers_own_view() {
    require!(mount);
    require!(
        program "python3",
        "python3 is not installed (scripts/deps.sh test installs it)"
    );
    let Some(pin) = cpu_to_pin() else { return };
    let pinned = Cgroup::new();
    pinned
        .set_memory_limit(128 * MIB)
        .set_cpus(&pin.to_string());
    let host = Cgroup::new();
    let d = Daemon::start(&["-d"]);
    let dir = TestDir::new();
    let (online, meminfo) = (d.arg(ONLINE), d.arg("proc/meminfo"));
    let rounds = SHUTIL_ROUNDS.to_string();
    let dsts = ["pinned", "host"].map(|n| dir.join(n).to_str().expect("utf-8 path").to_string());
    let children = [(&pinned, &dsts[0]), (&host, &dsts[1])].map(|(cg, dst)| {
        start_reader(
            cg,
            &[
                "python3",
                "-c",
                SHUTIL_LOOP,
                &online,
                dst,
                &rounds,
                &meminfo,
            ],
        )
    });
    let mut copiers = Vec::new();
    for (name, child) in ["pinned", "host"].into_iter().zip(children) {
        copiers.push((name, parse_copier(name, &finish_reader(name, child))));
    }
    for (name, c) in &copiers {
        assert!(
            wait_refusals(&d, c.pid) > 0,
            "the {name} reader's shutil.copyfile (pid {}) left no \"{REFUSAL} ... by pid {}\" \
             in the daemon's log: it did not try sendfile, so this test shows no fallback",
            c.pid,
            c.pid
        );
        assert_eq!(
            c.wrong, 0,
            "the {name} reader: copies that differ from its read(2) view (hex {}), of \
             {SHUTIL_ROUNDS}; some, in hex: {}",
            c.view, c.samples
        );
    }
    let (pinned_view, host_view) = (&copiers[0].1.view, &copiers[1].1.view);
    assert_eq!(
        *pinned_view,
        hex(&format!("{pin}\n")),
        "the reader pinned to CPU {pin}: its online list, in hex"
    );
    assert_ne!(
        pinned_view, host_view,
        "the two readers must see different lists, or a copy of the other's would go unseen"
    );
    let copied = |dst: &str| {
        fs::read_to_string(format!("{dst}.meminfo"))
            .unwrap_or_else(|e| panic!("reading the meminfo copy of {dst}: {e}"))
    };
    let (small, large) = (copied(&dsts[0]), copied(&dsts[1]));
    assert_eq!(
        kb(&small, "MemTotal"),
        131072,
        "shutil.copyfile of meminfo by a reader limited to 128 MiB, copied:\n{small}"
    );
    let host_total = kb(&crate::host("/proc/meminfo"), "MemTotal");
    assert_eq!(
        kb(&large, "MemTotal"),
        host_total,
        "shutil.copyfile of meminfo by an unlimited reader, copied:\n{large}"
    );
}

/// The busybox guard the splice loops rely on fails for a `cat` that copies with read(2): a
/// stand-in that runs `dd` leaves no refused page-cache read in the daemon's log.
#[test]
fn busybox_guard_catches_a_read_only_cat() {
    require!(mount);
    let dir = TestDir::new();
    let fake = dir.join("busybox");
    fs::write(
        &fake,
        "#!/bin/sh\n# busybox cat FILE, copied with read(2)\nexec dd if=\"$2\" bs=65536 status=none\n",
    )
    .expect("writing the stand-in busybox");
    fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("making the stand-in executable");
    let caught = std::panic::catch_unwind(|| assert_busybox_cat_takes_sendfile(&fake));
    let message = caught
        .err()
        .and_then(|p| p.downcast_ref::<String>().cloned())
        .expect("the guard must fail for a cat that copies with read(2)");
    assert!(
        message.contains("did not copy with sendfile(2)"),
        "the guard failed, but not for want of sendfile: {message}"
    );
}
