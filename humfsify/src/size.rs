//! The SIZE argument: decimal bytes, optionally with one K, M or G (powers of 1024).

use crate::error::{HumfsifyError, Result};

/// Parses `1048576`, `512K`, `20M`, `1G`.
pub fn parse_size(text: &str) -> Result<u64> {
    let bad = || HumfsifyError::BadSize(text.to_string());
    let (digits, multiplier) = match text.as_bytes().last() {
        Some(b'K') => (&text[..text.len() - 1], 1u64 << 10),
        Some(b'M') => (&text[..text.len() - 1], 1 << 20),
        Some(b'G') => (&text[..text.len() - 1], 1 << 30),
        _ => (text, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    n.checked_mul(multiplier).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_with_and_without_suffix() {
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert_eq!(parse_size("2K").unwrap(), 2048);
        assert_eq!(parse_size("3M").unwrap(), 3 << 20);
        assert_eq!(parse_size("1G").unwrap(), 1 << 30);
    }

    #[test]
    fn anything_else_is_refused() {
        for s in [
            "",
            "K",
            "12k",
            "1.5M",
            "-1",
            "1MB",
            "x1",
            "99999999999999999999",
            "20000000000G",
        ] {
            assert!(parse_size(s).is_err(), "{s}");
        }
    }
}
