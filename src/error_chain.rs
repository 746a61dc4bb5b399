//! An error printed with all its causes, on one line.
//!
//! Every error type in the crate keeps its cause as `source()` and leaves it out of its own
//! message, so the whole story is told exactly once, by [`Chain`].

use std::error::Error;
use std::fmt;

/// Displays an error followed by each of its causes, `: `-separated:
/// `cannot read /sys/fs/cgroup/memory/x/memory.stat: No such file or directory (os error 2)`.
pub struct Chain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(e) = cause {
            write!(f, ": {e}")?;
            cause = e.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn prints_every_cause_once() {
        let e = Outer(std::io::Error::other("inner"));
        assert_eq!(Chain(&e).to_string(), "outer: inner");
        let plain = std::io::Error::other("alone");
        assert_eq!(Chain(&plain).to_string(), "alone");
    }
}
