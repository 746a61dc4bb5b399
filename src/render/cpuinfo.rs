//! `/proc/cpuinfo`: the host's per-CPU blocks of the CPUs a reader is shown
//! (`docs/semantics.md#proc-cpuinfo`).
//!
//! Blocks are kept byte-for-byte apart from the numbering, because tools parse arbitrary
//! lines of it (flags, model name, bugs) and the arch decides which lines exist.

use std::fmt::Write;

use super::text::{split_ending, split_key};

/// One blank-line-terminated part of the host file.
struct Block<'a> {
    /// The block's text, including the blank line(s) after it.
    text: &'a str,
    /// The host CPU id from its `processor` line; `None` for a block without one (a header
    /// or trailer some archs print).
    cpu: Option<u32>,
}

/// The host blocks of the CPUs in `shown` (host ids), in that order, with `processor`
/// renumbered `0..k-1` and `siblings` / `cpu cores` set to `k` where present, so a reader
/// counting either way gets `k`. A shown id with no host block is skipped.
///
/// Blocks without a `processor` line stay where they were relative to the CPU blocks
/// (before or after them). The host text is returned unchanged when it has no `processor`
/// lines at all (an arch whose format we do not know), when `shown` is empty, or when no
/// shown CPU has a block: an empty cpuinfo would break more readers than the host's does.
pub fn render(host_cpuinfo: &str, shown: &[u32]) -> String {
    let blocks = split_blocks(host_cpuinfo);
    let Some(first_cpu) = blocks.iter().position(|b| b.cpu.is_some()) else {
        return host_cpuinfo.to_string();
    };
    let selected: Vec<&Block> = shown
        .iter()
        .filter_map(|&id| blocks.iter().find(|b| b.cpu == Some(id)))
        .collect();
    if selected.is_empty() {
        return host_cpuinfo.to_string();
    }
    let k = selected.len();
    let mut out = String::with_capacity(host_cpuinfo.len());
    for b in &blocks[..first_cpu] {
        append_block(&mut out, |out| out.push_str(b.text));
    }
    for (i, b) in selected.iter().enumerate() {
        append_block(&mut out, |out| renumber(out, b.text, i, k));
    }
    for b in blocks[first_cpu..].iter().filter(|b| b.cpu.is_none()) {
        append_block(&mut out, |out| out.push_str(b.text));
    }
    out
}

/// Cuts the text into blocks, each ending after its run of blank lines.
fn split_blocks(text: &str) -> Vec<Block<'_>> {
    let mut texts = Vec::new();
    let (mut start, mut pos, mut prev_blank) = (0, 0, false);
    for line in text.split_inclusive('\n') {
        let blank = is_blank(line);
        if !blank && prev_blank {
            texts.push(&text[start..pos]);
            start = pos;
        }
        prev_blank = blank;
        pos += line.len();
    }
    if start < text.len() {
        texts.push(&text[start..]);
    }
    texts
        .into_iter()
        .map(|text| Block {
            text,
            cpu: processor_id(text),
        })
        .collect()
}

fn is_blank(line: &str) -> bool {
    line.trim().is_empty()
}

/// The value of a block's `processor` line, when it is a CPU number.
fn processor_id(block: &str) -> Option<u32> {
    block
        .lines()
        .filter_map(split_key)
        .find(|(key, _)| *key == "processor")
        .and_then(|(_, value)| value.trim().parse().ok())
}

/// Appends a CPU block shown as CPU `index` of `count`.
fn renumber(out: &mut String, block: &str, index: usize, count: usize) {
    for line in block.split_inclusive('\n') {
        let (body, ending) = split_ending(line);
        let new = match split_key(body) {
            Some(("processor", _)) => Some(index),
            Some(("siblings" | "cpu cores", _)) => Some(count),
            _ => None,
        };
        match new {
            Some(n) => {
                set_value(out, body, n);
                out.push_str(ending);
            }
            None => out.push_str(line),
        }
    }
}

/// Appends a `key<ws>:<ws>value` line with the value replaced and its spacing kept.
fn set_value(out: &mut String, body: &str, value: usize) {
    let Some((_, after)) = split_key(body) else {
        out.push_str(body);
        return;
    };
    let ws = after.len() - after.trim_start().len();
    let value_at = body.len() - after.len() + ws;
    out.push_str(&body[..value_at]);
    // Writing to a String cannot fail.
    let _ = write!(out, "{value}");
}

/// Appends a block (written by `write`) after those in `out`, with the blank line the kernel
/// puts between blocks where a host block lacked one (its last block may have, and it may
/// not stay last once reordered).
fn append_block(out: &mut String, write: impl FnOnce(&mut String)) {
    if !out.is_empty() {
        if !out.ends_with('\n') {
            out.push('\n');
        }
        // The last line, without its newline (`lines()` would give the same, scanning all).
        let body = &out[..out.len() - 1];
        let last = body.rsplit('\n').next().unwrap_or(body);
        if !last.trim().is_empty() {
            out.push('\n');
        }
    }
    write(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST2: &str = include_str!("../../tests/fixtures/render/cpuinfo-2cpu");
    const HOST4: &str = include_str!("../../tests/fixtures/render/cpuinfo-4cpu");

    /// The value of `key` in each block of `text`, in order.
    fn values<'a>(text: &'a str, key: &str) -> Vec<&'a str> {
        text.lines()
            .filter_map(split_key)
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v.trim())
            .collect()
    }

    #[test]
    fn all_cpus_shown_is_the_host_file() {
        assert_eq!(render(HOST2, &[0, 1]), HOST2);
        assert_eq!(render(HOST4, &[0, 1, 2, 3]), HOST4);
    }

    #[test]
    fn non_contiguous_cpus_are_renumbered_and_counted() {
        let out = render(HOST4, &[1, 3]);
        assert_eq!(values(&out, "processor"), ["0", "1"]);
        assert_eq!(values(&out, "core id"), ["1", "3"]);
        assert_eq!(values(&out, "apicid"), ["1", "3"]);
        assert_eq!(values(&out, "siblings"), ["2", "2"]);
        assert_eq!(values(&out, "cpu cores"), ["2", "2"]);
        assert_eq!(out.matches("\n\n").count(), 2);
        assert!(out.contains("processor\t: 1\nvendor_id\t: AuthenticAMD\n"));
        assert!(out.contains("siblings\t: 2\ncore id\t\t: 3\ncpu cores\t: 2\napicid\t\t: 3\n"));
    }

    #[test]
    fn every_other_line_is_kept_byte_for_byte() {
        let out = render(HOST4, &[2]);
        let changed = ["processor", "siblings", "cpu cores"];
        let host_block = HOST4.split("\n\n").nth(2).unwrap_or_default();
        let kept = |t: &str| -> Vec<String> {
            t.lines()
                .filter(|l| !l.is_empty() && !changed.iter().any(|c| l.starts_with(c)))
                .map(str::to_string)
                .collect()
        };
        assert_eq!(kept(&out), kept(host_block));
        assert!(out.starts_with("processor\t: 0\n"));
        assert!(out.ends_with("power management:\n\n"));
    }

    #[test]
    fn shown_order_is_kept_and_missing_cpus_skipped() {
        let out = render(HOST4, &[3, 9, 0]);
        assert_eq!(values(&out, "processor"), ["0", "1"]);
        assert_eq!(values(&out, "core id"), ["3", "0"]);
        assert_eq!(values(&out, "siblings"), ["2", "2"]);
    }

    #[test]
    fn falls_back_to_the_host_text() {
        assert_eq!(render(HOST2, &[]), HOST2);
        assert_eq!(render(HOST2, &[7]), HOST2);
        assert_eq!(render("", &[0]), "");
        let s390ish =
            "vendor_id       : IBM/S390\n# processors    : 2\nprocessor 0: version = FF\n";
        assert_eq!(render(s390ish, &[0]), s390ish);
    }

    #[test]
    fn header_and_trailer_blocks_stay_around_the_cpus() {
        let host = "Header\t: x\n\nprocessor\t: 0\nBogoMIPS\t: 50.00\n\nprocessor\t: 1\nBogoMIPS\t: 51.00\n\n\
                    Hardware\t: board\n";
        let out = render(host, &[1]);
        assert_eq!(
            out,
            "Header\t: x\n\nprocessor\t: 0\nBogoMIPS\t: 51.00\n\nHardware\t: board\n"
        );
    }

    #[test]
    fn missing_final_blank_line_and_crlf_are_handled() {
        let host = "processor : 0\r\nsiblings : 2\r\n\r\nprocessor : 1\r\nsiblings : 2";
        let out = render(host, &[1, 0]);
        assert_eq!(
            out,
            "processor : 0\r\nsiblings : 2\n\nprocessor : 1\r\nsiblings : 2\r\n\r\n"
        );
    }

    #[test]
    fn odd_text_does_not_panic() {
        for host in [
            "processor",
            "processor:",
            "processor: x\n\n\n",
            ":\n:\n\n:",
            "\n\nprocessor : 0",
            "processor : 0\n\u{e9}:\n",
        ] {
            let _ = render(host, &[0, 1]);
        }
        assert_eq!(render("\n\nprocessor : 0\n", &[0]), "\n\nprocessor : 0\n");
    }
}
