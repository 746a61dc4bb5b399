use super::*;
use fuse_abi::linux::fuse_opcode::*;
use proptest::prelude::*;
use zerocopy::IntoBytes;

/// The bytes of a request: header (`len` filled in) then `body`.
pub(crate) fn request(opcode: fuse_opcode, unique: u64, nodeid: u64, body: &[u8]) -> Vec<u8> {
    let header = fuse_in_header {
        len: (40 + body.len()) as u32,
        opcode: opcode as u32,
        unique,
        nodeid,
        uid: 0,
        gid: 0,
        pid: 4242,
        total_extlen: 0,
        padding: 0,
    };
    let mut v = header.as_bytes().to_vec();
    v.extend_from_slice(body);
    v
}

fn read_in(fh: u64, offset: u64, size: u32, lock_owner: Option<u64>) -> Vec<u8> {
    fuse_read_in {
        fh,
        offset,
        size,
        read_flags: if lock_owner.is_some() {
            READ_LOCKOWNER
        } else {
            0
        },
        lock_owner: lock_owner.unwrap_or(0),
        flags: 0,
        padding: 0,
    }
    .as_bytes()
    .to_vec()
}

fn op(bytes: &[u8]) -> Op<'_> {
    decode(bytes).unwrap().op
}

#[test]
fn the_header_is_kept_whole() {
    let bytes = request(FUSE_GETATTR, 0x8000_0000_0000_0016, 7, &[0; 16]);
    let req = decode(&bytes).unwrap();
    assert_eq!(
        req.header.unique, 0x8000_0000_0000_0016,
        "bit 63 (a resent request) kept"
    );
    assert_eq!(req.header.nodeid, 7);
    assert_eq!(req.header.pid, 4242);
    assert_eq!(req.op, Op::Getattr);
}

#[test]
fn init_as_kernel_6_18_sends_it() {
    let init = fuse_init_in {
        major: 7,
        minor: 45,
        max_readahead: 131072,
        flags: 0x73fffffb,
        flags2: 0x5fd,
        unused: [0; 11],
    };
    assert_eq!(
        op(&request(FUSE_INIT, 2, 0, init.as_bytes())),
        Op::Init(InitIn {
            major: 7,
            minor: 45,
            max_readahead: 131072,
            flags: 0x5fd_73ff_fffb,
        })
    );
    // An old kernel's 16-byte INIT, and flags2 ignored without FUSE_INIT_EXT.
    let short = request(FUSE_INIT, 2, 0, &init.as_bytes()[..16]);
    assert!(matches!(op(&short), Op::Init(i) if i.flags == 0x73fffffb));
    let no_ext = fuse_init_in {
        flags: 0x3fffffb,
        ..init
    };
    assert!(
        matches!(op(&request(FUSE_INIT, 2, 0, no_ext.as_bytes())), Op::Init(i) if i.flags == 0x3fffffb)
    );
}

#[test]
fn every_served_opcode_decodes() {
    let fh_in = fuse_release_in {
        fh: 9,
        flags: 0,
        release_flags: 0,
        lock_owner: 0,
    };
    let open_in = fuse_open_in {
        flags: nix::libc::O_RDONLY as u32,
        open_flags: 0,
    };
    let cases: Vec<(Vec<u8>, Op)> = vec![
        (request(FUSE_DESTROY, 1, 0, &[]), Op::Destroy),
        (
            request(FUSE_LOOKUP, 1, 1, b"proc\0"),
            Op::Lookup { name: b"proc" },
        ),
        (
            request(FUSE_FORGET, 1, 5, &[1, 0, 0, 0, 0, 0, 0, 0]),
            Op::Forget,
        ),
        (request(FUSE_BATCH_FORGET, 1, 0, &[0; 8]), Op::BatchForget),
        (request(FUSE_GETATTR, 1, 5, &[0; 16]), Op::Getattr),
        (request(FUSE_READLINK, 1, 5, &[]), Op::Readlink),
        (
            request(FUSE_OPEN, 1, 5, open_in.as_bytes()),
            Op::Open { flags: 0 },
        ),
        (
            request(FUSE_READ, 1, 5, &read_in(9, 100, 4096, Some(77))),
            Op::Read {
                fh: 9,
                offset: 100,
                size: 4096,
                lock_owner: Some(77),
            },
        ),
        (
            request(FUSE_READ, 1, 5, &read_in(9, 0, 4096, None)),
            Op::Read {
                fh: 9,
                offset: 0,
                size: 4096,
                lock_owner: None,
            },
        ),
        (
            request(FUSE_RELEASE, 1, 5, fh_in.as_bytes()),
            Op::Release { fh: 9 },
        ),
        (request(FUSE_FLUSH, 1, 5, &[0; 24]), Op::Flush),
        (request(FUSE_STATFS, 1, 1, &[]), Op::Statfs),
        (request(FUSE_GETXATTR, 1, 5, &[0; 8]), Op::Getxattr),
        (request(FUSE_LISTXATTR, 1, 5, &[0; 8]), Op::Listxattr),
        (request(FUSE_ACCESS, 1, 5, &[0; 8]), Op::Access),
        (request(FUSE_OPENDIR, 1, 1, open_in.as_bytes()), Op::Opendir),
        (
            request(FUSE_READDIR, 1, 1, &read_in(3, 2, 4096, None)),
            Op::Readdir {
                fh: 3,
                offset: 2,
                size: 4096,
            },
        ),
        (
            request(FUSE_RELEASEDIR, 1, 1, fh_in.as_bytes()),
            Op::Releasedir { fh: 9 },
        ),
        (request(FUSE_INTERRUPT, 1, 0, &[0; 8]), Op::Interrupt),
        (request(FUSE_IOCTL, 1, 5, &[0; 32]), Op::Ioctl),
        (request(FUSE_STATX, 1, 5, &[0; 24]), Op::Statx),
        (request(FUSE_WRITE, 1, 5, &[0; 40]), Op::Other(16)),
        (request(FUSE_SETXATTR, 1, 5, &[0; 8]), Op::Other(21)),
    ];
    for (bytes, want) in cases {
        assert_eq!(op(&bytes), want);
    }
}

#[test]
fn short_and_lying_requests_are_errors() {
    assert_eq!(decode(&[0; 39]), Err(DecodeError::Short(39)));
    assert_eq!(DecodeError::Short(3).unique(), None);
    let mut lying = request(FUSE_GETATTR, 5, 1, &[0; 16]);
    lying[0] = 200; // header says 200 bytes, 56 were read
    assert_eq!(
        decode(&lying),
        Err(DecodeError::Length {
            unique: 5,
            said: 200,
            read: 56
        })
    );
    for (opcode, body) in [
        (FUSE_READ, &[0u8; 39][..]),
        (FUSE_OPEN, &[0; 7][..]),
        (FUSE_RELEASE, &[0; 23][..]),
        (FUSE_INIT, &[0; 15][..]),
        (FUSE_LOOKUP, b"no terminating nul"),
    ] {
        let e = decode(&request(opcode, 6, 1, body)).unwrap_err();
        assert_eq!(
            e,
            DecodeError::Arguments {
                unique: 6,
                opcode: opcode as u32
            }
        );
        assert_eq!(e.unique(), Some(6), "answered EIO, not dropped");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20_000))]

    /// Arbitrary bytes: an error or a request, never a panic, and a name never reaches past
    /// the buffer.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(req) = decode(&bytes) {
            prop_assert_eq!(req.header.len as usize, bytes.len());
            if let Op::Lookup { name } = req.op {
                prop_assert!(name.len() + 40 < bytes.len());
            }
        }
    }

    /// Well-formed headers with any opcode, any body and any claimed length.
    #[test]
    fn lying_headers_and_truncated_bodies(
        opcode in prop_oneof![0u32..60, Just(4096u32), any::<u32>()],
        body in proptest::collection::vec(any::<u8>(), 0..200),
        cut in 0usize..240,
        said in prop_oneof![Just(None), any::<u32>().prop_map(Some)],
    ) {
        let mut bytes = request(FUSE_GETATTR, 1, 1, &body);
        bytes[4..8].copy_from_slice(&opcode.to_ne_bytes());
        if let Some(said) = said {
            bytes[..4].copy_from_slice(&said.to_ne_bytes());
        }
        bytes.truncate(cut.min(bytes.len()));
        let _ = decode(&bytes);
    }
}
