//! The user and group databases (passwd and group, through NSS), looked up in one place:
//! names to ids for the tools' USER/GROUP arguments, and a uid's primary group and
//! group list for code that acts with another user's rights. Each tool keeps its own
//! number syntax (tunctl reads numbers as C's strtol does, humfsify as decimal).

use std::ffi::CString;

use nix::unistd::{Gid, Group, Uid, User};

/// The uid of the user called `name`, if there is one.
pub fn uid_of(name: &str) -> Option<u32> {
    User::from_name(name).ok().flatten().map(|u| u.uid.as_raw())
}

/// The gid of the group called `name`, if there is one.
pub fn gid_of(name: &str) -> Option<u32> {
    Group::from_name(name)
        .ok()
        .flatten()
        .map(|g| g.gid.as_raw())
}

/// A user's ids as they would be after logging in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub uid: u32,
    /// The primary group.
    pub gid: u32,
    /// Every group the user is in, the primary one included.
    pub groups: Vec<u32>,
}

/// The account of `uid`, or None when the user database has no entry for it.
pub fn account_of(uid: u32) -> Option<Account> {
    let user = User::from_uid(Uid::from_raw(uid)).ok().flatten()?;
    let gid = user.gid.as_raw();
    let groups = CString::new(user.name.as_bytes())
        .ok()
        .and_then(|name| nix::unistd::getgrouplist(&name, user.gid).ok())
        .map_or_else(|| vec![gid], |g| g.into_iter().map(Gid::as_raw).collect());
    Some(Account { uid, gid, groups })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_strangers() {
        assert_eq!(uid_of("root"), Some(0));
        assert_eq!(gid_of("root"), Some(0));
        assert_eq!(uid_of("no-such-user-here"), None);
        assert_eq!(gid_of("no-such-group-here"), None);
        let root = account_of(0).unwrap();
        assert_eq!((root.uid, root.gid), (0, 0));
        assert!(root.groups.contains(&0));
        assert_eq!(account_of(4_000_000_000), None);
    }
}
