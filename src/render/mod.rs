//! Pure text transforms: the host's own `/proc` file text plus the reader's cgroup values in,
//! the bytes to serve out. One module per served file, each with a `render` function.
//!
//! Nothing here reads a file or a clock, so every rule of `docs/semantics.md` can be tested
//! with fixture text alone. Each renderer tolerates any host text (garbage lines, CRLF,
//! missing keys) without panicking: a line it cannot understand passes through as it was.

pub mod cpu_list;
pub mod cpuinfo;
pub mod diskstats;
mod host_meminfo;
#[cfg(test)]
pub(crate) use host_meminfo::host_kb as meminfo_kb;
pub mod loadavg;
pub mod meminfo;
pub mod stat;
pub mod swap;
pub mod swaps;
pub mod sysinfo;
#[cfg(test)]
mod test_input;
mod text;
pub mod uptime;
