//! Per-container swap on cgroup v1: a `memory.memsw.limit_in_bytes` 64 MiB above the memory
//! limit shown as SwapTotal 65536 kB and as the `none virtual` line of `proc/swaps`
//! (docs/semantics.md, proc/meminfo and proc/swaps), with the C lxcfs beside ours.
//!
//! Swap is shown only when the host has some. When it has none (or not more than the 64 MiB
//! the tests limit to), each test adds a 128 MiB swapfile under the target directory with
//! `swapon`, and `swapoff`s and deletes it on drop. That changes the host's SwapTotal, which
//! other tests compare with: these tests are a test binary of their own (cargo runs test
//! binaries one after another), and they take turns within it.

#[macro_use]
mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};

use common::{
    Bracketed, Cgroup, Daemon, MEM_SLACK_KB, MIB, checked, kb, line_of, skip, try_kb, unique,
};

/// The swap the tests give a cgroup, in kB.
const SWAP_KB: u64 = 65536;
/// The memory limit they set, in bytes.
const LIMIT: u64 = 256 * MIB;
/// The size of the swapfile added to a host without enough swap, in MiB.
const SWAPFILE_MIB: u64 = 128;

/// Held by the test that has swap on the host to itself.
static TURN: Mutex<()> = Mutex::new(());

/// More swap on the host than [`SWAP_KB`] for as long as it lives, and this binary's turn.
struct HostSwap {
    /// The swapfile this test added, if it needed one.
    file: Option<PathBuf>,
    _turn: MutexGuard<'static, ()>,
}

impl HostSwap {
    /// Waits for this binary's turn and adds a swapfile when the host has no more swap than
    /// [`SWAP_KB`]. `None` (after [`skip`] said why) when swap cannot be added.
    fn ensure() -> Option<HostSwap> {
        let turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
        if host_swap_kb() > SWAP_KB {
            return Some(HostSwap {
                file: None,
                _turn: turn,
            });
        }
        for prog in ["mkswap", "swapon", "swapoff"] {
            if !common::have_program(prog) {
                skip(&format!(
                    "the host has no swap and {prog} (util-linux) is not installed to add some"
                ));
                return None;
            }
        }
        let file = Path::new(env!("CARGO_TARGET_TMPDIR")).join(unique("swapfile"));
        // From here on, drop takes the file away again (and swapoff's it, if it got that far).
        let swap = HostSwap {
            file: Some(file.clone()),
            _turn: turn,
        };
        let path = file.to_str().expect("utf-8 path");
        let count = format!("count={SWAPFILE_MIB}");
        let of = format!("of={path}");
        let dd = ["dd", "if=/dev/zero", &of, "bs=1M", &count, "status=none"];
        checked(command(&dd), &dd);
        fs::set_permissions(&file, fs::Permissions::from_mode(0o600))
            .unwrap_or_else(|e| panic!("chmod 600 {path}: {e}"));
        checked(command(&["mkswap", path]), &["mkswap", path]);
        let out = command(&["swapon", path])
            .output()
            .unwrap_or_else(|e| panic!("running swapon: {e}"));
        if !out.status.success() {
            skip(&format!(
                "the host has no swap, and swapon {path} failed (can the target directory's \
                 filesystem hold a swapfile?): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
            return None;
        }
        assert!(
            host_swap_kb() > SWAP_KB,
            "after swapon {path} the host should have more than {SWAP_KB} kB of swap"
        );
        Some(swap)
    }
}

impl Drop for HostSwap {
    fn drop(&mut self) {
        let Some(file) = &self.file else { return };
        let listed = || {
            fs::read_to_string("/proc/swaps").is_ok_and(|t| t.contains(&*file.to_string_lossy()))
        };
        if listed() {
            let _ = Command::new("swapoff")
                .arg(file)
                .stdin(Stdio::null())
                .status();
        }
        if listed() {
            eprintln!("warning: could not swapoff {}", file.display());
        } else {
            let _ = fs::remove_file(file);
        }
    }
}

/// `argv` as a command with no input.
fn command(argv: &[&str]) -> Command {
    let mut cmd = Command::new(argv[0]);
    cmd.args(&argv[1..]).stdin(Stdio::null());
    cmd
}

/// The host's SwapTotal, in kB.
fn host_swap_kb() -> u64 {
    kb(
        &fs::read_to_string("/proc/meminfo").expect("reading /proc/meminfo"),
        "SwapTotal",
    )
}

/// The header of the host's /proc/swaps.
fn host_swaps_header() -> String {
    let text = fs::read_to_string("/proc/swaps").expect("reading /proc/swaps");
    text.lines().next().unwrap_or_default().to_string()
}

/// The `none virtual` line of a swap of `size` kB with `used` kB used, laid out as the
/// kernel's `swap_show` lays out a device.
fn virtual_line(size: u64, used: u64) -> String {
    let tab = |n: u64| if n < 10_000_000 { "\t\t" } else { "\t" };
    format!(
        "{:<40}virtual\t\t{size}{}{used}{}0",
        "none",
        tab(size),
        tab(used)
    )
}

/// A cgroup with the 256 MiB memory limit, and with memory + swap 64 MiB above it when
/// `memsw`. Returns `None` (after [`skip`]) when the kernel does not account swap per
/// cgroup.
fn limited_cgroup(memsw: bool) -> Option<Cgroup> {
    let cg = Cgroup::new();
    if !cg.has_memsw() {
        skip(
            "the kernel does not account swap per cgroup (no memory.memsw.* files): boot with \
             swapaccount=1",
        );
        return None;
    }
    cg.set_memory_limit(LIMIT);
    if memsw {
        cg.set_memsw_limit(LIMIT + SWAP_KB * 1024);
    }
    Some(cg)
}

/// Asserts that the cgroup did not swap while `r` was read, so that its swap use is 0 but for
/// the kernel's charge batching between reading memsw and memory usage.
#[track_caller]
fn assert_no_swap_used(r: &Bracketed) {
    for c in [&r.around.before, &r.around.after] {
        assert_eq!(
            c.memory_stat.get("total_swap"),
            Some(&0),
            "the cgroup should not have swapped (memory.stat total_swap)"
        );
    }
}

/// Asserts what a reader of `meminfo` and `swaps` sees with swap shown and `total` kB of it:
/// SwapTotal, SwapFree = SwapTotal − (almost) nothing used, SwapCached 0, and `swaps` the
/// host's header and one `none virtual` line of that size with the same use.
#[track_caller]
fn assert_swap_shown(meminfo: &str, swaps: &str, total: u64, who: &str) {
    let ctx = format!("{who}; meminfo:\n{meminfo}\nswaps:\n{swaps}");
    assert_eq!(kb(meminfo, "SwapTotal"), total, "SwapTotal; {ctx}");
    let used = total.saturating_sub(kb(meminfo, "SwapFree"));
    assert!(
        used <= MEM_SLACK_KB,
        "SwapFree = SwapTotal − the cgroup's swap use (none); {ctx}"
    );
    assert_eq!(kb(meminfo, "SwapCached"), 0, "SwapCached; {ctx}");
    let want = format!("{}\n{}\n", host_swaps_header(), virtual_line(total, used));
    assert_eq!(swaps, want, "swaps: the header and one virtual swap; {ctx}");
}

/// `memory.memsw.limit_in_bytes` 64 MiB above `memory.limit_in_bytes`: 64 MiB of swap in
/// meminfo and swaps, and none with `-u`.
#[test]
fn memsw_limit_is_the_swap_shown() {
    require!(mount);
    let Some(cg) = limited_cgroup(true) else {
        return;
    };
    let Some(_swap) = HostSwap::ensure() else {
        return;
    };
    let d = Daemon::start(&[]);
    let no_swap = Daemon::start(&["-u"]);
    let files = ["proc/meminfo", "proc/swaps"];
    let paths: Vec<String> = files
        .iter()
        .map(|f| d.arg(f))
        .chain(files.iter().map(|f| no_swap.arg(f)))
        .collect();
    let r = cg.read_bracketed("", &paths, false);
    assert_no_swap_used(&r);
    assert_swap_shown(
        &r.texts[0],
        &r.texts[1],
        SWAP_KB,
        "memsw limit = memory limit + 64 MiB",
    );
    assert_eq!(
        kb(&r.texts[0], "MemTotal"),
        LIMIT / 1024,
        "the memsw limit changes only swap; meminfo:\n{}",
        r.texts[0]
    );

    let (meminfo, swaps) = (&r.texts[2], &r.texts[3]);
    for key in ["SwapTotal", "SwapFree"] {
        assert_eq!(kb(meminfo, key), 0, "-u: {key} 0; meminfo:\n{meminfo}");
    }
    assert_eq!(
        swaps,
        &format!("{}\n", host_swaps_header()),
        "-u: swaps is the header only"
    );
}

/// A memory limit alone: the swap is the host's (the limit on memory + swap is none), as
/// one `none virtual` line rather than the host's devices.
#[test]
fn memory_limit_alone_shows_the_hosts_swap() {
    require!(mount);
    let Some(cg) = limited_cgroup(false) else {
        return;
    };
    let Some(_swap) = HostSwap::ensure() else {
        return;
    };
    let d = Daemon::start(&[]);
    let r = cg.read_bracketed("", &[d.arg("proc/meminfo"), d.arg("proc/swaps")], false);
    assert_no_swap_used(&r);
    assert_swap_shown(&r.texts[0], &r.texts[1], host_swap_kb(), "no memsw limit");
}

/// Beside lxcfs: with no memsw limit both show the host's swap; with one, lxcfs 5.0.3 shows
/// min(memory + swap limit, host SwapTotal) ("the lesser of the RAM+SWAP limit or the SWAP
/// device size", its source says), counting the memory limit as swap, while ours shows the
/// 64 MiB of swap the limits allow. Both agree on the swap used.
#[test]
fn swap_versus_lxcfs() {
    require!(mount);
    require!(
        program "lxcfs",
        "the C lxcfs is not installed (apt-get install lxcfs fuse3)"
    );
    let Some(plain) = limited_cgroup(false) else {
        return;
    };
    let Some(limited) = limited_cgroup(true) else {
        return;
    };
    let Some(_swap) = HostSwap::ensure() else {
        return;
    };
    let ours = Daemon::start(&[]);
    let theirs = Daemon::start_c_lxcfs();
    let host_kb = host_swap_kb();
    for (cg, ours_kb, theirs_kb) in [
        (&plain, host_kb, host_kb),
        (&limited, SWAP_KB, (LIMIT / 1024 + SWAP_KB).min(host_kb)),
    ] {
        let files = ["proc/meminfo", "proc/swaps"];
        let paths: Vec<String> = files
            .iter()
            .map(|f| ours.arg(f))
            .chain(files.iter().map(|f| theirs.arg(f)))
            .collect();
        let r = cg.read_bracketed("", &paths, true);
        assert_no_swap_used(&r);
        let (om, ts) = (&r.texts[0], &r.texts[3]);
        assert_swap_shown(om, &r.texts[1], ours_kb, "ours");
        let tm = &r.texts[2];
        let both = format!("ours:\n{om}\nlxcfs:\n{tm}\nlxcfs swaps:\n{ts}");
        assert_eq!(
            kb(tm, "SwapTotal"),
            theirs_kb,
            "lxcfs's SwapTotal: min(memory + swap limit, host SwapTotal {host_kb}); {both}"
        );
        let used = |m: &str| kb(m, "SwapTotal") - try_kb(m, "SwapFree").unwrap_or(0);
        assert!(
            used(om).abs_diff(used(tm)) <= MEM_SLACK_KB,
            "the swap used differs from lxcfs; {both}"
        );
        let fields: Vec<&str> = ts
            .lines()
            .nth(1)
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        assert_eq!(
            fields[..fields.len().min(3)],
            ["none", "virtual", &theirs_kb.to_string()],
            "lxcfs's swaps line; {both}"
        );
        assert_eq!(line_of(om, "MemTotal"), line_of(tm, "MemTotal"), "{both}");
    }
}
