//! Encoding replies: a `fuse_out_header` followed by the payload, written to `/dev/fuse` in
//! one `writev(2)`.
//!
//! Replies are assembled in a buffer each serving thread owns and reuses, and a READ's data
//! is written straight from the open file's snapshot, so answering allocates nothing.

use std::io::{self, IoSlice};
use std::os::fd::BorrowedFd;

use fuse_abi::linux::{fuse_dirent, fuse_out_header};
use nix::errno::Errno;
use zerocopy::IntoBytes;

use super::filesystem::FileKind;

/// Size of the reply header.
pub const OUT_HEADER: usize = std::mem::size_of::<fuse_out_header>();

/// Where replies go: a `/dev/fuse` descriptor, or a buffer in tests.
pub trait Sink {
    /// Writes one whole reply made of `parts`.
    fn write_reply(&mut self, parts: &[IoSlice<'_>]) -> io::Result<usize>;
}

/// A `/dev/fuse` descriptor.
pub struct DevFuse<'a>(pub BorrowedFd<'a>);

impl Sink for DevFuse<'_> {
    fn write_reply(&mut self, parts: &[IoSlice<'_>]) -> io::Result<usize> {
        Ok(nix::sys::uio::writev(self.0, parts)?)
    }
}

impl Sink for Vec<u8> {
    fn write_reply(&mut self, parts: &[IoSlice<'_>]) -> io::Result<usize> {
        let start = self.len();
        for p in parts {
            self.extend_from_slice(p);
        }
        Ok(self.len() - start)
    }
}

/// The header of a reply to `unique` carrying `payload` bytes, or an error (`errno` > 0).
fn header(unique: u64, errno: i32, payload: usize) -> fuse_out_header {
    fuse_out_header {
        len: (OUT_HEADER + payload) as u32,
        error: -errno,
        unique,
    }
}

/// Writes a reply to `unique` carrying `payload`. A reply the kernel refuses with ENOENT is
/// for a request that was interrupted and is gone: nothing to do.
pub fn send(sink: &mut impl Sink, unique: u64, payload: &[u8]) -> io::Result<()> {
    let head = header(unique, 0, payload.len());
    finish(sink.write_reply(&[IoSlice::new(head.as_bytes()), IoSlice::new(payload)]))
}

/// Answers `unique` with `errno`.
pub fn error(sink: &mut impl Sink, unique: u64, errno: Errno) -> io::Result<()> {
    let head = header(unique, errno as i32, 0);
    finish(sink.write_reply(&[IoSlice::new(head.as_bytes())]))
}

/// Answers a struct, as its bytes.
pub fn value<T: IntoBytes + zerocopy::Immutable>(
    sink: &mut impl Sink,
    unique: u64,
    value: &T,
) -> io::Result<()> {
    send(sink, unique, value.as_bytes())
}

/// Answers a struct, or the error.
pub fn value_or_error<T: IntoBytes + zerocopy::Immutable>(
    sink: &mut impl Sink,
    unique: u64,
    result: Result<T, Errno>,
) -> io::Result<()> {
    match result {
        Ok(v) => value(sink, unique, &v),
        Err(e) => error(sink, unique, e),
    }
}

/// Answers bytes, or the error.
pub fn data_or_error(
    sink: &mut impl Sink,
    unique: u64,
    result: Result<&[u8], Errno>,
) -> io::Result<()> {
    match result {
        Ok(data) => send(sink, unique, data),
        Err(e) => error(sink, unique, e),
    }
}

fn finish(written: io::Result<usize>) -> io::Result<()> {
    match written {
        Err(e) if e.raw_os_error() == Some(Errno::ENOENT as i32) => Ok(()),
        Err(e) => Err(e),
        Ok(_) => Ok(()),
    }
}

/// Fills a READDIR reply: `fuse_dirent` records, each padded to 8 bytes, up to the size the
/// kernel asked for.
pub struct DirBuf<'a> {
    buf: &'a mut Vec<u8>,
    limit: usize,
}

impl<'a> DirBuf<'a> {
    /// An empty reply of at most `limit` bytes, built in `buf` (cleared first).
    pub fn new(buf: &'a mut Vec<u8>, limit: usize) -> Self {
        buf.clear();
        DirBuf { buf, limit }
    }

    /// Adds an entry; `next` is the offset a READDIR resuming after it passes. Returns false,
    /// adding nothing, when the entry does not fit.
    pub fn add(&mut self, ino: u64, next: u64, kind: FileKind, name: &[u8]) -> bool {
        let head = fuse_dirent {
            ino,
            off: next,
            namelen: name.len() as u32,
            type_: kind.dirent_type(),
            name: Default::default(),
        };
        let unpadded = head.as_bytes().len() + name.len();
        let size = unpadded.next_multiple_of(8);
        if self.buf.len() + size > self.limit {
            return false;
        }
        self.buf.extend_from_slice(head.as_bytes());
        self.buf.extend_from_slice(name);
        self.buf.resize(self.buf.len() + size - unpadded, 0);
        true
    }

    /// The records added so far.
    pub fn bytes(&self) -> &[u8] {
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_is_a_bare_header_with_the_negated_errno() {
        let mut out = Vec::new();
        error(&mut out, 0x8000_0000_0000_0016, Errno::ENOENT).unwrap();
        assert_eq!(
            out,
            [
                16, 0, 0, 0, // len
                0xfe, 0xff, 0xff, 0xff, // -2
                0x16, 0, 0, 0, 0, 0, 0, 0x80, // unique, bit 63 kept
            ]
        );
    }

    #[test]
    fn data_follows_the_header() {
        let mut out = Vec::new();
        send(&mut out, 7, b"abcde").unwrap();
        assert_eq!(out.len(), 21);
        assert_eq!(&out[..4], &21u32.to_ne_bytes());
        assert_eq!(&out[4..8], &0i32.to_ne_bytes());
        assert_eq!(&out[8..16], &7u64.to_ne_bytes());
        assert_eq!(&out[16..], b"abcde");
    }

    #[test]
    fn dirents_are_padded_and_stop_at_the_limit() {
        let mut buf = Vec::new();
        let mut d = DirBuf::new(&mut buf, 64);
        assert!(d.add(1, 1, FileKind::Dir, b"."));
        assert_eq!(
            d.bytes().len(),
            32,
            "24-byte record head + 1 name byte, padded to 8"
        );
        assert!(d.add(5, 2, FileKind::File, b"meminfo"));
        assert_eq!(d.bytes().len(), 64);
        assert!(!d.add(6, 3, FileKind::File, b"x"), "full");
        assert_eq!(d.bytes().len(), 64);
        let second = &d.bytes()[32..];
        assert_eq!(&second[..8], &5u64.to_ne_bytes());
        assert_eq!(&second[8..16], &2u64.to_ne_bytes());
        assert_eq!(&second[16..20], &7u32.to_ne_bytes());
        assert_eq!(&second[20..24], &8u32.to_ne_bytes(), "DT_REG");
        assert_eq!(&second[24..31], b"meminfo");
        assert_eq!(second[31], 0);
    }
}
