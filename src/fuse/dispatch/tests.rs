use super::*;
use crate::fuse::filesystem::{Entry, FileKind, Opened, ReadData};
use crate::fuse::request::tests::request;
use fuse_abi::linux::fuse_opcode::{self, *};
use fuse_abi::linux::{fuse_init_in, fuse_init_out, fuse_out_header, fuse_read_in};
use std::sync::Arc;
use std::time::SystemTime;
use zerocopy::{FromBytes, IntoBytes};

/// One file, node 5, whose content is "hello"; every fh is accepted.
struct Hello;

fn attr(ino: u64) -> Attr {
    Attr {
        ino,
        kind: if ino == 1 {
            FileKind::Dir
        } else {
            FileKind::File
        },
        perm: 0o444,
        nlink: 1,
        size: 4096,
        time: SystemTime::UNIX_EPOCH + Duration::from_secs(1_000),
    }
}

impl Filesystem for Hello {
    fn lookup(&self, _: Ctx, parent: u64, name: &[u8]) -> Result<Entry, Errno> {
        if parent == 1 && name == b"hello" {
            Ok(Entry {
                attr: attr(5),
                entry_ttl: Duration::from_secs(1),
                attr_ttl: Duration::ZERO,
            })
        } else {
            Err(Errno::ENOENT)
        }
    }
    fn getattr(&self, _: Ctx, ino: u64) -> Result<(Attr, Duration), Errno> {
        Ok((attr(ino), Duration::from_millis(1500)))
    }
    fn readlink(&self, _: Ctx, _: u64) -> Result<Vec<u8>, Errno> {
        Ok(b"target".to_vec())
    }
    fn open(&self, _: Ctx, _: u64, _: u32) -> Result<Opened, Errno> {
        Ok(Opened {
            fh: 1 << 40 | 1,
            direct_io: true,
        })
    }
    fn read(
        &self,
        ctx: Ctx,
        _: u64,
        _: u64,
        offset: u64,
        size: u32,
        _: Option<u64>,
    ) -> Result<ReadData, Errno> {
        assert_eq!(ctx.pid, 4242, "the caller's pid reaches the filesystem");
        Ok(ReadData::slice(Arc::from(&b"hello"[..]), offset, size))
    }
    fn release(&self, _: u64, _: u64) {}
    fn opendir(&self, _: Ctx, _: u64) -> Result<u64, Errno> {
        Ok(3)
    }
    fn readdir(
        &self,
        _: Ctx,
        _: u64,
        _: u64,
        offset: u64,
        out: &mut DirBuf<'_>,
    ) -> Result<(), Errno> {
        for (i, name) in [&b"."[..], b"..", b"hello"]
            .iter()
            .enumerate()
            .skip(offset as usize)
        {
            if !out.add(1, i as u64 + 1, FileKind::File, name) {
                break;
            }
        }
        Ok(())
    }
    fn releasedir(&self, _: u64, _: u64) {}
}

/// Serves `bytes`; returns the outcome and what was written.
fn serve(bytes: &[u8]) -> (Outcome, Vec<u8>) {
    serve_with(bytes, &RwLock::new(None), &Unsupported::default())
}

fn serve_with(
    bytes: &[u8],
    init: &RwLock<Option<Negotiated>>,
    unsupported: &Unsupported,
) -> (Outcome, Vec<u8>) {
    serve_observed(bytes, init, unsupported, &crate::fuse::observer::Unobserved)
}

fn serve_observed(
    bytes: &[u8],
    init: &RwLock<Option<Negotiated>>,
    unsupported: &Unsupported,
    observer: &dyn Observer,
) -> (Outcome, Vec<u8>) {
    let mut scratch = Vec::new();
    let mut out = Vec::new();
    let outcome = Dispatcher {
        fs: &Hello,
        init,
        unsupported,
        observer,
        scratch: &mut scratch,
        io_uring: false,
    }
    .serve(bytes, &mut out)
    .unwrap();
    (outcome, out)
}

/// A reply's header and payload.
fn parse(reply: &[u8]) -> (fuse_out_header, &[u8]) {
    let (h, rest) = fuse_out_header::read_from_prefix(reply).unwrap();
    assert_eq!(
        h.len as usize,
        reply.len(),
        "header length matches the bytes"
    );
    (h, rest)
}

fn errno_of(reply: &[u8]) -> i32 {
    -parse(reply).0.error
}

fn read_in(offset: u64, size: u32) -> Vec<u8> {
    fuse_read_in {
        fh: 1 << 40 | 1,
        offset,
        size,
        read_flags: fuse_abi::linux::FUSE_READ_LOCKOWNER,
        lock_owner: 1,
        flags: 0,
        padding: 0,
    }
    .as_bytes()
    .to_vec()
}

/// The INIT offer of kernel 6.18 (FUSE 7.45, FUSE_HAS_RESEND among its flags).
fn kernel_6_18_offer() -> fuse_init_in {
    fuse_init_in {
        major: 7,
        minor: 45,
        max_readahead: 65536,
        flags: 0x73fffffb | fuse_abi::linux::FUSE_INIT_EXT,
        flags2: 0x5fd,
        unused: [0; 11],
    }
}

#[test]
fn init_is_answered_at_any_time_and_remembered() {
    let offer = kernel_6_18_offer();
    let init = RwLock::new(None);
    for unique in [2, 0x8000_0000_0000_0002] {
        let (_, out) = serve_with(
            &request(FUSE_INIT, unique, 0, offer.as_bytes()),
            &init,
            &Unsupported::default(),
        );
        let (h, body) = parse(&out);
        assert_eq!((h.unique, h.error), (unique, 0));
        let reply = fuse_init_out::read_from_bytes(body).unwrap();
        assert_eq!(
            (reply.major, reply.minor, reply.max_readahead),
            (7, 40, 65536)
        );
        assert!(init.read().unwrap().has_resend());
    }
    let old = fuse_init_in { minor: 20, ..offer };
    let (_, out) = serve(&request(FUSE_INIT, 3, 0, old.as_bytes()));
    assert_eq!(errno_of(&out), Errno::EPROTO as i32);
}

#[test]
fn a_resent_request_is_answered_with_its_unique_bit_63_included() {
    let unique = 0x8000_0000_0000_0016;
    let (_, out) = serve(&request(FUSE_READ, unique, 5, &read_in(1, 3)));
    let (h, body) = parse(&out);
    assert_eq!(h.unique, unique);
    assert_eq!(body, b"ell");
}

/// Says request 0x16 is a poison pill, and records the handshake it hears of.
#[derive(Default)]
struct Poison {
    heard: parking_lot::Mutex<Option<Negotiated>>,
}

impl Observer for Poison {
    fn initialised(&self, n: &Negotiated) {
        *self.heard.lock() = Some(*n);
    }
    fn poisoned(&self, base: u64) -> bool {
        base == 0x16
    }
}

#[test]
fn a_poisoned_request_is_answered_eio_only_when_it_comes_back() {
    let poison = Poison::default();
    let serve = |unique| {
        serve_observed(
            &request(FUSE_READ, unique, 5, &read_in(0, 5)),
            &RwLock::new(None),
            &Unsupported::default(),
            &poison,
        )
        .1
    };
    let resent = serve(0x8000_0000_0000_0016);
    assert_eq!(parse(&resent).0.unique, 0x8000_0000_0000_0016);
    assert_eq!(errno_of(&resent), Errno::EIO as i32);
    assert_eq!(
        parse(&serve(0x16)).1,
        b"hello",
        "a first delivery is served"
    );
    assert_eq!(
        parse(&serve(0x8000_0000_0000_0017)).1,
        b"hello",
        "another resent request is served"
    );
    // No answer goes to a request that takes none, poisoned or not.
    let (_, out) = serve_observed(
        &request(FUSE_FORGET, 0x8000_0000_0000_0016, 5, &[0; 8]),
        &RwLock::new(None),
        &Unsupported::default(),
        &poison,
    );
    assert!(out.is_empty());
}

#[test]
fn the_observer_hears_the_handshake() {
    let poison = Poison::default();
    let offer = kernel_6_18_offer();
    serve_observed(
        &request(FUSE_INIT, 2, 0, offer.as_bytes()),
        &RwLock::new(None),
        &Unsupported::default(),
        &poison,
    );
    assert!(poison.heard.lock().is_some_and(|n| n.has_resend()));
}

#[test]
fn entries_and_attributes_carry_ids_ttls_and_modes() {
    let (_, out) = serve(&request(FUSE_LOOKUP, 9, 1, b"hello\0"));
    let e = fuse_entry_out::read_from_bytes(parse(&out).1).unwrap();
    assert_eq!((e.nodeid, e.entry_valid, e.attr_valid), (5, 1, 0));
    assert_eq!(e.attr.mode, nix::libc::S_IFREG | 0o444);
    assert_eq!(
        (e.attr.ino, e.attr.size, e.attr.blocks, e.attr.mtime),
        (5, 4096, 8, 1_000)
    );
    let (_, out) = serve(&request(FUSE_LOOKUP, 9, 1, b"nope\0"));
    assert_eq!(errno_of(&out), Errno::ENOENT as i32);

    let (_, out) = serve(&request(FUSE_GETATTR, 10, 1, &[0; 16]));
    let a = fuse_attr_out::read_from_bytes(parse(&out).1).unwrap();
    assert_eq!((a.attr_valid, a.attr_valid_nsec), (1, 500_000_000));
    assert_eq!(a.attr.mode, nix::libc::S_IFDIR | 0o444);
}

#[test]
fn open_read_release_and_directories() {
    let (_, out) = serve(&request(FUSE_OPEN, 11, 5, &[0; 8]));
    let o = fuse_open_out::read_from_bytes(parse(&out).1).unwrap();
    assert_eq!((o.fh, o.open_flags), (1 << 40 | 1, FOPEN_DIRECT_IO));
    let (_, out) = serve(&request(FUSE_READ, 12, 5, &read_in(0, 4096)));
    assert_eq!(parse(&out).1, b"hello");
    let (_, out) = serve(&request(FUSE_READ, 13, 5, &read_in(5, 4096)));
    assert_eq!(parse(&out).1, b"", "EOF is an empty reply");
    let (_, out) = serve(&request(FUSE_RELEASE, 14, 5, &[0; 24]));
    assert_eq!(
        parse(&out),
        (
            fuse_out_header {
                len: 16,
                error: 0,
                unique: 14
            },
            &[][..]
        )
    );
    let (_, out) = serve(&request(FUSE_OPENDIR, 15, 1, &[0; 8]));
    assert_eq!(fuse_open_out::read_from_bytes(parse(&out).1).unwrap().fh, 3);
    // Room for two 32-byte records only.
    let mut small = read_in(0, 64);
    small[..8].copy_from_slice(&3u64.to_ne_bytes());
    let (_, out) = serve(&request(FUSE_READDIR, 16, 1, &small));
    assert_eq!(parse(&out).1.len(), 64);
    let (_, out) = serve(&request(FUSE_RELEASEDIR, 17, 1, &[0; 24]));
    assert_eq!(errno_of(&out), 0);
    let (_, out) = serve(&request(FUSE_READLINK, 18, 6, &[]));
    assert_eq!(parse(&out).1, b"target");
}

#[test]
fn what_every_filesystem_answers_alike() {
    // STATFS answered: runc with a user namespace statfs()es bind sources.
    let (_, out) = serve(&request(FUSE_STATFS, 20, 1, &[]));
    let s = fuse_statfs_out::read_from_bytes(parse(&out).1).unwrap();
    assert_eq!((s.st.bsize, s.st.namelen), (4096, 255));
    for (op, errno) in [
        (FUSE_FLUSH, Errno::ENOSYS),
        (FUSE_GETXATTR, Errno::ENOSYS),
        (FUSE_LISTXATTR, Errno::ENOSYS),
        (FUSE_ACCESS, Errno::ENOSYS),
        (FUSE_STATX, Errno::ENOSYS),
        (FUSE_IOCTL, Errno::ENOTTY),
        (FUSE_WRITE, Errno::ENOSYS),
        (FUSE_MKDIR, Errno::ENOSYS),
    ] {
        let (_, out) = serve(&request(op, 21, 5, &[0; 64]));
        assert_eq!(errno_of(&out), errno as i32, "{op:?}");
    }
    // No reply at all.
    for op in [FUSE_FORGET, FUSE_BATCH_FORGET, FUSE_INTERRUPT] {
        let (outcome, out) = serve(&request(op, 22, 5, &[0; 16]));
        assert_eq!((outcome, out.len()), (Outcome::Served, 0), "{op:?}");
    }
    let (outcome, out) = serve(&request(FUSE_DESTROY, 23, 0, &[]));
    assert_eq!(outcome, Outcome::Destroyed);
    assert_eq!(errno_of(&out), 0);
}

#[test]
fn unsupported_opcodes_are_logged_once_each() {
    let seen = Unsupported::default();
    assert!(seen.first(fuse_opcode::FUSE_WRITE as u32));
    assert!(!seen.first(fuse_opcode::FUSE_WRITE as u32));
    assert!(seen.first(fuse_opcode::FUSE_MKDIR as u32));
    assert!(seen.first(4096), "CUSE_INIT and beyond share one flag");
    assert!(!seen.first(1 << 20));
}

#[test]
fn malformed_requests_get_eio_or_are_dropped() {
    let (_, out) = serve(&request(FUSE_READ, 30, 5, &[0; 10]));
    assert_eq!(parse(&out).0.unique, 30);
    assert_eq!(errno_of(&out), Errno::EIO as i32);
    let (_, out) = serve(&[1, 2, 3]);
    assert!(out.is_empty(), "no header, nobody to answer");
}
