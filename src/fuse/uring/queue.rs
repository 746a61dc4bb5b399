//! One ring queue: a thread pinned to its CPU owning an io_uring with a few registered
//! entries. The kernel puts a request into an entry of the reader's CPU's queue and
//! completes the entry's command; the thread serves it, writes the reply into the same
//! entry and commits it with one COMMIT_AND_FETCH, which also re-arms the entry.

use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::NonNull;
use std::sync::Arc;

use io_uring::{IoUring, cqueue, opcode, squeue, types};
use log::{debug, error, info, warn};
use nix::errno::Errno;
use zerocopy::{FromBytes, IntoBytes};

use super::abi::{
    CMD_COMMIT_AND_FETCH, CMD_REGISTER, CmdReq, ENT_IN_OUT_AT, EntInOut, IN_OUT_SIZE, OP_IN_SIZE,
    REQ_HEADER_SIZE,
};
use super::arena::{Arena, SLOTS};
use crate::fuse::RESENT;
use crate::fuse::reply::{OUT_HEADER, Sink};

/// Entries per queue: one being served while the kernel fills another.
pub const ENTRIES: usize = 2;
/// Size of `fuse_in_header`.
const IN_HEADER: usize = std::mem::size_of::<fuse_abi::linux::fuse_in_header>();

/// What a queue thread reports for one completion.
pub enum Event<'a> {
    /// A request (its bytes as `/dev/fuse` would have delivered them) in entry `index`.
    Request {
        /// The entry holding it.
        index: usize,
        /// The request's bytes.
        bytes: &'a [u8],
    },
    /// The command of entry `index` ended with `errno`: the connection ended, or the kernel
    /// refused the command.
    Failed {
        /// The entry whose command failed.
        index: usize,
        /// Why.
        errno: Errno,
    },
}

/// One registered entry: the buffers the kernel reads and writes, at fixed addresses for as
/// long as the ring lives (in the mount's [`Arena`] when there is one, so that they outlive
/// this worker).
struct Entry {
    /// `struct fuse_uring_req_header` ([`REQ_HEADER_SIZE`] bytes) and, after it in the same
    /// [`HEADER_SPAN`] bytes, the `unique` last answered from it; 8-aligned.
    header: NonNull<u8>,
    /// The payload buffer.
    payload: NonNull<u8>,
    payload_len: usize,
    /// The two iovecs REGISTER points at.
    iov: Box<[nix::libc::iovec; 2]>,
    /// The last command submitted for the entry: REGISTER (0) or the commit of a `unique`.
    last: u64,
    /// Taken over from a predecessor with a request in it, not yet re-armed by a commit of
    /// ours: a refused commit means the request was answered after all.
    adopting: bool,
    /// The buffers, when they are this process's own rather than the arena's.
    _own: Option<(Box<[u64]>, Vec<u8>)>,
    /// Keeps the arena mapped while the entry points into it.
    _arena: Option<Arc<Arena>>,
}

impl Entry {
    /// An entry with buffers of its own.
    fn private(payload_size: usize) -> Self {
        let mut header = vec![0u64; HEADER_SPAN / 8].into_boxed_slice();
        let mut payload = vec![0u8; payload_size];
        let (h, p) = (
            NonNull::from(&mut *header).cast(),
            NonNull::from(&mut payload[..]).cast(),
        );
        let mut entry = Self::at(h, p, payload_size);
        entry._own = Some((header, payload));
        entry
    }

    /// An entry whose buffers are slot `index` of queue `qid` in `arena`.
    fn in_arena(arena: &Arc<Arena>, qid: u16, index: usize) -> Option<Self> {
        let slot = arena.slot(usize::from(qid), index)?;
        let mut entry = Self::at(slot.header, slot.payload, arena.payload());
        entry._arena = Some(arena.clone());
        Some(entry)
    }

    fn at(header: NonNull<u8>, payload: NonNull<u8>, payload_len: usize) -> Self {
        let iov = Box::new([
            nix::libc::iovec {
                iov_base: header.as_ptr().cast(),
                iov_len: REQ_HEADER_SIZE,
            },
            nix::libc::iovec {
                iov_base: payload.as_ptr().cast(),
                iov_len: payload_len,
            },
        ]);
        Entry {
            header,
            payload,
            payload_len,
            iov,
            last: 0,
            adopting: false,
            _own: None,
            _arena: None,
        }
    }

    fn header_bytes(&self) -> &[u8] {
        // SAFETY: `header` points at HEADER_SPAN bytes that live as long as the entry (its
        // own box, or the arena it holds); the kernel writes them only during this queue's
        // own io_uring calls, never while a borrow is alive.
        unsafe { std::slice::from_raw_parts(self.header.as_ptr(), HEADER_SPAN) }
    }

    fn header_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `header_bytes`, and `&mut self` makes the borrow unique.
        unsafe { std::slice::from_raw_parts_mut(self.header.as_ptr(), HEADER_SPAN) }
    }

    fn set_answered(&mut self, unique: u64) {
        self.note(ANSWERED_AT, unique);
    }

    fn payload(&self) -> &[u8] {
        // SAFETY: as in `header_bytes`, for the payload buffer of `payload_len` bytes.
        unsafe { std::slice::from_raw_parts(self.payload.as_ptr(), self.payload_len) }
    }

    fn payload_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `header_mut`.
        unsafe { std::slice::from_raw_parts_mut(self.payload.as_ptr(), self.payload_len) }
    }

    fn ent_in_out(&self) -> EntInOut {
        EntInOut::read_from_prefix(&self.header_bytes()[ENT_IN_OUT_AT..])
            .map(|(e, _)| e)
            .unwrap_or_default()
    }

    fn set_ent_in_out(&mut self, ent: EntInOut) {
        self.header_mut()[ENT_IN_OUT_AT..ENT_IN_OUT_AT + std::mem::size_of::<EntInOut>()]
            .copy_from_slice(ent.as_bytes());
    }

    fn noted(&self, at: usize) -> u64 {
        u64::read_from_prefix(&self.header_bytes()[at..]).map_or(0, |(u, _)| u)
    }

    fn note(&mut self, at: usize, unique: u64) {
        self.header_mut()[at..at + 8].copy_from_slice(&unique.to_ne_bytes());
    }

    /// Notes what a reply overwrites of the request just received: the first 16 bytes of
    /// its header (length, opcode, `unique`) and the size of its payload.
    fn note_received(&mut self) {
        let payload_sz = self.ent_in_out().payload_sz;
        let header = self.header_mut();
        header.copy_within(..16, RECEIVED_AT);
        header[RECEIVED_AT + 16..RECEIVED_AT + 20].copy_from_slice(&payload_sz.to_ne_bytes());
    }

    /// What a successor must do with this entry, and the `unique` of the request in it, if
    /// the kernel put a request here that nobody answered yet: the kernel writes the
    /// request's `unique` both into its header and as `commit_id`, and a worker notes it as
    /// answered once its commit went in. A request whose reply was begun has its header put
    /// back as received. (A worker that died between its commit and the note leaves a
    /// request that looks unanswered: committing it again is refused with ENOENT, which
    /// costs a kernel log line and nothing else.)
    fn left_unanswered(&mut self) -> Option<(u64, Adoption)> {
        let unique = unanswered(self.header_bytes())?;
        if self.noted(REPLIED_AT) == unique {
            return Some((unique, Adoption::Commit));
        }
        if self.noted(RECEIVED_AT + UNIQUE_AT) == unique {
            let header = self.header_mut();
            header.copy_within(RECEIVED_AT..RECEIVED_AT + 16, 0);
            let mut payload_sz = [0u8; 4];
            payload_sz.copy_from_slice(&header[RECEIVED_AT + 16..RECEIVED_AT + 20]);
            let mut ent = self.ent_in_out();
            ent.payload_sz = u32::from_ne_bytes(payload_sz);
            self.set_ent_in_out(ent);
            if self.noted(REPLYING_AT) == unique && ent.payload_sz > 0 {
                return Some((unique, Adoption::Fail));
            }
        }
        Some((unique, Adoption::Serve))
    }
}

/// The `unique` of the request in an entry's header buffer (`header`, at least
/// [`NOTES_END`] bytes) if the kernel put one there that nobody answered yet.
pub fn unanswered(header: &[u8]) -> Option<u64> {
    let word = |at: usize| {
        header
            .get(at..at + 8)
            .and_then(|b| u64::read_from_bytes(b).ok())
            .unwrap_or(0)
    };
    // A reply's header holds the `unique` the dispatcher answered, resent bit and all.
    let unique = word(UNIQUE_AT) & !RESENT;
    let commit_id = word(ENT_IN_OUT_AT + std::mem::offset_of!(EntInOut, commit_id));
    (unique != 0 && commit_id == unique && word(ANSWERED_AT) != unique).then_some(unique)
}

/// The payload bytes that matter in an entry whose header buffer is `header`: the larger
/// of the request's (as received) and what the kernel or a reply last said.
pub fn payload_in_use(header: &[u8]) -> usize {
    let word = |at: usize| {
        header
            .get(at..at + 4)
            .and_then(|b| u32::read_from_bytes(b).ok())
            .unwrap_or(0)
    };
    let now = word(ENT_IN_OUT_AT + std::mem::offset_of!(EntInOut, payload_sz));
    now.max(word(RECEIVED_AT + 16)) as usize
}

/// What a successor does with an entry a dead worker left a request in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Adoption {
    /// Serve the request again: it is whole in the entry.
    Serve,
    /// Commit the reply already written there.
    Commit,
    /// Answer EIO: a reply was begun over the request's payload, so neither is whole.
    Fail,
}

/// Where `unique` is in both `fuse_in_header` and `fuse_out_header`.
const UNIQUE_AT: usize = 8;
/// Bytes of an entry's header buffer: the kernel's [`REQ_HEADER_SIZE`], then our notes,
/// which tell a successor how far this worker got with the request in the entry.
pub const HEADER_SPAN: usize = 4096;
/// The `unique` last answered from the entry, noted once its commit reached the kernel.
const ANSWERED_AT: usize = 512;
/// What a reply overwrites of the request: its header's first 16 bytes, its payload size.
const RECEIVED_AT: usize = 520;
/// The `unique` whose reply is being written (its payload may be overwritten).
const REPLYING_AT: usize = 544;
/// The `unique` whose reply is whole in the entry.
const REPLIED_AT: usize = 552;
/// Where our notes end: the bytes of a header buffer worth handing on.
pub const NOTES_END: usize = REPLIED_AT + 8;

/// Rebuilds in `out` the request in `entry` as `/dev/fuse` delivers it: the header, the
/// first argument (from `op_in`) and the rest (from the payload). The header's `len` counts
/// all three, which gives the first argument's size. False when the entry holds no
/// consistent request.
fn assemble(entry: &Entry, out: &mut Vec<u8>) -> bool {
    let rest = entry.ent_in_out().payload_sz as usize;
    let header = entry.header_bytes();
    let Ok((len, _)) = u32::read_from_prefix(header) else {
        return false;
    };
    let Some(first) = (len as usize)
        .checked_sub(IN_HEADER + rest)
        .filter(|n| *n <= OP_IN_SIZE)
    else {
        return false;
    };
    if rest > entry.payload_len {
        return false;
    }
    out.clear();
    out.extend_from_slice(&header[..IN_HEADER]);
    out.extend_from_slice(&header[IN_OUT_SIZE..IN_OUT_SIZE + first]);
    out.extend_from_slice(&entry.payload()[..rest]);
    true
}

/// A queue's ring and entries.
pub struct Queue {
    ring: IoUring<squeue::Entry128, cqueue::Entry>,
    entries: Vec<Entry>,
    qid: u16,
    fd: i32,
    /// Adopted entries whose request is still to be served, handed out by the next turns.
    adopted: Vec<usize>,
    /// Commits queued and not yet submitted: (entry, unique), noted as answered once they
    /// went in.
    committing: Vec<(usize, u64)>,
    /// The request being assembled: header, first argument, the rest.
    request: Vec<u8>,
    /// The completions of one turn (entry, result), kept to allocate nothing per turn.
    done: Vec<(usize, i32)>,
}

/// Builds a URING_CMD for entry `index` of queue `qid` on `fd`.
fn command(fd: i32, op: u32, qid: u16, commit_id: u64, index: usize) -> squeue::Entry128 {
    let req = CmdReq {
        qid,
        commit_id,
        ..Default::default()
    };
    let mut cmd = [0u8; 80];
    cmd[..std::mem::size_of::<CmdReq>()].copy_from_slice(req.as_bytes());
    opcode::UringCmd80::new(types::Fd(fd), op)
        .cmd(cmd)
        .build()
        .user_data(index as u64)
}

/// Sets `sqe->addr` and `sqe->len`, which REGISTER reads as an iovec array and its length.
/// `io-uring` 0.7 sets `addr` but has no way to set `len`, so both are written into the
/// entry's bytes at their offsets in `struct io_uring_sqe` (16 and 24).
fn with_iovecs(
    mut sqe: squeue::Entry128,
    iov: *const nix::libc::iovec,
    n: u32,
) -> squeue::Entry128 {
    // SAFETY: `Entry128` is `#[repr(C)]` over the kernel's 128-byte SQE, so it is exactly 128
    // initialised bytes; writing plain integers at fixed offsets keeps it valid.
    let bytes: &mut [u8; 128] = unsafe { &mut *(&mut sqe as *mut squeue::Entry128).cast() };
    bytes[16..24].copy_from_slice(&(iov as u64).to_ne_bytes());
    bytes[24..28].copy_from_slice(&n.to_ne_bytes());
    sqe
}

impl Queue {
    /// A ring for queue `qid` on `fd` with [`ENTRIES`] freshly registered entries whose
    /// payload buffers hold `payload_size` bytes: slots of `arena` when given (the arena's
    /// payload size then), else buffers of its own. Where the arena was inherited, the
    /// slots holding a request the previous worker left unanswered are adopted first: the
    /// next turns hand those requests out (as resent: `unique` with [`RESENT`]), and the
    /// commit answering each re-arms its entry for this ring.
    pub fn register(
        fd: BorrowedFd<'_>,
        qid: u16,
        payload_size: usize,
        arena: Option<&Arc<Arena>>,
    ) -> io::Result<Self> {
        let ring = IoUring::<squeue::Entry128, cqueue::Entry>::builder()
            .setup_single_issuer()
            .build((SLOTS * 2) as u32)?;
        let mut entries = Vec::with_capacity(SLOTS);
        let mut adopted = Vec::new();
        let mut fresh = Vec::with_capacity(ENTRIES);
        match arena {
            Some(arena) => {
                for (i, mut entry) in
                    (0..SLOTS).filter_map(|i| Some((i, Entry::in_arena(arena, qid, i)?)))
                {
                    let left = arena.inherited().then(|| entry.left_unanswered()).flatten();
                    if let Some((unique, how)) = left {
                        debug!(
                            "io_uring queue {qid}: slot {i} holds request {unique:#x} left \
                             unanswered ({how:?})"
                        );
                        adopted.push((entries.len(), unique, how));
                        entries.push(Entry {
                            adopting: true,
                            ..entry
                        });
                    } else if fresh.len() < ENTRIES {
                        fresh.push(entries.len());
                        entries.push(entry);
                    }
                }
            }
            None => {
                for _ in 0..ENTRIES {
                    fresh.push(entries.len());
                    entries.push(Entry::private(payload_size));
                }
            }
        }
        let payload = arena.map_or(payload_size, |a| a.payload());
        let mut queue = Queue {
            ring,
            entries,
            qid,
            fd: fd.as_raw_fd(),
            adopted: Vec::with_capacity(SLOTS),
            committing: Vec::with_capacity(SLOTS),
            request: Vec::with_capacity(payload + REQ_HEADER_SIZE),
            done: Vec::with_capacity(SLOTS * 2),
        };
        if !adopted.is_empty() {
            info!(
                "io_uring queue {qid}: {} requests left unanswered in ring entries by the previous \
                 worker are answered now",
                adopted.len()
            );
        }
        for (index, unique, how) in adopted {
            match how {
                Adoption::Serve => queue.adopted.push(index),
                Adoption::Commit => queue.commit(index, unique)?,
                Adoption::Fail => {
                    warn!(
                        "io_uring queue {qid}: request {unique:#x} left by the previous worker was \
                         overwritten by its reply in part; answering EIO"
                    );
                    let _ = crate::fuse::reply::error(&mut queue.sink(index), unique, Errno::EIO);
                    queue.commit(index, unique)?;
                }
            }
        }
        for index in fresh {
            // A slot not adopted may still hold an old request: it must not look like one
            // to a successor before the kernel puts a new one there.
            queue.entries[index].header_mut().fill(0);
            queue.submit_register(index)?;
        }
        queue.ring.submit()?;
        Ok(queue)
    }

    fn submit_register(&mut self, index: usize) -> io::Result<()> {
        let sqe = command(self.fd, CMD_REGISTER, self.qid, 0, index);
        let sqe = with_iovecs(sqe, self.entries[index].iov.as_ptr(), 2);
        self.entries[index].last = 0;
        self.push(sqe)
    }

    /// Queues again the last command of entry `index` (after the kernel refused it for a
    /// while: the reply it commits is still in the entry).
    pub fn retry(&mut self, index: usize) -> io::Result<()> {
        match self.entries.get(index).map(|e| e.last) {
            None => Ok(()),
            Some(0) => self.submit_register(index),
            Some(unique) => self.commit(index, unique),
        }
    }

    fn push(&mut self, sqe: squeue::Entry128) -> io::Result<()> {
        // SAFETY: every buffer the command names (the entry's iovecs, header and payload)
        // lives as long as the ring: entries are dropped only with the queue, and arena
        // slots outlive it.
        unsafe { self.ring.submission().push(&sqe) }
            .map_err(|_| io::Error::other("the io_uring submission queue is full"))
    }

    /// Hands out the next adopted request, if any; otherwise submits what was queued
    /// (noting the commits answered), waits for at least one completion and hands each to
    /// `serve`. EINTR (a kick) returns with nothing served.
    pub fn turn(&mut self, mut serve: impl FnMut(&mut Self, Event<'_>)) -> io::Result<()> {
        if let Some(index) = self.adopted.pop() {
            // Noted again, should this worker die while answering it too.
            self.entries[index].note_received();
            if assemble(&self.entries[index], &mut self.request) {
                let mut bytes = std::mem::take(&mut self.request);
                // Served as the kernel would resend it, so that a request that crashed the
                // worker is known again (the journal's poison pill).
                if let Some(unique) = bytes.get_mut(UNIQUE_AT..UNIQUE_AT + 8) {
                    let plain = u64::from_ne_bytes(unique.try_into().unwrap_or_default());
                    unique.copy_from_slice(&(plain | RESENT).to_ne_bytes());
                }
                serve(
                    self,
                    Event::Request {
                        index,
                        bytes: &bytes,
                    },
                );
                self.request = bytes;
            } else {
                warn!(
                    "io_uring queue {}: entry {index} left by the previous worker holds no \
                     consistent request",
                    self.qid
                );
            }
            return Ok(());
        }
        match self.ring.submit_and_wait(1) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(nix::libc::EINTR) => return Ok(()),
            Err(e) => return Err(e),
        }
        self.note_committed();
        let mut done = std::mem::take(&mut self.done);
        done.clear();
        done.extend(
            self.ring
                .completion()
                .map(|c| (c.user_data() as usize, c.result())),
        );
        for &(index, result) in &done {
            if result < 0 {
                let errno = Errno::from_raw(-result);
                if let Some(entry) = self.entries.get_mut(index).filter(|e| e.adopting) {
                    // The request was answered after all (the predecessor's commit went
                    // through just before it died): the entry is nobody's now.
                    debug!(
                        "io_uring queue {}: entry {index}'s request was already answered ({errno})",
                        self.qid
                    );
                    entry.adopting = false;
                    entry.header_mut().fill(0);
                    continue;
                }
                serve(self, Event::Failed { index, errno });
                continue;
            }
            if let Some(entry) = self.entries.get_mut(index) {
                entry.adopting = false;
                entry.note_received();
            }
            if index >= self.entries.len() || !assemble(&self.entries[index], &mut self.request) {
                warn!(
                    "io_uring queue {}: entry {index} holds no request",
                    self.qid
                );
                continue;
            }
            let bytes = std::mem::take(&mut self.request);
            serve(
                self,
                Event::Request {
                    index,
                    bytes: &bytes,
                },
            );
            self.request = bytes;
        }
        self.done = done;
        Ok(())
    }

    /// A sink writing a reply into entry `index`.
    pub fn sink(&mut self, index: usize) -> EntrySink<'_> {
        EntrySink {
            entry: &mut self.entries[index],
            written: false,
        }
    }

    /// Queues the COMMIT_AND_FETCH of entry `index`, which answers `unique` (without
    /// [`RESENT`]: the kernel knows ring requests by their plain `unique`).
    pub fn commit(&mut self, index: usize, unique: u64) -> io::Result<()> {
        let unique = unique & !RESENT;
        let entry = &mut self.entries[index];
        entry.header_mut()[UNIQUE_AT..UNIQUE_AT + 8].copy_from_slice(&unique.to_ne_bytes());
        let sqe = command(self.fd, CMD_COMMIT_AND_FETCH, self.qid, unique, index);
        entry.last = unique;
        self.push(sqe)?;
        self.committing.push((index, unique));
        Ok(())
    }

    /// Notes the commits just submitted as answered in their entries. Noted only once
    /// submitted, so that a successor never takes a request still unanswered for answered;
    /// noted after the wait that follows the submission (one system call for both), so a
    /// worker that dies waiting leaves answered requests looking unanswered: a successor's
    /// commit of one is refused (ENOENT, a line in the kernel log) and costs nothing else.
    fn note_committed(&mut self) {
        for (index, unique) in std::mem::take(&mut self.committing) {
            self.entries[index].set_answered(unique);
        }
    }

    /// Submits queued commands without waiting.
    pub fn flush(&mut self) -> io::Result<()> {
        self.ring.submit()?;
        self.note_committed();
        Ok(())
    }
}

/// Writes a reply into a ring entry: the header into `in_out`, the payload into the payload
/// buffer, its length into `ring_ent_in_out`.
pub struct EntrySink<'a> {
    entry: &'a mut Entry,
    written: bool,
}

impl EntrySink<'_> {
    /// Whether a reply was written.
    pub fn written(&self) -> bool {
        self.written
    }
}

impl Sink for EntrySink<'_> {
    fn write_reply(&mut self, parts: &[IoSlice<'_>]) -> io::Result<usize> {
        let Some((head, rest)) = parts.split_first() else {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        };
        if head.len() != OUT_HEADER {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        let total: usize = rest.iter().map(|p| p.len()).sum();
        let unique = u64::read_from_prefix(&head[UNIQUE_AT..]).map_or(0, |(u, _)| u) & !RESENT;
        if total > self.entry.payload_len {
            error!("a reply of {total} bytes does not fit the ring entry");
            return Err(io::Error::from_raw_os_error(nix::libc::EINVAL));
        }
        self.entry.note(REPLYING_AT, unique);
        let mut at = 0;
        let payload = self.entry.payload_mut();
        for p in rest {
            payload[at..at + p.len()].copy_from_slice(p);
            at += p.len();
        }
        self.entry.header_mut()[..OUT_HEADER].copy_from_slice(head);
        let mut ent = self.entry.ent_in_out();
        ent.payload_sz = total as u32;
        self.entry.set_ent_in_out(ent);
        self.entry.note(REPLIED_AT, unique);
        self.written = true;
        debug!("ring reply of {total} bytes");
        Ok(OUT_HEADER + total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iovecs_land_in_the_sqe_addr_and_len() {
        let sqe = command(7, CMD_REGISTER, 1, 0, 3);
        let iov = [nix::libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; 2];
        let sqe = with_iovecs(sqe, iov.as_ptr(), 2);
        // SAFETY: as in `with_iovecs`.
        let bytes: &[u8; 128] = unsafe { &*(&sqe as *const squeue::Entry128).cast() };
        assert_eq!(bytes[0], 46, "IORING_OP_URING_CMD");
        assert_eq!(i32::from_ne_bytes(bytes[4..8].try_into().unwrap()), 7, "fd");
        assert_eq!(
            u32::from_ne_bytes(bytes[8..12].try_into().unwrap()),
            CMD_REGISTER
        );
        assert_eq!(
            u64::from_ne_bytes(bytes[16..24].try_into().unwrap()),
            iov.as_ptr() as u64
        );
        assert_eq!(u32::from_ne_bytes(bytes[24..28].try_into().unwrap()), 2);
        let req = CmdReq::read_from_prefix(&bytes[48..]).unwrap().0;
        assert_eq!(req.qid, 1);
        assert_eq!(
            u64::from_ne_bytes(bytes[32..40].try_into().unwrap()),
            3,
            "user_data"
        );
    }

    #[test]
    fn a_request_is_rebuilt_and_a_reply_written_in_place() {
        let mut entry = Entry::private(4096);
        let header = entry.header_mut();
        // len = 40 + 8 (first argument) + 5 (the rest); opcode 1; unique 42.
        header[..4].copy_from_slice(&53u32.to_ne_bytes());
        header[4..8].copy_from_slice(&1u32.to_ne_bytes());
        header[8..16].copy_from_slice(&42u64.to_ne_bytes());
        header[IN_OUT_SIZE..IN_OUT_SIZE + 8].copy_from_slice(b"firstarg");
        let ent = EntInOut {
            payload_sz: 5,
            ..Default::default()
        };
        header[ENT_IN_OUT_AT..ENT_IN_OUT_AT + 32].copy_from_slice(ent.as_bytes());
        entry.payload_mut()[..5].copy_from_slice(b"rest!");
        let mut request = Vec::new();
        assert!(assemble(&entry, &mut request));
        assert_eq!(request.len(), 53);
        assert_eq!(&request[40..], b"firstargrest!");
        assert_eq!(u64::from_ne_bytes(request[8..16].try_into().unwrap()), 42);
        // A length that cannot hold the payload is refused, not trusted.
        entry.header_mut()[..4].copy_from_slice(&20u32.to_ne_bytes());
        assert!(!assemble(&entry, &mut request));
        entry.header_mut()[..4].copy_from_slice(&53u32.to_ne_bytes());
        let mut sink = EntrySink {
            entry: &mut entry,
            written: false,
        };
        assert!(!sink.written());
        let out = [1u8; OUT_HEADER];
        sink.write_reply(&[IoSlice::new(&out), IoSlice::new(b"ab"), IoSlice::new(b"cd")])
            .unwrap();
        assert!(sink.written());
        assert_eq!(&entry.payload()[..4], b"abcd");
        assert_eq!(entry.ent_in_out().payload_sz, 4);
    }

    /// Puts into `entry` what the kernel writes for a request: its header (`len` counting
    /// an 8-byte first argument and `rest` payload bytes, opcode 15), its first argument,
    /// `commit_id` and the payload size.
    fn put_request(entry: &mut Entry, unique: u64, rest: u32) {
        let header = entry.header_mut();
        header[..4].copy_from_slice(&(IN_HEADER as u32 + 8 + rest).to_ne_bytes());
        header[4..8].copy_from_slice(&15u32.to_ne_bytes());
        header[8..16].copy_from_slice(&unique.to_ne_bytes());
        header[16..24].copy_from_slice(&7u64.to_ne_bytes());
        header[IN_OUT_SIZE..IN_OUT_SIZE + 8].copy_from_slice(b"firstarg");
        entry.set_ent_in_out(EntInOut {
            commit_id: unique,
            payload_sz: rest,
            ..Default::default()
        });
        entry.payload_mut()[..rest as usize].fill(b'p');
    }

    fn reply(entry: &mut Entry, unique: u64, payload: &[u8]) {
        let mut head = [0u8; OUT_HEADER];
        head[..4].copy_from_slice(&((OUT_HEADER + payload.len()) as u32).to_ne_bytes());
        head[8..16].copy_from_slice(&(unique | RESENT).to_ne_bytes());
        let mut sink = EntrySink {
            entry,
            written: false,
        };
        sink.write_reply(&[IoSlice::new(&head), IoSlice::new(payload)])
            .unwrap();
    }

    #[test]
    fn a_successor_serves_commits_or_fails_what_was_left_by_how_far_it_got() {
        let mut entry = Entry::private(4096);
        assert_eq!(entry.left_unanswered(), None, "never used");

        // Put there, never looked at: served again as it is.
        put_request(&mut entry, 42, 0);
        let mut first = Vec::new();
        assert!(assemble(&entry, &mut first));
        assert_eq!(entry.left_unanswered(), Some((42, Adoption::Serve)));

        // Received and answered in the entry, not committed: the reply is committed as is
        // (its header says `unique` with the resent bit, as the dispatcher wrote it).
        entry.note_received();
        reply(&mut entry, 42, b"reply");
        assert_eq!(entry.left_unanswered(), Some((42, Adoption::Commit)));

        // Its commit went in: nothing left.
        entry.set_answered(42);
        assert_eq!(entry.left_unanswered(), None);

        // A reply begun over a request without payload: the header is put back as
        // received, and the request is served again, the same bytes.
        put_request(&mut entry, 44, 0);
        entry.note_received();
        entry.note(REPLYING_AT, 44);
        entry.header_mut()[..16].fill(0xee);
        entry.header_mut()[8..16].copy_from_slice(&(44 | RESENT).to_ne_bytes());
        assert_eq!(entry.left_unanswered(), Some((44, Adoption::Serve)));
        let mut again = Vec::new();
        assert!(assemble(&entry, &mut again));
        assert_eq!(again[8..16], 44u64.to_ne_bytes());
        assert_eq!(again[..8], first[..8], "length and opcode as received");
        assert_eq!(again[16..], first[16..]);

        // A reply begun over a request's payload: neither is whole, EIO.
        put_request(&mut entry, 46, 5);
        entry.note_received();
        entry.note(REPLYING_AT, 46);
        entry.payload_mut()[..5].copy_from_slice(b"reply");
        assert_eq!(entry.left_unanswered(), Some((46, Adoption::Fail)));

        // An answered request's slot taken by the kernel for the next one: that one.
        entry.set_answered(46);
        put_request(&mut entry, 48, 0);
        assert_eq!(entry.left_unanswered(), Some((48, Adoption::Serve)));
    }
}
