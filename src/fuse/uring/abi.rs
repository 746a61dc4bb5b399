//! The kernel's FUSE-over-io_uring interface (`include/uapi/linux/fuse.h`, protocol 7.42,
//! Linux 6.14): the INIT flag, the two commands and the layout of a ring entry's header
//! buffer. The `fuse-abi` crate stops at 7.40, so these few definitions live here.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// INIT flag (bit 41, in `flags2`): the kernel can take requests over io_uring, and the
/// server will use it.
pub const FUSE_OVER_IO_URING: u64 = 1 << 41;

/// `FUSE_IO_URING_CMD_REGISTER`: hand the kernel an entry (a header and a payload buffer)
/// to fill with a request.
pub const CMD_REGISTER: u32 = 1;
/// `FUSE_IO_URING_CMD_COMMIT_AND_FETCH`: the entry holds the reply to `commit_id`; take it
/// and fill the entry with the next request.
pub const CMD_COMMIT_AND_FETCH: u32 = 2;

/// Bytes of `in_out`: the `fuse_in_header` of a request, then the `fuse_out_header` of its
/// reply.
pub const IN_OUT_SIZE: usize = 128;
/// Bytes of `op_in`: the request's first argument (its per-opcode struct, or a name).
pub const OP_IN_SIZE: usize = 128;
/// Where `ring_ent_in_out` starts in the header buffer.
pub const ENT_IN_OUT_AT: usize = IN_OUT_SIZE + OP_IN_SIZE;
/// Bytes of `struct fuse_uring_req_header`.
pub const REQ_HEADER_SIZE: usize = ENT_IN_OUT_AT + std::mem::size_of::<EntInOut>();

/// `struct fuse_uring_ent_in_out`: bookkeeping the kernel and the server exchange per
/// request.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct EntInOut {
    /// Unused so far.
    pub flags: u64,
    /// The id a reply commits (the request's `unique`).
    pub commit_id: u64,
    /// Bytes of the payload buffer in use: the request's arguments after the first, then the
    /// reply's payload.
    pub payload_sz: u32,
    /// Padding.
    pub padding: u32,
    /// Reserved.
    pub reserved: u64,
}

/// `struct fuse_uring_cmd_req`: the command's own bytes, in the big SQE's command area.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct CmdReq {
    /// Unused so far.
    pub flags: u64,
    /// The request a COMMIT_AND_FETCH answers.
    pub commit_id: u64,
    /// The queue (CPU) the entry belongs to.
    pub qid: u16,
    /// Padding.
    pub padding: [u8; 6],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_match_the_kernel_header() {
        assert_eq!(std::mem::size_of::<EntInOut>(), 32);
        assert_eq!(std::mem::size_of::<CmdReq>(), 24);
        assert_eq!(REQ_HEADER_SIZE, 288);
    }
}
