//! lxcfs-rs's own FUSE session layer: the kernel protocol on `/dev/fuse` descriptors.
//!
//! It decodes requests ([`request`]), negotiates INIT ([`negotiate`]), encodes replies
//! ([`reply`]) and runs serving threads ([`Session`]) for any [`Filesystem`]. Unlike a
//! general FUSE library it can adopt a connection another process initialised (no INIT
//! comes), park at a request boundary to hand the descriptors on with a
//! [`SessionState`], and ask the kernel to resend requests a dead predecessor had taken.
//! Wire structs come from the `fuse-abi` crate (the kernel's `fuse.h`, protocol 7.40).
//! It knows nothing of cgroups or of what the files hold.

mod dispatch;
pub mod filesystem;
pub mod mount;
pub mod negotiate;
pub mod observer;
pub mod reply;
pub mod request;
mod session;
pub mod state;
pub mod uring;

pub use filesystem::{Attr, Ctx, Entry, FileKind, Filesystem, Opened, ReadData};
pub use negotiate::Negotiated;
pub use observer::{Observer, OnEnd, RESENT, Unobserved};
pub use session::{
    Clones, Parked, RingMemory, Session, SessionConfig, Start, Transport, clone_device, resend,
};
pub use state::{SessionState, StateError};
