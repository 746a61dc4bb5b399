//! The payload's summary (`scripts/sysvm/payload` describes it): one record a line,
//! `KIND key=value...`, taken apart.

use std::collections::BTreeMap;

/// One record of the summary.
pub(crate) struct Record {
    /// Its kind, the line's first word (`step`, `reads`, `fresh`, `readers`, ...).
    pub(crate) kind: String,
    fields: BTreeMap<String, String>,
    /// The line as the payload wrote it, for messages.
    pub(crate) line: String,
}

impl Record {
    /// The value of `key`; a panic naming the line when it has none.
    pub(crate) fn get(&self, key: &str) -> &str {
        self.fields
            .get(key)
            .unwrap_or_else(|| panic!("summary record without {key}: {}", self.line))
    }

    /// The value of `key` as a number.
    pub(crate) fn num(&self, key: &str) -> u64 {
        let v = self.get(key);
        v.parse()
            .unwrap_or_else(|e| panic!("{key}={v} is not a number ({e}): {}", self.line))
    }

    /// A `reads` record's failures: (errno name, failed call, count), from
    /// `errors=ENOTCONN@open:12,ECONNABORTED@read:1` (`-` for none).
    pub(crate) fn errors(&self) -> Vec<(String, String, u64)> {
        let errors = self.get("errors");
        if errors == "-" {
            return Vec::new();
        }
        errors
            .split(',')
            .map(|e| {
                let parsed = e.rsplit_once(':').and_then(|(what, n)| {
                    let (errno, call) = what.split_once('@')?;
                    Some((errno.to_string(), call.to_string(), n.parse().ok()?))
                });
                parsed.unwrap_or_else(|| panic!("bad errors entry {e:?}: {}", self.line))
            })
            .collect()
    }
}

/// The whole summary.
pub(crate) struct Summary {
    records: Vec<Record>,
}

impl Summary {
    /// Parses the summary's text.
    pub(crate) fn parse(text: &str) -> Result<Summary, String> {
        let mut records = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let mut words = line.split_whitespace();
            let kind = words.next().unwrap_or_default().to_string();
            let mut fields = BTreeMap::new();
            for w in words {
                let (k, v) = w
                    .split_once('=')
                    .ok_or_else(|| format!("summary word {w:?} is not key=value in {line:?}"))?;
                fields.insert(k.to_string(), v.to_string());
            }
            records.push(Record {
                kind,
                fields,
                line: line.to_string(),
            });
        }
        Ok(Summary { records })
    }

    /// The records of `kind`.
    pub(crate) fn all(&self, kind: &str) -> impl Iterator<Item = &Record> {
        self.records.iter().filter(move |r| r.kind == kind)
    }

    /// The one record of `kind` about `step` (`name=` for `step` records, `step=` for the
    /// others), if the payload wrote it.
    pub(crate) fn of(&self, kind: &str, step: &str) -> Option<&Record> {
        let key = if kind == "step" { "name" } else { "step" };
        self.all(kind)
            .find(|r| r.fields.get(key).map(String::as_str) == Some(step))
    }

    /// The `reads` records of `step`: each reader's phases.
    pub(crate) fn reads(&self, step: &str) -> Vec<&Record> {
        self.all("reads")
            .filter(|r| r.fields.get("step").map(String::as_str) == Some(step))
            .collect()
    }

    /// Every line about `step`, for messages.
    pub(crate) fn lines_of(&self, step: &str) -> String {
        self.records
            .iter()
            .filter(|r| {
                r.fields
                    .get("step")
                    .or_else(|| r.fields.get("name"))
                    .map(String::as_str)
                    == Some(step)
            })
            .map(|r| r.line.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }
}
