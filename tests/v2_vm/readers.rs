//! The readers of the payload, what they must see, and parsers for what they read.

use std::collections::BTreeMap;

use crate::common::key_values;
use crate::vm::Vm;
use crate::{A_CPUS, A_MEMORY_MAX, CHILD_MEMORY_MAX, KIB};

/// A reader of the payload, and the limits docs/semantics.md derives for it.
pub(crate) struct Reader {
    /// Its name in the payload's output.
    pub(crate) name: &'static str,
    /// Its cgroup, as /proc/self/cgroup shows it.
    pub(crate) cgroup: &'static str,
    /// MemTotal in kB (the minimum memory.max over its cgroup and the ancestors); `None`:
    /// the host's.
    pub(crate) mem_kb: Option<u64>,
    /// Visible CPUs (host ids); `None`: the host's.
    pub(crate) cpus: Option<&'static [u32]>,
}

pub(crate) const A: Reader = Reader {
    name: "A",
    cgroup: "/A",
    mem_kb: Some(A_MEMORY_MAX / KIB),
    cpus: Some(A_CPUS),
};
pub(crate) const CHILD: Reader = Reader {
    name: "child",
    cgroup: "/A/child",
    mem_kb: Some(CHILD_MEMORY_MAX / KIB),
    cpus: Some(A_CPUS),
};
pub(crate) const ROOT: Reader = Reader {
    name: "root",
    cgroup: "/",
    mem_kb: None,
    cpus: None,
};
pub(crate) const READERS: [&Reader; 3] = [&A, &CHILD, &ROOT];
/// The readers under limits, which also did direct I/O to /dev/vda.
pub(crate) const LIMITED: [&Reader; 2] = [&A, &CHILD];

impl Reader {
    pub(crate) fn limited(&self) -> bool {
        self.mem_kb.is_some()
    }

    /// A file this reader read from the `lxcfs-rs -l` mount.
    pub(crate) fn lxcfs(&self, vm: &Vm, rel: &str) -> String {
        vm.file(&format!("{}/lxcfs/{rel}", self.name))
    }

    /// A file this reader read from the `lxcfs-rs -l --enable-cfs` mount.
    pub(crate) fn cfs(&self, vm: &Vm, rel: &str) -> String {
        vm.file(&format!("{}/cfs/{rel}", self.name))
    }

    /// A file of the reader's own cgroup, read just before (`after` false) or after.
    pub(crate) fn cg(&self, vm: &Vm, file: &str, after: bool) -> String {
        let when = if after { "after" } else { "before" };
        vm.file(&format!("{}/cg.{when}/{file}", self.name))
    }

    /// A host file read just before or after this reader's reads.
    pub(crate) fn host(&self, vm: &Vm, rel: &str, after: bool) -> String {
        let when = if after { "after" } else { "before" };
        vm.file(&format!("{}/host.{when}/{rel}", self.name))
    }

    /// The `memory.stat` key (or one-number file when `key` is empty) before and after, in kB.
    pub(crate) fn cg_kb_range(&self, vm: &Vm, file: &str, key: &str) -> (u64, u64) {
        let value = |after| {
            let text = self.cg(vm, file, after);
            let bytes = if key.is_empty() {
                text.trim().parse::<u64>().unwrap_or_else(|e| {
                    panic!("{}'s {file} is not a number ({e}): {text:?}", self.name)
                })
            } else {
                *key_values(&text)
                    .get(key)
                    .unwrap_or_else(|| panic!("no {key} in {}'s {file}:\n{text}", self.name))
            };
            bytes / KIB
        };
        let (b, a) = (value(false), value(true));
        (b.min(a), b.max(a))
    }
}

pub(crate) fn assert_within(
    what: &str,
    value: u64,
    (lo, hi): (u64, u64),
    slack: u64,
    context: &str,
) {
    assert!(
        value + slack >= lo && value <= hi + slack,
        "{what}: expected {lo}..={hi} (±{slack}), read {value}\n{context}"
    );
}

/// Host-id CPU list as the kernel prints it (`1-2`, `0,2`).
pub(crate) fn cpu_list(cpus: &[u32]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let mut j = i;
        while j + 1 < cpus.len() && cpus[j + 1] == cpus[j] + 1 {
            j += 1;
        }
        parts.push(if i == j {
            cpus[i].to_string()
        } else {
            format!("{}-{}", cpus[i], cpus[j])
        });
        i = j + 1;
    }
    parts.join(",")
}

/// The blocks of a cpuinfo text (each ending in its blank line).
pub(crate) fn cpuinfo_blocks(text: &str) -> Vec<String> {
    text.split_inclusive("\n\n").map(str::to_string).collect()
}

/// A host cpuinfo block as a reader shown `k` CPUs sees it as processor `i`.
pub(crate) fn renumbered(block: &str, i: usize, k: usize) -> String {
    block
        .split_inclusive('\n')
        .map(|l| match l.split_once(':') {
            Some((key, _)) if key.trim_end() == "processor" => format!("{key}: {i}\n"),
            Some((key, _)) if ["siblings", "cpu cores"].contains(&key.trim_end()) => {
                format!("{key}: {k}\n")
            }
            _ => l.to_string(),
        })
        .collect()
}

/// The numeric columns of each `cpu*` line of a stat text, by label.
pub(crate) fn cpu_rows(stat: &str) -> BTreeMap<String, Vec<u64>> {
    stat.lines()
        .filter(|l| l.starts_with("cpu"))
        .map(|l| {
            let mut w = l.split_whitespace();
            let label = w.next().unwrap_or_default().to_string();
            let cols = w
                .map(|c| {
                    c.parse()
                        .unwrap_or_else(|e| panic!("column {c:?} of {l:?}: {e}"))
                })
                .collect();
            (label, cols)
        })
        .collect()
}

/// `key value` of the first line starting with `key ` in a stat text.
pub(crate) fn stat_line<'a>(stat: &'a str, key: &str) -> Option<&'a str> {
    stat.lines()
        .find(|l| l.split_whitespace().next() == Some(key))
}

/// The `total=` of the `some` / `full` lines of a pressure text.
pub(crate) fn pressure_totals(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .map(|l| {
            let mut w = l.split_whitespace();
            let kind = w.next().unwrap_or_default().to_string();
            let fields: Vec<&str> = w.collect();
            let keys: Vec<&str> = fields
                .iter()
                .map(|f| f.split_once('=').map_or(*f, |(k, _)| k))
                .collect();
            assert_eq!(
                keys,
                ["avg10", "avg60", "avg300", "total"],
                "pressure line {l:?} has the kernel's fields"
            );
            let total = fields[3]
                .strip_prefix("total=")
                .and_then(|t| t.parse().ok())
                .unwrap_or_else(|| panic!("bad total in pressure line {l:?}"));
            (kind, total)
        })
        .collect()
}

/// The I/O the payload did from a reader's cgroup (`wios= wbytes= rios= rbytes=`).
pub(crate) fn io_done(vm: &Vm, reader: &Reader) -> BTreeMap<String, u64> {
    let text = vm.file(&format!("{}/io.done", reader.name));
    text.split_whitespace()
        .map(|kv| {
            let (k, v) = kv
                .split_once('=')
                .unwrap_or_else(|| panic!("bad io.done {text:?}"));
            (
                k.to_string(),
                v.parse()
                    .unwrap_or_else(|e| panic!("bad io.done {text:?}: {e}")),
            )
        })
        .collect()
}

/// The fields of an io.stat line of `dev` (`MAJ:MIN`).
pub(crate) fn io_stat_of(io_stat: &str, dev: &str) -> Option<BTreeMap<String, u64>> {
    let line = io_stat.lines().find(|l| l.split(' ').next() == Some(dev))?;
    Some(
        line.split_whitespace()
            .skip(1)
            .filter_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                Some((k.to_string(), v.parse().ok()?))
            })
            .collect(),
    )
}

/// Whether `name` is a `cpuN` directory.
pub(crate) fn is_cpu_dir(name: &str) -> bool {
    name.strip_prefix("cpu")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}
