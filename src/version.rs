//! The version lxcfs-rs reports (`--version`, `status`): the package version, plus a build
//! tag when one was stamped into the binary.
//!
//! The tag is 8 bytes inside a marker that occurs once in the binary, so a packager (or the
//! upgrade tests, which need two binaries that say different versions) can stamp a build by
//! rewriting those bytes in place; `--------` means none.

/// The marker with the tag in the middle. Read through a volatile load, so the compiler
/// keeps the bytes in the binary and never folds them into the code that reads them.
#[used]
static MARKER: [u8; 25] = *b"@@lxcfs-rs-tag:--------@@";

/// The stamped build tag, if any.
pub fn tag() -> Option<String> {
    // SAFETY: MARKER is a valid, aligned static; the volatile read only stops constant folding.
    let marker: [u8; 25] = unsafe { std::ptr::read_volatile(&raw const MARKER) };
    let tag = &marker[15..23];
    (tag != b"--------" && tag.iter().all(u8::is_ascii_alphanumeric))
        .then(|| String::from_utf8_lossy(tag).into_owned())
}

/// The version string: `0.1.0`, or `0.1.0+TAG` for a stamped build.
pub fn version() -> String {
    match tag() {
        Some(tag) => format!("{}+{tag}", env!("CARGO_PKG_VERSION")),
        None => env!("CARGO_PKG_VERSION").to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_unstamped_build_says_the_package_version() {
        assert_eq!(super::tag(), None);
        assert_eq!(super::version(), env!("CARGO_PKG_VERSION"));
    }
}
