//! Why a reader sees host values: the fallbacks one served file took, gathered so the
//! debug log can say, in one line per read, which cgroup or process file failed and how.
//!
//! Values that cannot be read never fail a read: they fall back to the host's value
//! (`docs/semantics.md#fallbacks`). Each such place calls
//! [`note`] (or [`ok`], [`error`]). While a read is being served under [`collect`] the notes
//! are kept for its log line; elsewhere (the load sampler's thread) each is logged at debug
//! level on its own. Nothing is gathered or even formatted unless debug logging is on: some
//! fallbacks happen on every read (an ancestor cgroup without the file), and the read path
//! must not pay for a log line nobody sees.

use std::cell::RefCell;
use std::error::Error;
use std::fmt::Display;

use crate::error_chain::Chain;

thread_local! {
    /// The fallbacks of the read being served on this thread, when gathering.
    static NOTES: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

/// Whether fallbacks are gathered at all: only when their log lines are shown.
fn enabled() -> bool {
    log::log_enabled!(log::Level::Debug)
}

/// Runs `f` (one served read), returning what it returns and the fallbacks it noted (none
/// unless debug logging is on).
pub fn collect<R>(f: impl FnOnce() -> R) -> (R, Vec<String>) {
    if !enabled() {
        return (f(), Vec::new());
    }
    let outer = NOTES.with(|n| n.borrow_mut().replace(Vec::new()));
    let result = f();
    let notes = NOTES.with(|n| std::mem::replace(&mut *n.borrow_mut(), outer));
    (result, notes.unwrap_or_default())
}

/// Notes that the host's value stands in for something about the reader because of `why`.
pub fn note(why: impl Display) {
    crate::stats::fallback();
    if !enabled() {
        return;
    }
    let kept = NOTES.with(|n| match n.borrow_mut().as_mut() {
        Some(notes) => {
            notes.push(why.to_string());
            true
        }
        None => false,
    });
    if !kept {
        log::debug!("{why}");
    }
}

/// Notes an error, with its causes, as the reason for a fallback.
pub fn error(e: &(dyn Error + 'static)) {
    note(Chain(e));
}

/// The value, or `None` with the error noted as a fallback: a missing or bad cgroup file must
/// fall back to the host value, never fail the whole served file.
pub fn ok<T, E: Error + 'static>(result: Result<T, E>) -> Option<T> {
    match result {
        Ok(v) => Some(v),
        Err(e) => {
            error(&e);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_gathered_per_read_and_nested_reads_keep_their_own() {
        crate::testutil::debug_log_on();
        let ((), outer) = collect(|| {
            note("outer one");
            let ((), inner) = collect(|| note("inner"));
            assert_eq!(inner, vec!["inner".to_string()]);
            let missing: Result<(), std::io::Error> = Err(std::io::Error::other("gone"));
            assert_eq!(ok(missing), None);
            assert_eq!(ok(Ok::<u8, std::io::Error>(7)), Some(7));
        });
        assert_eq!(outer, vec!["outer one".to_string(), "gone".to_string()]);
        let ((), none) = collect(|| ());
        assert!(none.is_empty());
        // Outside a read nothing is kept for a later one.
        note("stray");
        let ((), after) = collect(|| ());
        assert!(after.is_empty());
    }
}
