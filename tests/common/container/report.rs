//! A container's output, cut into the sections its script printed.

use std::collections::BTreeMap;
use std::time::Duration;

/// A container's output cut at the `sec NAME` markers of [`PRELUDE`].
pub struct Report {
    /// The container's name, for messages.
    pub name: String,
    /// Everything it printed.
    pub raw: String,
    sections: BTreeMap<String, String>,
    /// From `runc run` to its exit: an upper bound for any uptime read inside.
    pub elapsed: Duration,
}

impl Report {
    pub(super) fn parse(name: &str, raw: String, elapsed: Duration) -> Report {
        let mut sections = BTreeMap::new();
        // Each marker is preceded by a newline of its own, so a section keeps its bytes
        // exactly, final newline or not.
        for chunk in raw.split("\n::section ").skip(1) {
            let (title, body) = chunk.split_once('\n').unwrap_or((chunk, ""));
            sections.insert(title.to_string(), body.to_string());
        }
        Report {
            name: name.to_string(),
            raw,
            sections,
            elapsed,
        }
    }

    /// The text of section `title`; panics with the whole output if it is missing.
    pub fn get(&self, title: &str) -> &str {
        self.sections
            .get(title)
            .map(String::as_str)
            .unwrap_or_else(|| {
                panic!(
                    "container {} printed no section {title:?}; its output:\n{}",
                    self.name, self.raw
                )
            })
    }

    /// The `key value` lines of section `title` as numbers (the probe's `sysconf`, `touch`).
    pub fn numbers(&self, title: &str) -> BTreeMap<String, i64> {
        self.get(title)
            .lines()
            .filter_map(|l| {
                let (k, v) = l.split_once(' ')?;
                Some((k.to_string(), v.trim().parse().ok()?))
            })
            .collect()
    }

    /// One number of section `title`; panics with the section if it is missing.
    pub fn number(&self, title: &str, key: &str) -> i64 {
        *self.numbers(title).get(key).unwrap_or_else(|| {
            panic!(
                "container {}: no {key:?} in section {title:?}:\n{}",
                self.name,
                self.get(title)
            )
        })
    }

    /// The lines of section `title` grouped as `kind -> value -> count` (the splice loop
    /// prints `kind value` once per read).
    pub fn tally(&self, title: &str) -> BTreeMap<String, BTreeMap<String, usize>> {
        let mut out: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
        for line in self.get(title).lines().filter(|l| !l.is_empty()) {
            let (kind, value) = line.split_once(' ').unwrap_or((line, ""));
            *out.entry(kind.to_string())
                .or_default()
                .entry(value.to_string())
                .or_default() += 1;
        }
        out
    }
}
