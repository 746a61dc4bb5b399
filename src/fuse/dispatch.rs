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

use super::filesystem::{Attr, Ctx, Filesystem};
use super::negotiate::Negotiated;
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
    /// Scratch space for directory listings.
    pub scratch: &'a mut Vec<u8>,
}

/// Splits a duration into the seconds and nanoseconds FUSE carries.
fn secs_nsecs(d: Duration) -> (u64, u32) {
    (d.as_secs(), d.subsec_nanos())
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
        let answer = |out: &mut _, result: Result<(), Errno>| match result {
            Ok(()) => Ok(()),
            Err(errno) => reply::error(out, unique, errno),
        };
        match req.op {
            Op::Init(offer) => match Negotiated::from_offer(offer) {
                Ok(n) => {
                    debug!(
                        "INIT: kernel {}.{} flags {:#x}; answering 7.{} flags {:#x}",
                        offer.major, offer.minor, offer.flags, n.minor, n.flags
                    );
                    *self.init.write() = Some(n);
                    reply::value(out, unique, &n.init_out())?;
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
                let r = self.fs.lookup(ctx, ino, name).map(|e| {
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
                });
                match r {
                    Ok(entry) => reply::value(out, unique, &entry)?,
                    Err(e) => reply::error(out, unique, e)?,
                }
            }
            Op::Getattr => match self.fs.getattr(ctx, ino) {
                Ok((attr, ttl)) => {
                    let (attr_valid, attr_valid_nsec) = secs_nsecs(ttl);
                    let body = fuse_attr_out {
                        attr_valid,
                        attr_valid_nsec,
                        dummy: 0,
                        attr: fuse_attr_of(&attr),
                    };
                    reply::value(out, unique, &body)?;
                }
                Err(e) => reply::error(out, unique, e)?,
            },
            Op::Readlink => match self.fs.readlink(ctx, ino) {
                Ok(target) => reply::send(out, unique, &[&target])?,
                Err(e) => reply::error(out, unique, e)?,
            },
            Op::Open { flags } => match self.fs.open(ctx, ino, flags) {
                Ok(o) => {
                    let body = fuse_open_out {
                        fh: o.fh,
                        open_flags: if o.direct_io { FOPEN_DIRECT_IO } else { 0 },
                        backing_id: 0,
                    };
                    reply::value(out, unique, &body)?;
                }
                Err(e) => reply::error(out, unique, e)?,
            },
            Op::Read {
                fh,
                offset,
                size,
                lock_owner,
            } => match self.fs.read(ctx, ino, fh, offset, size, lock_owner) {
                Ok(data) => reply::send(out, unique, &[data.bytes()])?,
                Err(e) => reply::error(out, unique, e)?,
            },
            Op::Release { fh } => {
                self.fs.release(ino, fh);
                reply::send(out, unique, &[])?;
            }
            Op::Opendir => match self.fs.opendir(ctx, ino) {
                Ok(fh) => {
                    let body = fuse_open_out {
                        fh,
                        open_flags: 0,
                        backing_id: 0,
                    };
                    reply::value(out, unique, &body)?;
                }
                Err(e) => reply::error(out, unique, e)?,
            },
            Op::Readdir { fh, offset, size } => {
                let mut dir = DirBuf::new(self.scratch, size as usize);
                let r = self.fs.readdir(ctx, ino, fh, offset, &mut dir);
                match r {
                    Ok(()) => reply::send(out, unique, &[dir.bytes()])?,
                    Err(e) => reply::error(out, unique, e)?,
                }
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
                answer(out, Err(Errno::ENOSYS))?
            }
            // What the kernel's own files answer for a terminal ioctl; the kernel does not
            // remember an ENOSYS here, so every isatty() comes, and is answered quietly.
            Op::Ioctl => answer(out, Err(Errno::ENOTTY))?,
            Op::Other(opcode) => {
                if self.unsupported.first(opcode) {
                    warn!("FUSE opcode {opcode} is not supported; answering ENOSYS");
                }
                answer(out, Err(Errno::ENOSYS))?;
            }
        }
        Ok(Outcome::Served)
    }
}

#[cfg(test)]
mod tests;
