//! The `lxcfs-rs` command.
fn main() {}
