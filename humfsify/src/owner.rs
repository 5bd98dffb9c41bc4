//! USER and GROUP arguments: a name from the password/group database, or a number.

use uml_proto::ids::{gid_of, uid_of};

use crate::error::{HumfsifyError, Result};

fn numeric(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// The uid for a user name or number.
pub fn resolve_user(text: &str) -> Result<u32> {
    if let Some(n) = numeric(text) {
        return Ok(n);
    }
    uid_of(text).ok_or_else(|| HumfsifyError::UnknownUser(text.to_string()))
}

/// The gid for a group name or number.
pub fn resolve_group(text: &str) -> Result<u32> {
    if let Some(n) = numeric(text) {
        return Ok(n);
    }
    gid_of(text).ok_or_else(|| HumfsifyError::UnknownGroup(text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(resolve_user("root").unwrap(), 0);
        assert_eq!(resolve_user("1234").unwrap(), 1234);
        assert_eq!(resolve_group("root").unwrap(), 0);
        assert!(resolve_user("no-such-user-here").is_err());
        assert!(resolve_group("no-such-group-here").is_err());
        assert!(resolve_user("12a").is_err());
    }
}
