//! The state a successor needs to serve a connection it did not initialise, as a versioned
//! blob (JSON) that travels with the `/dev/fuse` descriptors.

use serde::{Deserialize, Serialize};

use super::negotiate::Negotiated;

/// The blob format this build writes and reads.
pub const STATE_VERSION: u32 = 1;

/// What a session hands over when it parks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionState {
    /// Format version: [`STATE_VERSION`].
    pub version: u32,
    /// The INIT handshake, or `None` when the kernel's INIT was never answered (the
    /// successor answers it when it comes).
    pub init: Option<Negotiated>,
    /// The parked session's generation: file handles it gave out carry it in bits 40..64.
    pub generation: u32,
    /// What the application needs besides (for lxcfs-rs: the mount point and view options).
    pub app: serde_json::Value,
}

/// Why a blob cannot be adopted.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Not the JSON of a state blob.
    #[error("the session state is malformed: {0}")]
    Malformed(#[source] serde_json::Error),
    /// Written by a build with another format.
    #[error(
        "the session state has format version {found}; this build reads version {STATE_VERSION}"
    )]
    Version {
        /// The version found, if any.
        found: String,
    },
}

impl SessionState {
    /// The blob's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        // A struct of plain fields always serialises.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads a blob, refusing any version but ours before looking at the rest.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, StateError> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(StateError::Malformed)?;
        match value.get("version") {
            Some(v) if v.as_u64() == Some(u64::from(STATE_VERSION)) => {}
            other => {
                return Err(StateError::Version {
                    found: other.map_or_else(|| "(none)".to_string(), ToString::to_string),
                });
            }
        }
        serde_json::from_value(value).map_err(StateError::Malformed)
    }

    /// The generation a successor serves under: one more, wrapping within 24 bits.
    pub fn next_generation(&self) -> u32 {
        (self.generation + 1) & 0xff_ffff
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SessionState {
        SessionState {
            version: STATE_VERSION,
            init: Some(Negotiated {
                kernel_minor: 45,
                kernel_flags: 0x5fd73fffffb,
                max_readahead: 131072,
                minor: 40,
                flags: 0x400021,
                max_write: 131072,
                max_pages: 256,
            }),
            generation: 3,
            app: serde_json::json!({"mountpoint": "/var/lib/lxcfs"}),
        }
    }

    #[test]
    fn round_trips() {
        let s = sample();
        assert_eq!(SessionState::from_bytes(&s.to_bytes()).unwrap(), s);
        let fresh = SessionState { init: None, ..s };
        assert_eq!(SessionState::from_bytes(&fresh.to_bytes()).unwrap(), fresh);
    }

    #[test]
    fn another_version_is_refused_by_name() {
        let mut v: serde_json::Value = serde_json::from_slice(&sample().to_bytes()).unwrap();
        v["version"] = 2.into();
        let e = SessionState::from_bytes(v.to_string().as_bytes()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the session state has format version 2; this build reads version 1"
        );
        v.as_object_mut().unwrap().remove("version");
        assert!(matches!(
            SessionState::from_bytes(v.to_string().as_bytes()),
            Err(StateError::Version { found }) if found == "(none)"
        ));
    }

    #[test]
    fn garbage_and_missing_fields_are_malformed() {
        assert!(matches!(
            SessionState::from_bytes(b"\x00\x01"),
            Err(StateError::Malformed(_))
        ));
        assert!(matches!(
            SessionState::from_bytes(br#"{"version":1,"generation":"x"}"#),
            Err(StateError::Malformed(_))
        ));
    }

    #[test]
    fn generations_wrap_within_24_bits() {
        let s = SessionState {
            generation: 0xff_ffff,
            ..sample()
        };
        assert_eq!(s.next_generation(), 0);
        assert_eq!(sample().next_generation(), 4);
    }
}
