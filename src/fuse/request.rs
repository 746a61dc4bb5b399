//! Decoding what the kernel writes to `/dev/fuse`: one request per `read(2)`, a
//! `fuse_in_header` then the opcode's argument struct.
//!
//! The decoder faces the kernel on behalf of every container, so it trusts nothing: every
//! length is checked against the bytes actually read, nothing is allocated, and a request it
//! cannot make sense of becomes a [`DecodeError`] (answered EIO when its `unique` is known),
//! never a panic.

use fuse_abi::linux::{
    fuse_getattr_in, fuse_in_header, fuse_init_in, fuse_opcode, fuse_open_in, fuse_read_in,
    fuse_release_in,
};
use zerocopy::FromBytes;

/// `FUSE_READ_LOCKOWNER`: the read carries its caller's lock owner (a `read(2)`, not the
/// kernel filling its page cache).
const READ_LOCKOWNER: u32 = fuse_abi::linux::FUSE_READ_LOCKOWNER;

/// What INIT offers, as much of `fuse_init_in` as lxcfs-rs uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitIn {
    /// The kernel's protocol major version (7).
    pub major: u32,
    /// The kernel's protocol minor version.
    pub minor: u32,
    /// The kernel's read-ahead limit.
    pub max_readahead: u32,
    /// Every capability the kernel offers: `flags | flags2 << 32`.
    pub flags: u64,
}

/// One request's operation and arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op<'a> {
    /// Protocol handshake; may arrive at any time on an adopted connection.
    Init(InitIn),
    /// The filesystem is being unmounted.
    Destroy,
    /// A name in directory `nodeid`.
    Lookup {
        /// The name, without its terminating NUL.
        name: &'a [u8],
    },
    /// The kernel dropped references to `nodeid` (no reply).
    Forget,
    /// The kernel dropped references to many nodes (no reply).
    BatchForget,
    /// Attributes of `nodeid`.
    Getattr,
    /// Target of symlink `nodeid`.
    Readlink,
    /// Open file `nodeid`.
    Open {
        /// `open(2)` flags.
        flags: u32,
    },
    /// Read from an open file.
    Read {
        /// The handle OPEN returned.
        fh: u64,
        /// Byte offset.
        offset: u64,
        /// Most bytes wanted.
        size: u32,
        /// The caller's lock owner; `None` when the kernel reads for its page cache.
        lock_owner: Option<u64>,
    },
    /// Last close of an open file.
    Release {
        /// The handle OPEN returned.
        fh: u64,
    },
    /// A close of an open file.
    Flush,
    /// Filesystem statistics.
    Statfs,
    /// One extended attribute.
    Getxattr,
    /// Extended attribute names.
    Listxattr,
    /// Permission check.
    Access,
    /// `statx(2)` attributes (birth time and the like).
    Statx,
    /// Open directory `nodeid`.
    Opendir,
    /// Read entries of an open directory.
    Readdir {
        /// The handle OPENDIR returned.
        fh: u64,
        /// Index of the first entry wanted.
        offset: u64,
        /// Most bytes wanted.
        size: u32,
    },
    /// Last close of an open directory.
    Releasedir {
        /// The handle OPENDIR returned.
        fh: u64,
    },
    /// The caller of an earlier request was signalled (no reply).
    Interrupt,
    /// An `ioctl(2)` on an open file (Python's `isatty()` sends TCGETS on every open).
    Ioctl,
    /// Any other opcode.
    Other(u32),
}

/// A decoded request: its header and its operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    /// The header as the kernel sent it; `unique` is echoed in the reply, bit 63 included.
    pub header: fuse_in_header,
    /// What is asked.
    pub op: Op<'a>,
}

/// Why a request could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Fewer bytes than a header: nobody to answer.
    #[error("request of {0} bytes is shorter than a FUSE header")]
    Short(usize),
    /// The header's length disagrees with what was read.
    #[error("request {unique:#x} says it is {said} bytes long but {read} were read")]
    Length {
        /// The request's id.
        unique: u64,
        /// Its header's `len`.
        said: u32,
        /// Bytes actually read.
        read: usize,
    },
    /// The arguments are too short or malformed for the opcode.
    #[error("request {unique:#x}: malformed arguments for opcode {opcode}")]
    Arguments {
        /// The request's id.
        unique: u64,
        /// Its opcode.
        opcode: u32,
    },
}

impl DecodeError {
    /// The `unique` to answer with an error, when the header could be read.
    pub fn unique(&self) -> Option<u64> {
        match *self {
            DecodeError::Short(_) => None,
            DecodeError::Length { unique, .. } | DecodeError::Arguments { unique, .. } => {
                Some(unique)
            }
        }
    }
}

/// Reads a `T` from the front of `body`.
fn arg<T: FromBytes>(body: &[u8]) -> Option<T> {
    T::read_from_prefix(body).ok().map(|(value, _)| value)
}

/// Decodes one request from the bytes one `read(2)` of `/dev/fuse` returned.
pub fn decode(buf: &[u8]) -> Result<Request<'_>, DecodeError> {
    let (header, body) =
        fuse_in_header::read_from_prefix(buf).map_err(|_| DecodeError::Short(buf.len()))?;
    if header.len as usize != buf.len() {
        return Err(DecodeError::Length {
            unique: header.unique,
            said: header.len,
            read: buf.len(),
        });
    }
    let bad = DecodeError::Arguments {
        unique: header.unique,
        opcode: header.opcode,
    };
    let op = decode_op(header.opcode, body).ok_or(bad)?;
    Ok(Request { header, op })
}

/// The operation for `opcode` with arguments `body`, or `None` when they are malformed.
fn decode_op(opcode: u32, body: &[u8]) -> Option<Op<'_>> {
    use fuse_opcode::*;
    let is = |op: fuse_opcode| opcode == op as u32;
    Some(if is(FUSE_INIT) {
        // Only the first four fields are in every protocol version; flags2 came with 7.36.
        let word = |i: usize| arg::<u32>(body.get(i * 4..)?);
        let (major, minor, max_readahead, flags) = (word(0)?, word(1)?, word(2)?, word(3)?);
        let flags2 = if body.len() >= std::mem::size_of::<fuse_init_in>()
            && flags & fuse_abi::linux::FUSE_INIT_EXT != 0
        {
            word(4)?
        } else {
            0
        };
        Op::Init(InitIn {
            major,
            minor,
            max_readahead,
            flags: u64::from(flags) | u64::from(flags2) << 32,
        })
    } else if is(FUSE_DESTROY) {
        Op::Destroy
    } else if is(FUSE_LOOKUP) {
        let end = body.iter().position(|&b| b == 0)?;
        Op::Lookup { name: &body[..end] }
    } else if is(FUSE_FORGET) {
        Op::Forget
    } else if is(FUSE_BATCH_FORGET) {
        Op::BatchForget
    } else if is(FUSE_GETATTR) {
        // Before 7.9 GETATTR had no arguments; lxcfs-rs does not use them either.
        let _ = arg::<fuse_getattr_in>(body);
        Op::Getattr
    } else if is(FUSE_READLINK) {
        Op::Readlink
    } else if is(FUSE_OPEN) {
        Op::Open {
            flags: arg::<fuse_open_in>(body)?.flags,
        }
    } else if is(FUSE_READ) || is(FUSE_READDIR) {
        let read = arg::<fuse_read_in>(body)?;
        if is(FUSE_READ) {
            Op::Read {
                fh: read.fh,
                offset: read.offset,
                size: read.size,
                lock_owner: (read.read_flags & READ_LOCKOWNER != 0).then_some(read.lock_owner),
            }
        } else {
            Op::Readdir {
                fh: read.fh,
                offset: read.offset,
                size: read.size,
            }
        }
    } else if is(FUSE_RELEASE) {
        Op::Release {
            fh: arg::<fuse_release_in>(body)?.fh,
        }
    } else if is(FUSE_RELEASEDIR) {
        Op::Releasedir {
            fh: arg::<fuse_release_in>(body)?.fh,
        }
    } else if is(FUSE_FLUSH) {
        Op::Flush
    } else if is(FUSE_STATFS) {
        Op::Statfs
    } else if is(FUSE_GETXATTR) {
        Op::Getxattr
    } else if is(FUSE_LISTXATTR) {
        Op::Listxattr
    } else if is(FUSE_ACCESS) {
        Op::Access
    } else if is(FUSE_STATX) {
        Op::Statx
    } else if is(FUSE_OPENDIR) {
        Op::Opendir
    } else if is(FUSE_INTERRUPT) {
        Op::Interrupt
    } else if is(FUSE_IOCTL) {
        Op::Ioctl
    } else {
        Op::Other(opcode)
    })
}

#[cfg(test)]
pub(crate) mod tests;
