//! Answering one notified `sysinfo`: the reader's numbers, written into the caller's buffer
//! through its `/proc/<tid>/mem`, opened before the notification is checked to be pending so
//! that a recycled tid can never receive them.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;

use log::{debug, warn};
use nix::libc;

use super::abi;
use super::notify::{Answer, Call, Listener};
use crate::error_chain::Chain;
use crate::host::own;
use crate::render::sysinfo::encode;
use crate::view::View;

/// Answers `call` (from the container `who`, for logs) on `listener`: the answer is sent, or
/// not at all when the call is no longer pending.
pub fn answer(view: &View, listener: &Listener, call: &Call, who: &str) {
    let answer = match work_out(view, listener, call, who) {
        Some(a) => a,
        // The caller is gone (killed, or its call restarted as a new notification).
        None => return,
    };
    if let Err(e) = listener.answer(call.id, answer) {
        warn!("{who}: answering sysinfo of tid {}: {e}", call.tid);
    }
}

/// The answer to `call`, or `None` when it is no longer pending. Every failure answers
/// [`Answer::Continue`]: the caller then gets the kernel's own numbers.
fn work_out(view: &View, listener: &Listener, call: &Call, who: &str) -> Option<Answer> {
    let tid = call.tid;
    let Some(layout) = abi::layout(call.arch, call.nr) else {
        debug!(
            "{who}: tid {tid}: call {} of arch {:#x} is no sysinfo we answer",
            call.nr, call.arch
        );
        return Some(Answer::Continue);
    };
    if tid == 0 {
        warn!("{who}: a caller outside our pid namespace (run the agent in the host's)");
        return Some(Answer::Continue);
    }
    // Opened first: the descriptor pins this task's memory, and the pending check below then
    // proves it is the caller's (no pid reuse in between).
    let mem = match open_mem(tid) {
        Ok(f) => f,
        Err(e) => {
            warn!("{who}: tid {tid}: cannot open its memory: {e}");
            return listener.still_pending(call.id).then_some(Answer::Continue);
        }
    };
    if !listener.still_pending(call.id) {
        return None;
    }
    let (values, fallbacks) = view.sysinfo(tid);
    let values = match values {
        Ok(v) => v,
        Err(e) => {
            warn!("{who}: tid {tid}: sysinfo for it: {}", Chain(&e));
            return Some(Answer::Continue);
        }
    };
    let bytes = encode(&values, layout, page_size());
    match mem.write_at(&bytes, call.args[0]) {
        Ok(n) if n == bytes.len() => {
            debug!(
                "{who}: tid {tid}: sysinfo totalram={} freeram={} uptime={} procs={} \
                 {layout:?} fallbacks=[{}]",
                values.totalram,
                values.freeram,
                values.uptime,
                values.procs,
                fallbacks.join("; ")
            );
            Some(Answer::Done)
        }
        // A pointer outside the caller's mappings: the kernel's own answer would be EFAULT
        // (it fails copy_to_user); /proc/<tid>/mem reports it as EIO or a short write.
        Ok(_) => Some(Answer::Errno(libc::EFAULT)),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EIO | libc::EFAULT)) => {
            Some(Answer::Errno(libc::EFAULT))
        }
        Err(e) => {
            warn!("{who}: tid {tid}: writing its sysinfo: {e}");
            Some(Answer::Continue)
        }
    }
}

/// `/proc/<tid>/mem` of the caller, for writing.
fn open_mem(tid: u32) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(own::task_mem(tid))
}

/// The kernel's page size (the compat layout's memory unit for large sizes).
fn page_size() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .filter(|p| *p > 0)
        .map_or(4096, |p| p as u64)
}
