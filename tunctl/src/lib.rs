//! tunctl's logic: make a persistent tap (or tun) owned by a user or group, or make an
//! existing one nonpersistent so it goes away. Returns the text to print; main prints.
//!
//! By default a run does what the C tool does for the same arguments (an existing device
//! is re-owned, `-d` of a missing one "succeeds"), so rc scripts that run twice keep
//! working; what the C tool would not say goes into a note for stderr. `--strict` turns
//! both cases into errors.

pub mod cli;

use std::fmt;
use std::path::PathBuf;

use uml_proto::tap::{self, Kind, TapError};

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Make (or re-own) a persistent device.
    Create {
        owner: Option<u32>,
        group: Option<u32>,
        kind: Kind,
        /// With `strict`: allow an existing device (the C tool always did, silently).
        reuse: bool,
        /// Print only the device name.
        brief: bool,
    },
    /// Make an existing device nonpersistent (it disappears).
    Delete,
}

/// One tunctl run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub action: Action,
    /// Device name or template (`tap%d`); empty lets the kernel choose.
    pub name: String,
    pub clone_device: PathBuf,
    /// Refuse an existing device (unless `reuse`) and `-d` of a missing one.
    pub strict: bool,
}

/// What a successful run has to say.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Done {
    /// Exactly what the C tool prints on stdout.
    pub stdout: String,
    /// Anything more, for stderr (the C tool says nothing there).
    pub note: Option<String>,
}

/// Why tunctl failed.
#[derive(Debug)]
pub enum Error {
    Tap(TapError),
    /// `-d` on a device that is not there.
    NoSuchDevice(String),
    /// Create on a device that is already there, without --reuse.
    Exists(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Tap(e) => e.fmt(f),
            Error::NoSuchDevice(n) => write!(f, "cannot delete '{n}': no such device"),
            Error::Exists(n) => write!(
                f,
                "'{n}' already exists; use --reuse to change its owner and keep it"
            ),
        }
    }
}

impl std::error::Error for Error {}

impl From<TapError> for Error {
    fn from(e: TapError) -> Self {
        Error::Tap(e)
    }
}

/// True when an interface called `name` exists in this network namespace.
pub fn interface_exists(name: &str) -> bool {
    !name.contains('%') && nix::net::if_::if_nametoindex(name).is_ok()
}

/// Carries out `req`; returns what goes on stdout (and a note for stderr).
pub fn run(req: &Request) -> Result<Done, Error> {
    match &req.action {
        Action::Delete => delete(req),
        Action::Create {
            owner,
            group,
            kind,
            reuse,
            brief,
        } => {
            let existed = !req.name.is_empty() && interface_exists(&req.name);
            if existed && req.strict && !reuse {
                return Err(Error::Exists(req.name.clone()));
            }
            let dev = tap::attach(&req.clone_device, &req.name, *kind)?;
            let owner = match (owner, group) {
                (None, None) => Some(nix::unistd::geteuid().as_raw()),
                _ => *owner,
            };
            if let Some(uid) = owner {
                dev.set_owner(uid)?;
            }
            if let Some(gid) = group {
                dev.set_group(*gid)?;
            }
            dev.set_persist(true)?;
            Ok(Done {
                stdout: created_message(&dev.name, owner, *group, *brief),
                note: existed.then(|| format!("'{}' already existed; re-owned it", dev.name)),
            })
        }
    }
}

fn delete(req: &Request) -> Result<Done, Error> {
    let existed = interface_exists(&req.name);
    if !existed && req.strict {
        return Err(Error::NoSuchDevice(req.name.clone()));
    }
    // Like the C tool: attach (which makes a passing device when there is none) and make
    // it nonpersistent, so it goes when the fd closes. Our own TUN devices are a tap
    // attach's EINVAL, hence the second try.
    let dev = match tap::attach(&req.clone_device, &req.name, Kind::Tap) {
        Err(e) if existed => tap::attach(&req.clone_device, &req.name, Kind::Tun).map_err(|_| e),
        other => other,
    }?;
    dev.set_persist(false)?;
    Ok(Done {
        stdout: format!("Set '{}' nonpersistent\n", dev.name),
        note: (!existed).then(|| format!("there was no '{}'; nothing deleted", req.name)),
    })
}

/// The C tool's report for a created device.
pub fn created_message(name: &str, owner: Option<u32>, group: Option<u32>, brief: bool) -> String {
    if brief {
        return format!("{name}\n");
    }
    let mut s = format!("Set '{name}' persistent and owned by");
    if let Some(u) = owner {
        s.push_str(&format!(" uid {u}"));
    }
    if let Some(g) = group {
        s.push_str(&format!(" gid {g}"));
    }
    s.push('\n');
    s
}

/// A number the way the C tool's strtol(…, 0) reads it: decimal, 0x hex or 0 octal,
/// the whole string, not negative.
pub fn parse_c_number(s: &str) -> Option<u32> {
    let (digits, radix) = if let Some(h) = s.strip_prefix("0x").or(s.strip_prefix("0X")) {
        (h, 16)
    } else if s.len() > 1 && s.starts_with('0') {
        (&s[1..], 8)
    } else {
        (s, 10)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u32::from_str_radix(digits, radix)
        .ok()
        .filter(|&v| v != u32::MAX)
}

/// A user name or uid, as -u takes it.
pub fn resolve_user(s: &str) -> Option<u32> {
    uml_proto::ids::uid_of(s).or_else(|| parse_c_number(s))
}

/// A group name or gid, as -g takes it.
pub fn resolve_group(s: &str) -> Option<u32> {
    uml_proto::ids::gid_of(s).or_else(|| parse_c_number(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_match_the_c_tool() {
        assert_eq!(
            created_message("foo", Some(1000), Some(100), false),
            "Set 'foo' persistent and owned by uid 1000 gid 100\n"
        );
        assert_eq!(
            created_message("baz", None, Some(100), false),
            "Set 'baz' persistent and owned by gid 100\n"
        );
        assert_eq!(created_message("tap0", Some(0), None, true), "tap0\n");
    }

    #[test]
    fn numbers_read_like_strtol_base_0() {
        assert_eq!(parse_c_number("1000"), Some(1000));
        assert_eq!(parse_c_number("0x10"), Some(16));
        assert_eq!(parse_c_number("010"), Some(8));
        assert_eq!(parse_c_number("0"), Some(0));
        for bad in ["", "12abc", "-1", "0x", "4294967295", "99999999999", " 1"] {
            assert_eq!(parse_c_number(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn names_resolve_through_the_user_database() {
        assert_eq!(resolve_user("root"), Some(0));
        assert_eq!(resolve_group("root"), Some(0));
        assert_eq!(resolve_user("no-such-user-here"), None);
    }
}
