//! One request, start to finish: decode it, answer what the protocol answers the same for
//! every filesystem, hand the rest to the [`Filesystem`], write the reply.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use fuse_abi::linux::{
    FOPEN_DIRECT_IO, fuse_attr, fuse_attr_out, fuse_entry_out, fuse_kstatfs, fuse_open_out,
    fuse_statfs_out,
};
use log::{debug, error, warn};
use nix::errno::Errno;
use parking_lot::RwLock;

use super::filesystem::{Attr, Ctx, Entry, Filesystem, ReadData};
use super::negotiate::Negotiated;
use super::observer::{Observer, RESENT};
use super::reply::{self, DirBuf, Sink};
use super::request::{self, Op};

/// What one request did to the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered (or needed no answer); read the next.
    Served,
    /// DESTROY: the kernel is tearing the mount down.
    Destroyed,
}

/// Opcodes answered ENOSYS that were already logged, so each is logged once.
pub struct Unsupported {
    seen: [AtomicBool; 64],
    other: AtomicBool,
}

impl Default for Unsupported {
    fn default() -> Self {
        Unsupported {
            seen: std::array::from_fn(|_| AtomicBool::new(false)),
            other: AtomicBool::new(false),
        }
    }
}

impl Unsupported {
    /// True the first time `opcode` is seen.
    fn first(&self, opcode: u32) -> bool {
        let flag = self.seen.get(opcode as usize).unwrap_or(&self.other);
        !flag.swap(true, Ordering::Relaxed)
    }
}

/// What dispatching needs besides the request: the filesystem, the handshake state and a
/// scratch buffer the serving thread reuses.
pub struct Dispatcher<'a, F: Filesystem> {
    /// The filesystem answering.
    pub fs: &'a F,
    /// The INIT handshake, set by the first INIT or adopted.
    pub init: &'a RwLock<Option<Negotiated>>,
    /// Opcodes already logged as unsupported.
    pub unsupported: &'a Unsupported,
    /// The session owner's hooks.
    pub observer: &'a dyn Observer,
    /// Scratch space for directory listings.
    pub scratch: &'a mut Vec<u8>,
    /// Whether INIT asks for FUSE-over-io_uring when offered.
    pub io_uring: bool,
}

/// Splits a duration into the seconds and nanoseconds FUSE carries.
fn secs_nsecs(d: Duration) -> (u64, u32) {
    (d.as_secs(), d.subsec_nanos())
}

/// LOOKUP's reply.
fn entry_out(e: &Entry) -> fuse_entry_out {
    let (entry_valid, entry_valid_nsec) = secs_nsecs(e.entry_ttl);
    let (attr_valid, attr_valid_nsec) = secs_nsecs(e.attr_ttl);
    fuse_entry_out {
        nodeid: e.attr.ino,
        generation: 0,
        entry_valid,
        attr_valid,
        entry_valid_nsec,
        attr_valid_nsec,
        attr: fuse_attr_of(&e.attr),
    }
}

/// GETATTR's reply.
fn attr_out(a: &Attr, ttl: Duration) -> fuse_attr_out {
    let (attr_valid, attr_valid_nsec) = secs_nsecs(ttl);
    fuse_attr_out {
        attr_valid,
        attr_valid_nsec,
        dummy: 0,
        attr: fuse_attr_of(a),
    }
}

/// OPEN's and OPENDIR's reply.
fn open_out(fh: u64, direct_io: bool) -> fuse_open_out {
    fuse_open_out {
        fh,
        open_flags: if direct_io { FOPEN_DIRECT_IO } else { 0 },
        backing_id: 0,
    }
}

/// The kernel's view of [`Attr`].
pub fn fuse_attr_of(a: &Attr) -> fuse_attr {
    let (secs, nsecs) = a
        .time
        .duration_since(std::time::UNIX_EPOCH)
        .map(secs_nsecs)
        .unwrap_or((0, 0));
    fuse_attr {
        ino: a.ino,
        size: a.size,
        blocks: a.size.div_ceil(512),
        atime: secs,
        mtime: secs,
        ctime: secs,
        atimensec: nsecs,
        mtimensec: nsecs,
        ctimensec: nsecs,
        mode: a.kind.mode_bits() | a.perm,
        nlink: a.nlink,
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

impl<F: Filesystem> Dispatcher<'_, F> {
    /// Serves the request in `buf` (the bytes of one `/dev/fuse` read), replying to `out`.
    pub fn serve(&mut self, buf: &[u8], out: &mut impl Sink) -> io::Result<Outcome> {
        let req = match request::decode(buf) {
            Ok(req) => req,
            Err(e) => {
                warn!("dropping a malformed FUSE request: {e}");
                if let Some(unique) = e.unique() {
                    reply::error(out, unique, Errno::EIO)?;
                }
                return Ok(Outcome::Served);
            }
        };
        let h = req.header;
        let unique = h.unique;
        let ino = h.nodeid;
        let ctx = Ctx { unique, pid: h.pid };
        let answered = !matches!(req.op, Op::Forget | Op::BatchForget | Op::Interrupt);
        if answered && unique & RESENT != 0 && self.observer.poisoned(unique & !RESENT) {
            warn!(
                "request {:#x} (opcode {}, node {ino:#x}, pid {}) was in flight at two crashes \
                 in a row; answering EIO instead of serving it again",
                unique & !RESENT,
                h.opcode,
                h.pid
            );
            reply::error(out, unique, Errno::EIO)?;
            return Ok(Outcome::Served);
        }
        match req.op {
            Op::Init(offer) => match Negotiated::from_offer(offer, self.io_uring) {
                Ok(n) => {
                    debug!(
                        "INIT: kernel {}.{} flags {:#x}; answering 7.{} flags {:#x}",
                        offer.major, offer.minor, offer.flags, n.minor, n.flags
                    );
                    *self.init.write() = Some(n);
                    reply::value(out, unique, &n.init_out())?;
                    self.observer.initialised(&n);
                }
                Err(e) => {
                    error!("{e}");
                    reply::error(out, unique, Errno::EPROTO)?;
                }
            },
            Op::Destroy => {
                reply::send(out, unique, &[])?;
                return Ok(Outcome::Destroyed);
            }
            // No reply is expected; nothing is freed (node ids are fixed hashes of paths).
            Op::Forget | Op::BatchForget | Op::Interrupt => {}
            Op::Lookup { name } => {
                let r = self.fs.lookup(ctx, ino, name);
                reply::value_or_error(out, unique, r.map(|e| entry_out(&e)))?;
            }
            Op::Getattr => {
                let r = self.fs.getattr(ctx, ino);
                reply::value_or_error(out, unique, r.map(|(a, ttl)| attr_out(&a, ttl)))?;
            }
            Op::Readlink => {
                let r = self.fs.readlink(ctx, ino);
                reply::data_or_error(out, unique, r.as_deref().map_err(|e| *e))?;
            }
            Op::Open { flags } => {
                let r = self.fs.open(ctx, ino, flags);
                reply::value_or_error(out, unique, r.map(|o| open_out(o.fh, o.direct_io)))?;
            }
            Op::Read {
                fh,
                offset,
                size,
                lock_owner,
            } => {
                let r = self.fs.read(ctx, ino, fh, offset, size, lock_owner);
                reply::data_or_error(out, unique, r.as_ref().map(ReadData::bytes).map_err(|e| *e))?;
            }
            Op::Release { fh } => {
                self.fs.release(ino, fh);
                reply::send(out, unique, &[])?;
            }
            Op::Opendir => {
                let r = self.fs.opendir(ctx, ino);
                reply::value_or_error(out, unique, r.map(|fh| open_out(fh, false)))?;
            }
            Op::Readdir { fh, offset, size } => {
                let mut dir = DirBuf::new(self.scratch, size as usize);
                let r = self.fs.readdir(ctx, ino, fh, offset, &mut dir);
                reply::data_or_error(out, unique, r.map(|()| dir.bytes()))?;
            }
            Op::Releasedir { fh } => {
                self.fs.releasedir(ino, fh);
                reply::send(out, unique, &[])?;
            }
            // runc with a user namespace statfs()es every bind source and fails on ENOSYS.
            Op::Statfs => {
                let body = fuse_statfs_out {
                    st: fuse_kstatfs {
                        bsize: 4096,
                        frsize: 4096,
                        namelen: 255,
                        ..Default::default()
                    },
                };
                reply::value(out, unique, &body)?;
            }
            // ENOSYS tells the kernel once that there is nothing to say; it stops asking
            // (for STATX it falls back to GETATTR).
            Op::Flush | Op::Getxattr | Op::Listxattr | Op::Access | Op::Statx => {
                reply::error(out, unique, Errno::ENOSYS)?
            }
            // What the kernel's own files answer for a terminal ioctl; the kernel does not
            // remember an ENOSYS here, so every isatty() comes, and is answered quietly.
            Op::Ioctl => reply::error(out, unique, Errno::ENOTTY)?,
            Op::Other(opcode) => {
                if self.unsupported.first(opcode) {
                    warn!("FUSE opcode {opcode} is not supported; answering ENOSYS");
                }
                reply::error(out, unique, Errno::ENOSYS)?;
            }
        }
        Ok(Outcome::Served)
    }
}

#[cfg(test)]
mod tests;
