//! One ring queue: a thread pinned to its CPU owning an io_uring with a few registered
//! entries. The kernel puts a request into an entry of the reader's CPU's queue and
//! completes the entry's command; the thread serves it, writes the reply into the same
//! entry and commits it with one COMMIT_AND_FETCH, which also re-arms the entry.

use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, BorrowedFd};

use io_uring::{IoUring, cqueue, opcode, squeue, types};
use log::{debug, error, warn};
use nix::errno::Errno;
use zerocopy::{FromBytes, IntoBytes};

use super::abi::{
    CMD_COMMIT_AND_FETCH, CMD_REGISTER, CmdReq, ENT_IN_OUT_AT, EntInOut, IN_OUT_SIZE, OP_IN_SIZE,
    REQ_HEADER_SIZE,
};
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

/// One registered entry: the buffers the kernel reads and writes, kept at fixed addresses
/// for as long as the ring lives.
struct Entry {
    /// `struct fuse_uring_req_header`, in `u64`s for alignment.
    header: Box<[u64; REQ_HEADER_SIZE / 8]>,
    /// The payload buffer.
    payload: Vec<u8>,
    /// The two iovecs REGISTER points at.
    iov: Box<[nix::libc::iovec; 2]>,
    /// The last command submitted for the entry: REGISTER (0) or the commit of a `unique`.
    last: u64,
}

impl Entry {
    fn new(payload_size: usize) -> Self {
        let mut header = Box::new([0u64; REQ_HEADER_SIZE / 8]);
        let mut payload = vec![0u8; payload_size];
        let iov = Box::new([
            nix::libc::iovec {
                iov_base: header.as_mut_ptr().cast(),
                iov_len: REQ_HEADER_SIZE,
            },
            nix::libc::iovec {
                iov_base: payload.as_mut_ptr().cast(),
                iov_len: payload_size,
            },
        ]);
        Entry {
            header,
            payload,
            iov,
            last: 0,
        }
    }

    fn header_bytes(&mut self) -> &mut [u8] {
        self.header.as_mut_bytes()
    }

    fn ent_in_out(&self) -> EntInOut {
        EntInOut::read_from_prefix(&self.header.as_bytes()[ENT_IN_OUT_AT..])
            .map(|(e, _)| e)
            .unwrap_or_default()
    }
}

/// Rebuilds in `out` the request in `entry` as `/dev/fuse` delivers it: the header, the
/// first argument (from `op_in`) and the rest (from the payload). The header's `len` counts
/// all three, which gives the first argument's size. False when the entry holds no
/// consistent request.
fn assemble(entry: &Entry, out: &mut Vec<u8>) -> bool {
    let rest = entry.ent_in_out().payload_sz as usize;
    let header = entry.header.as_bytes();
    let Ok((len, _)) = u32::read_from_prefix(header) else {
        return false;
    };
    let Some(first) = (len as usize)
        .checked_sub(IN_HEADER + rest)
        .filter(|n| *n <= OP_IN_SIZE)
    else {
        return false;
    };
    if rest > entry.payload.len() {
        return false;
    }
    out.clear();
    out.extend_from_slice(&header[..IN_HEADER]);
    out.extend_from_slice(&header[IN_OUT_SIZE..IN_OUT_SIZE + first]);
    out.extend_from_slice(&entry.payload[..rest]);
    true
}

/// A queue's ring and entries.
pub struct Queue {
    ring: IoUring<squeue::Entry128, cqueue::Entry>,
    entries: Vec<Entry>,
    qid: u16,
    fd: i32,
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
    /// A ring for queue `qid` on `fd` with [`ENTRIES`] entries whose payload buffers hold
    /// `payload_size` bytes, each registered with the kernel.
    pub fn register(fd: BorrowedFd<'_>, qid: u16, payload_size: usize) -> io::Result<Self> {
        let ring = IoUring::<squeue::Entry128, cqueue::Entry>::builder()
            .setup_single_issuer()
            .build((ENTRIES * 2) as u32)?;
        let mut queue = Queue {
            ring,
            entries: (0..ENTRIES).map(|_| Entry::new(payload_size)).collect(),
            qid,
            fd: fd.as_raw_fd(),
            request: Vec::with_capacity(payload_size + REQ_HEADER_SIZE),
            done: Vec::with_capacity(ENTRIES * 2),
        };
        for index in 0..ENTRIES {
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
        // lives as long as the ring: entries are dropped only with the queue.
        unsafe { self.ring.submission().push(&sqe) }
            .map_err(|_| io::Error::other("the io_uring submission queue is full"))
    }

    /// Submits what was queued, waits for at least one completion and hands each to
    /// `serve`. EINTR (a kick) returns with nothing served.
    pub fn turn(&mut self, mut serve: impl FnMut(&mut Self, Event<'_>)) -> io::Result<()> {
        match self.ring.submit_and_wait(1) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(nix::libc::EINTR) => return Ok(()),
            Err(e) => return Err(e),
        }
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
                serve(self, Event::Failed { index, errno });
                continue;
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

    /// Queues the COMMIT_AND_FETCH of entry `index`, which answers `unique`.
    pub fn commit(&mut self, index: usize, unique: u64) -> io::Result<()> {
        let sqe = command(self.fd, CMD_COMMIT_AND_FETCH, self.qid, unique, index);
        self.entries[index].last = unique;
        self.push(sqe)
    }

    /// Submits queued commands without waiting.
    pub fn flush(&mut self) -> io::Result<()> {
        self.ring.submit().map(|_| ())
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
        if total > self.entry.payload.len() {
            error!("a reply of {total} bytes does not fit the ring entry");
            return Err(io::Error::from_raw_os_error(nix::libc::EINVAL));
        }
        let mut at = 0;
        for p in rest {
            self.entry.payload[at..at + p.len()].copy_from_slice(p);
            at += p.len();
        }
        self.entry.header_bytes()[..OUT_HEADER].copy_from_slice(head);
        let mut ent = self.entry.ent_in_out();
        ent.payload_sz = total as u32;
        self.entry.header_bytes()[ENT_IN_OUT_AT..ENT_IN_OUT_AT + std::mem::size_of::<EntInOut>()]
            .copy_from_slice(ent.as_bytes());
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
        let mut entry = Entry::new(4096);
        let header = entry.header_bytes();
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
        entry.payload[..5].copy_from_slice(b"rest!");
        let mut request = Vec::new();
        assert!(assemble(&entry, &mut request));
        assert_eq!(request.len(), 53);
        assert_eq!(&request[40..], b"firstargrest!");
        assert_eq!(u64::from_ne_bytes(request[8..16].try_into().unwrap()), 42);
        // A length that cannot hold the payload is refused, not trusted.
        entry.header_bytes()[..4].copy_from_slice(&20u32.to_ne_bytes());
        assert!(!assemble(&entry, &mut request));
        entry.header_bytes()[..4].copy_from_slice(&53u32.to_ne_bytes());
        let mut sink = EntrySink {
            entry: &mut entry,
            written: false,
        };
        assert!(!sink.written());
        let out = [1u8; OUT_HEADER];
        sink.write_reply(&[IoSlice::new(&out), IoSlice::new(b"ab"), IoSlice::new(b"cd")])
            .unwrap();
        assert!(sink.written());
        assert_eq!(&entry.payload[..4], b"abcd");
        assert_eq!(entry.ent_in_out().payload_sz, 4);
    }
}
