//! What the owner of a session learns from it, and the one decision it takes part in: the
//! INIT handshake once made, each request taken and answered (a journal of what is in flight,
//! so that a supervisor knows which requests a dead process held), the end of the connection,
//! and whether a resent request is a poison pill that must be answered EIO.

use super::negotiate::Negotiated;

/// Bit 63 of `unique`: the kernel resent this request (`FUSE_NOTIFY_RESEND`) after an earlier
/// delivery was never answered.
pub const RESENT: u64 = 1 << 63;

/// Hooks a session calls. Every method has a default that does nothing, so an owner
/// implements only what it watches. Called on serving threads: keep them cheap.
pub trait Observer: Send + Sync + 'static {
    /// The kernel's INIT was answered with `negotiated`.
    fn initialised(&self, negotiated: &Negotiated) {
        let _ = negotiated;
    }
    /// Serving thread `thread` took request `unique` (bit 63 included) and is serving it.
    fn taken(&self, thread: usize, unique: u64) {
        let _ = (thread, unique);
    }
    /// Serving thread `thread` answered (or dropped) the request it had taken.
    fn answered(&self, thread: usize) {
        let _ = thread;
    }
    /// Whether the resent request whose first delivery was `base` (bit 63 clear) must be
    /// answered EIO rather than served again: it was in flight when serving processes died
    /// before.
    fn poisoned(&self, base: u64) -> bool {
        let _ = base;
        false
    }
    /// The connection ended (unmounted or aborted); not called on a park.
    fn ended(&self) {}
}

/// An observer that watches nothing.
pub struct Unobserved;

impl Observer for Unobserved {}

/// An observer that only hears the end of the connection.
pub struct OnEnd<F: Fn() + Send + Sync + 'static>(pub F);

impl<F: Fn() + Send + Sync + 'static> Observer for OnEnd<F> {
    fn ended(&self) {
        (self.0)()
    }
}
