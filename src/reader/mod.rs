//! Who is reading: the reader's pid namespace and its init, found without forking.
//!
//! lxcfs forks into the reader's pid namespace to find its init (about 2 ms a miss). We walk
//! `PPid:` in the host's `/proc` until the process numbered 1 in the reader's namespace and
//! cache the answer per namespace, checking the cached init is still the same process.

mod error;
mod pidns;
mod procpid;

#[cfg(test)]
mod tests;

pub use error::ReaderError;
pub use pidns::{NsInit, PidNsCache};
pub(crate) use procpid::parse_stat;
pub use procpid::start_ticks;
