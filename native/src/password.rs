//! The client password (`requirepass`): compared without leaking its length or contents through
//! timing, and failures logged so that someone guessing is seen. Nothing is rate-limited here.

use std::net::SocketAddr;

/// Whether `given` is the password, in time that depends only on the lengths.
pub fn matches(given: &[u8], expected: &str) -> bool {
    let expected = expected.as_bytes();
    let mut difference = given.len() ^ expected.len();
    for (index, byte) in given.iter().enumerate() {
        difference |= (byte ^ expected.get(index).copied().unwrap_or(0)) as usize;
    }
    difference == 0
}

/// Logs a connection's `count`-th failed authentication: the first few, then every tenth, so a
/// client guessing passwords shows in the log without flooding it.
pub fn log_failure(address: SocketAddr, port: &str, count: u64) {
    if count <= 3 || count.is_multiple_of(10) {
        tracing::warn!(%address, port, failures = count, "client authentication failed (wrong password)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_password_matches() {
        assert!(matches(b"s3cret", "s3cret"));
        for wrong in [&b""[..], b"s3cre", b"s3cret ", b"S3cret", b"s3cret\0"] {
            assert!(!matches(wrong, "s3cret"), "{wrong:?}");
        }
    }
}
