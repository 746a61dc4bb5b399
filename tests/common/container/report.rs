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

/// One event of `probe loop`: a failed call or a wrong content, as it printed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoopEvent {
    /// `CLOCK_MONOTONIC` in ms when it happened (the host's clock too: runc makes no time
    /// namespace).
    pub at_ms: u64,
    /// The errno's name (`ENOTCONN`) of a failed call; `None` for a wrong content.
    pub errno: Option<String>,
    /// The failing call (`open`, `read`, `close`, `pread`), or what was wrong with the text.
    pub what: String,
    /// The file, as the container names it (`/proc/stat(kept)` for the kept descriptor).
    pub path: String,
}

/// What `probe loop` reported: its summary section `loop` and the events it printed (failed
/// calls and wrong contents; the moments the reads recovered apart).
#[derive(Debug, Clone)]
pub struct LoopSummary {
    /// The container, for messages.
    pub name: String,
    /// Rounds read.
    pub rounds: u64,
    /// Failed calls, all counted (only the first 50 are in `events`).
    pub failures: u64,
    /// Wrong contents, all counted (only the first 50 are in `events`).
    pub wrong: u64,
    /// The longest single read (an open, read and close, or the kept descriptor's pread).
    pub max_ms: u64,
    /// The longest time between the ends of two rounds without a failure or a wrong content,
    /// or from the last such round to the stop (the longest stall either way).
    pub max_stall_ms: u64,
    /// Successful re-reads of the kept `/proc/stat` descriptor.
    pub kept_reads: u64,
    /// MemTotal of the first good meminfo read (-1: none).
    pub memtotal_kb: i64,
    /// Processors of the first good cpuinfo read (-1: none).
    pub processors: i64,
    /// The online list of the first good read, without the newline.
    pub online: String,
    /// Failed calls by errno name.
    pub by_errno: BTreeMap<String, u64>,
    /// The events printed, in order.
    pub events: Vec<LoopEvent>,
    /// When (`CLOCK_MONOTONIC` ms) each good round that followed a bad one ended: the
    /// moments the reads recovered, in order (the first 50).
    pub recoveries: Vec<u64>,
    /// When the last good round ended (the start, if none was good).
    pub last_ok_ms: u64,
    /// When the last round with a failure or a wrong content ended; `None` if none had one.
    pub last_bad_ms: Option<u64>,
}

impl LoopSummary {
    /// Parses the sections `events` and `loop` of a container that ran `probe loop`; panics
    /// with its output if the summary is missing or malformed (the probe was killed, say).
    pub fn parse(r: &Report) -> LoopSummary {
        let text = r.get("loop");
        let mut fields = BTreeMap::new();
        let mut by_errno = BTreeMap::new();
        let mut online = None;
        for line in text.lines() {
            let (k, v) = line.split_once(' ').unwrap_or((line, ""));
            if k == "online" {
                online = Some(v.to_string());
            } else if let Some(name) = k.strip_prefix("errno_") {
                by_errno.insert(name.to_string(), parse_field(r, k, v) as u64);
            } else {
                fields.insert(k, parse_field(r, k, v));
            }
        }
        let field = |k: &str| {
            *fields.get(k).unwrap_or_else(|| {
                panic!(
                    "container {}: no {k:?} in the loop summary:\n{text}",
                    r.name
                )
            })
        };
        let mut events = Vec::new();
        let mut recoveries = Vec::new();
        for line in r.get("events").lines().filter(|l| !l.is_empty()) {
            match line.strip_prefix("good ") {
                Some(at) => recoveries.push(parse_field(r, "good", at) as u64),
                None => events.push(parse_event(r, line)),
            }
        }
        LoopSummary {
            name: r.name.clone(),
            rounds: field("rounds") as u64,
            failures: field("failures") as u64,
            wrong: field("wrong") as u64,
            max_ms: field("max_ms") as u64,
            max_stall_ms: field("max_gap_ms").max(field("last_ok_ago_ms")) as u64,
            kept_reads: field("kept_reads") as u64,
            memtotal_kb: field("memtotal_kb"),
            processors: field("processors"),
            online: online
                .unwrap_or_else(|| panic!("container {}: no online line:\n{text}", r.name)),
            by_errno,
            events,
            recoveries,
            last_ok_ms: field("last_ok_ms") as u64,
            last_bad_ms: u64::try_from(field("last_bad_ms")).ok(),
        }
    }

    /// The failed calls printed, as `ERRNO call path @ms` strings, for messages.
    pub fn failure_lines(&self) -> Vec<String> {
        self.events
            .iter()
            .map(|e| match &e.errno {
                Some(errno) => format!("{errno} {} {} @{}", e.what, e.path, e.at_ms),
                None => format!("wrong {}: {} @{}", e.path, e.what, e.at_ms),
            })
            .collect()
    }
}

fn parse_field(r: &Report, key: &str, value: &str) -> i64 {
    value.trim().parse().unwrap_or_else(|_| {
        panic!(
            "container {}: {key} {value:?} is not a number in the loop summary:\n{}",
            r.name, r.raw
        )
    })
}

/// `fail MS ERRNO CALL PATH` or `wrong MS PATH WHAT...`.
fn parse_event(r: &Report, line: &str) -> LoopEvent {
    let event = || -> Option<LoopEvent> {
        let mut words = line.splitn(4, ' ');
        let (kind, at_ms) = (words.next()?, words.next()?.parse().ok()?);
        let (a, b) = (words.next()?, words.next()?);
        match kind {
            "fail" => {
                let (call, path) = b.split_once(' ')?;
                Some(LoopEvent {
                    at_ms,
                    errno: Some(a.to_string()),
                    what: call.to_string(),
                    path: path.to_string(),
                })
            }
            "wrong" => Some(LoopEvent {
                at_ms,
                errno: None,
                what: b.to_string(),
                path: a.to_string(),
            }),
            _ => None,
        }
    };
    event().unwrap_or_else(|| panic!("container {}: unreadable loop event {line:?}", r.name))
}
