//! The channel between a supervisor and its worker: a `SOCK_SEQPACKET` pair, one byte (or
//! two) per message, so each message arrives whole and a dead peer reads as the end.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};

/// What is said on the channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message {
    /// Worker: serving threads are up.
    Ready,
    /// Supervisor: stop reading at a request boundary, leave the state on the board, exit 0.
    Park,
    /// Worker: parked; exiting.
    Parked,
    /// Supervisor: render files for readers (true) or serve the host's (false).
    Virtualize(bool),
}

impl Message {
    fn encode(self) -> &'static [u8] {
        match self {
            Message::Ready => b"R",
            Message::Park => b"P",
            Message::Parked => b"p",
            Message::Virtualize(true) => b"V1",
            Message::Virtualize(false) => b"V0",
        }
    }

    fn decode(bytes: &[u8]) -> Option<Message> {
        Some(match bytes {
            b"R" => Message::Ready,
            b"P" => Message::Park,
            b"p" => Message::Parked,
            b"V1" => Message::Virtualize(true),
            b"V0" => Message::Virtualize(false),
            _ => return None,
        })
    }
}

/// One end of the channel.
pub struct Channel(OwnedFd);

/// A connected pair: the supervisor's end and the worker's.
pub fn pair() -> io::Result<(Channel, Channel)> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    Ok((Channel(a), Channel(b)))
}

impl Channel {
    /// The end passed in a descriptor.
    pub fn from_fd(fd: OwnedFd) -> Channel {
        Channel(fd)
    }

    /// The descriptor, to poll or to pass on.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }

    /// Sends `m`.
    pub fn send(&self, m: Message) -> io::Result<()> {
        nix::unistd::write(&self.0, m.encode())?;
        Ok(())
    }

    /// The next message; `None` when the peer is gone. Unknown messages are skipped.
    pub fn recv(&self) -> io::Result<Option<Message>> {
        let mut buf = [0u8; 8];
        loop {
            match nix::unistd::read(&self.0, &mut buf) {
                Ok(0) => return Ok(None),
                Ok(n) => match Message::decode(&buf[..n]) {
                    Some(m) => return Ok(Some(m)),
                    None => log::warn!("control channel: unknown message {:?}", &buf[..n]),
                },
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_cross_whole_and_the_end_is_seen() {
        let (sup, worker) = pair().unwrap();
        for m in [
            Message::Ready,
            Message::Park,
            Message::Parked,
            Message::Virtualize(false),
            Message::Virtualize(true),
        ] {
            sup.send(m).unwrap();
            assert_eq!(worker.recv().unwrap(), Some(m));
        }
        drop(sup);
        assert_eq!(worker.recv().unwrap(), None);
    }
}
