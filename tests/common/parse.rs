//! Small parsers for the files the daemon serves and for cgroup files.

use std::collections::BTreeMap;

/// The value of `key` in a meminfo-style text (`Key:   123 kB`).
pub fn kb(text: &str, key: &str) -> u64 {
    try_kb(text, key).unwrap_or_else(|| panic!("no numeric {key:?} line in:\n{text}"))
}

/// The value of `key`, if present.
pub fn try_kb(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k == key).then(|| v.split_whitespace().next()?.parse().ok())?
    })
}

/// The line of `key` in a meminfo-style text.
pub fn line_of<'a>(text: &'a str, key: &str) -> &'a str {
    let prefix = format!("{key}:");
    text.lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no {key:?} line in:\n{text}"))
}

/// The keys of a meminfo-style text, in order.
pub fn keys(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.split_once(':').map(|(k, _)| k.to_string()))
        .collect()
}

/// The values of the `processor` lines of a cpuinfo text.
pub fn processors(cpuinfo: &str) -> Vec<String> {
    field_values(cpuinfo, "processor")
}

/// The values of every `key : value` line named `key` (cpuinfo style).
pub fn field_values(text: &str, key: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.trim_end() == key)
        .map(|(_, v)| v.trim().to_string())
        .collect()
}

/// The labels (first word) of the `cpu*` lines of a /proc/stat text.
pub fn stat_cpu_labels(stat: &str) -> Vec<String> {
    stat.lines()
        .filter(|l| l.starts_with("cpu"))
        .map(|l| l.split_whitespace().next().unwrap_or_default().to_string())
        .collect()
}

/// The first line of `text` starting with `prefix`.
pub fn line_starting<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    text.lines().find(|l| l.starts_with(prefix))
}

/// Parsed `/proc/loadavg`: `a b c running/total lastpid`, checked against the kernel's format
/// `^\d+\.\d\d \d+\.\d\d \d+\.\d\d \d+/\d+ \d+$`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadAvg {
    pub loads: [f64; 3],
    pub running: u64,
    pub total: u64,
    pub last_pid: u64,
}

/// Parses a loadavg text, or says what is wrong with it.
pub fn parse_loadavg(text: &str) -> Result<LoadAvg, String> {
    let err = |why: &str| format!("loadavg {text:?}: {why}");
    let body = text
        .strip_suffix('\n')
        .ok_or_else(|| err("no final newline"))?;
    if body.contains('\n') {
        return Err(err("more than one line"));
    }
    let fields: Vec<&str> = body.split(' ').collect();
    if fields.len() != 5 {
        return Err(err("not 5 space-separated fields"));
    }
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let mut loads = [0.0; 3];
    for (i, f) in fields[..3].iter().enumerate() {
        let (int, frac) = f
            .split_once('.')
            .ok_or_else(|| err("a load has no decimal point"))?;
        if !digits(int) || frac.len() != 2 || !digits(frac) {
            return Err(err("a load is not \\d+.\\d\\d"));
        }
        loads[i] = f.parse().map_err(|_| err("a load does not parse"))?;
    }
    let (r, t) = fields[3]
        .split_once('/')
        .ok_or_else(|| err("no running/total"))?;
    if !digits(r) || !digits(t) || !digits(fields[4]) {
        return Err(err("running/total or lastpid not numeric"));
    }
    Ok(LoadAvg {
        loads,
        running: r.parse().map_err(|_| err("running"))?,
        total: t.parse().map_err(|_| err("total"))?,
        last_pid: fields[4].parse().map_err(|_| err("lastpid"))?,
    })
}

/// The two fields of an uptime text.
pub fn parse_uptime(text: &str) -> (f64, f64) {
    let f: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(f.len(), 2, "uptime should have 2 fields, read {text:?}");
    let p = |s: &str| {
        s.parse::<f64>()
            .unwrap_or_else(|e| panic!("uptime field {s:?} of {text:?}: {e}"))
    };
    for s in &f {
        let frac = s.split_once('.').map(|(_, d)| d.len());
        assert_eq!(
            frac,
            Some(2),
            "uptime fields have two decimals as the kernel prints them, read {text:?}"
        );
    }
    (p(f[0]), p(f[1]))
}

/// The `key value` pairs of a cgroup `memory.stat`-style file.
pub fn key_values(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// Asserts that each of `keys` has the same line in `ours` as in `host` (a meminfo-style line
/// passed through from the host untouched), and that both have it.
#[track_caller]
pub fn assert_lines_from_host(ours: &str, host: &str, keys: &[&str], context: &str) {
    for key in keys {
        assert_eq!(
            line_of(ours, key),
            line_of(host, key),
            "{key} is passed through from the host; {context}"
        );
    }
}
