//! `st_size` of the served files: above zero, whole pages, and never below what a reader
//! gets, so a reader that trusts it (Node's `readFileSync`: `fstat`, then read at most
//! `st_size` bytes) gets the whole file.

use std::path::Path;

use crate::common::*;

/// Reads `path` as Node's `readFileSync` does: the size from `stat`, then at most that many
/// bytes (everything when the size is 0). Prints the size on a line of its own first.
const SIZED_READ: &str = r#"s=$(stat -c %s "$1") || exit 1
echo "$s"
if [ "$s" -eq 0 ]; then exec cat "$1"; fi
exec head -c "$s" "$1""#;

/// What one reader saw of one file.
struct Sized {
    /// `st_size` as the reader's `stat` saw it.
    size: u64,
    /// What a read of at most `size` bytes returned.
    sized: String,
    /// A full read right after.
    full: String,
}

/// The size, the sized read and a full read of `path` by a reader in `cg`.
fn read_sized(cg: &Cgroup, path: &Path) -> Sized {
    let p = path.to_str().expect("utf-8 path");
    let out = cg.run(&["sh", "-c", SIZED_READ, "sh", p]);
    let (size, sized) = out.split_once('\n').expect("the size line, then the file");
    Sized {
        size: size
            .parse()
            .unwrap_or_else(|e| panic!("stat of {p} printed {size:?}: {e}")),
        sized: sized.to_string(),
        full: cg.read(path),
    }
}

/// The rules for a file's size: above zero (the kernel's splice path stops at a size of
/// 0), whole pages, and not below the content the reader gets.
fn check_size(s: &Sized) -> Result<(), String> {
    let len = s.full.len() as u64;
    if s.size == 0 || !s.size.is_multiple_of(4096) {
        return Err(format!(
            "size {} is not a positive multiple of 4096",
            s.size
        ));
    }
    if s.size < len {
        return Err(format!("size {} is below the {len} bytes served", s.size));
    }
    Ok(())
}

/// The sized read got a whole file: it ends with a newline and has the lines of a full
/// read. Numbers move between the two reads, so lines are compared by their number of
/// fields and their first word when it is a name (`MemTotal:`, `cpu0`).
fn check_whole(s: &Sized) -> Result<(), String> {
    let shape = |t: &str| {
        t.lines()
            .map(|l| {
                let fields: Vec<&str> = l.split_whitespace().collect();
                let first = fields.first().copied().unwrap_or("");
                let name = first.chars().any(char::is_alphabetic);
                (fields.len(), if name { first } else { "" }.to_string())
            })
            .collect::<Vec<_>>()
    };
    if !s.sized.ends_with('\n') || shape(&s.sized) != shape(&s.full) {
        return Err(format!(
            "a read of at most st_size {} bytes got {:?}, a full read {:?}",
            s.size, s.sized, s.full
        ));
    }
    Ok(())
}

#[test]
fn st_size_covers_what_limited_and_host_readers_get() {
    require!(mount);
    let limited = Cgroup::new();
    limited.set_memory_limit(256 * MIB).set_cpus("0");
    let host_view = Cgroup::new();
    let d = Daemon::start(&["-l"]);
    for (who, cg) in [("limited reader", &limited), ("host reader", &host_view)] {
        for rel in GENERATED {
            let s = read_sized(cg, &d.path(rel));
            check_size(&s).unwrap_or_else(|e| panic!("{rel}, {who}: {e}"));
            check_whole(&s).unwrap_or_else(|e| panic!("{rel}, {who}: {e}"));
        }
    }
    // The limited reader's meminfo is its own, so the sizes were checked against a
    // container's content, not the host's twice.
    let meminfo = read_sized(&limited, &d.path("proc/meminfo"));
    assert_eq!(
        kb(&meminfo.sized, "MemTotal"),
        262144,
        "the sized read of the limited reader, read:\n{}",
        meminfo.sized
    );
}

/// The same checks on what the C lxcfs reports (the host file's length, not whole pages),
/// and on a read cut below the content, must fail: they can tell a wrong size.
#[test]
fn the_size_checks_fail_on_lxcfs_and_on_a_short_read() {
    require!(mount);
    require!(
        program "lxcfs",
        "the C lxcfs is not installed (scripts/deps.sh test installs it)"
    );
    let cg = Cgroup::new();
    cg.set_memory_limit(256 * MIB);
    let c = Daemon::start_c_lxcfs();
    let s = read_sized(&cg, &c.path("proc/meminfo"));
    assert!(
        check_size(&s).is_err(),
        "lxcfs's meminfo size {} passed the size check",
        s.size
    );
    let cut = Sized {
        sized: s.full[..s.full.len() - 1].to_string(),
        ..s
    };
    assert!(
        check_whole(&cut).is_err(),
        "a read one byte short passed the whole-file check"
    );
}
