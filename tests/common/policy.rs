//! The skip-or-fail policy: a test whose prerequisite is missing skips with a reason, or fails
//! when `CI` is set. One file for the integration tests (re-exported by `env`) and for the
//! unit tests that read the real machine (`src/cgroup/tests/real.rs` includes it), so both
//! keep the same rule.

/// Whether we run in CI (`CI` set to anything but empty, `0` or `false`), where a missing
/// prerequisite is a failure rather than a skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// Reports a missing prerequisite: a panic in CI, a "skipping" line elsewhere. Returns
/// `false` so callers can `return` on it.
pub fn skip(reason: &str) -> bool {
    if in_ci() {
        panic!("CI is set, so this test must run, but {reason}");
    }
    eprintln!("skipping: {reason}");
    false
}
