//! The administrator's file that widens uml_net's address policy:
//! /etc/uml-utilities/uml_net.conf lists the subnets members of uml-net may claim
//! beyond the defaults (public addresses, addresses the host routes through a gateway or
//! another interface). It is trusted only when it and the directories above it are
//! owned by root and writable by no one else; it is read through descriptors opened
//! one component at a time without following symlinks.
//!
//! Format: one directive per line, `#` starts a comment, blank lines are ignored:
//! `allow ADDRESS/PREFIXLEN` (e.g. `allow 203.0.113.0/28`).

use std::fmt;
use std::io::Read;
use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;

use nix::fcntl::{openat, OFlag};
use nix::sys::stat::{fstat, Mode, SFlag};

/// Where the file lives.
pub const PATH: &str = "/etc/uml-utilities/uml_net.conf";
/// Larger files are refused (a list of subnets is small).
const MAX_LEN: u64 = 64 * 1024;

/// One allowed subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    pub net: Ipv4Addr,
    pub len: u8,
}

impl Subnet {
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        let mask = uml_proto::netlink::prefix_mask(self.len);
        u32::from(addr) & mask == u32::from(self.net) & mask
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.len)
    }
}

/// The parsed file: the subnets it allows (empty when there is no file).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    pub allow: Vec<Subnet>,
}

impl Config {
    pub fn allows(&self, addr: Ipv4Addr) -> bool {
        self.allow.iter().any(|s| s.contains(addr))
    }
}

/// Why the file is not used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// A path component is not owned by root, or others may write it.
    Untrusted { what: String, why: String },
    /// It could not be read.
    Unreadable(String),
    /// A line is not a directive.
    Syntax { line: usize, text: String },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Untrusted { what, why } => write!(f, "{what} {why}"),
            ConfigError::Unreadable(e) => write!(f, "{PATH}: {e}"),
            ConfigError::Syntax { line, text } => write!(
                f,
                "{PATH} line {line}: '{}' is not 'allow ADDRESS/PREFIXLEN'",
                text.chars()
                    .take(64)
                    .flat_map(char::escape_default)
                    .collect::<String>()
            ),
        }
    }
}

/// Parses the file's text.
pub fn parse(text: &str) -> Result<Config, ConfigError> {
    let mut cfg = Config::default();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let bad = || ConfigError::Syntax {
            line: i + 1,
            text: raw.to_owned(),
        };
        let mut words = line.split_whitespace();
        let (Some("allow"), Some(cidr), None) = (words.next(), words.next(), words.next()) else {
            return Err(bad());
        };
        let (net, len) = cidr.split_once('/').ok_or_else(bad)?;
        let net = crate::check::dotted_quad("subnet", net).map_err(|_| bad())?;
        let len: u8 = len
            .parse()
            .ok()
            .filter(|l| *l <= 32 && len.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(bad)?;
        cfg.allow.push(Subnet { net, len });
    }
    Ok(cfg)
}

/// Checks that a component is root's and that no one else may write it.
fn trusted(fd: &OwnedFd, what: &str, dir: bool) -> Result<(), ConfigError> {
    let st = fstat(fd).map_err(|e| ConfigError::Unreadable(format!("{what}: {}", e.desc())))?;
    let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
    let untrusted = |why: String| ConfigError::Untrusted {
        what: what.to_owned(),
        why,
    };
    if kind != if dir { SFlag::S_IFDIR } else { SFlag::S_IFREG } {
        return Err(untrusted("is not a regular file".into()));
    }
    if st.st_uid != 0 {
        return Err(untrusted(format!(
            "is owned by uid {}, not root",
            st.st_uid
        )));
    }
    if st.st_mode & 0o022 != 0 {
        return Err(untrusted("is writable by group or others".into()));
    }
    if !dir && st.st_size as u64 > MAX_LEN {
        return Err(untrusted("is too large".into()));
    }
    Ok(())
}

/// Reads the file at PATH: Ok(default) when it does not exist, an error when it (or a
/// directory above it) is untrusted, unreadable or malformed.
pub fn load() -> Result<Config, ConfigError> {
    let flags = OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW;
    let root = nix::fcntl::open("/", flags | OFlag::O_DIRECTORY, Mode::empty())
        .map_err(|e| ConfigError::Unreadable(e.desc().into()))?;
    let mut dir = root;
    let mut path = String::new();
    let parts: Vec<&str> = PATH.trim_start_matches('/').split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        path.push('/');
        path.push_str(part);
        let last = i + 1 == parts.len();
        let extra = if last {
            OFlag::O_NONBLOCK
        } else {
            OFlag::O_DIRECTORY
        };
        let fd = match openat(&dir, *part, flags | extra, Mode::empty()) {
            Ok(fd) => fd,
            Err(nix::errno::Errno::ENOENT) => return Ok(Config::default()),
            Err(nix::errno::Errno::ELOOP) => {
                return Err(ConfigError::Untrusted {
                    what: path,
                    why: "is a symbolic link".into(),
                })
            }
            Err(e) => return Err(ConfigError::Unreadable(format!("{path}: {}", e.desc()))),
        };
        trusted(&fd, &path, !last)?;
        dir = fd;
    }
    let mut text = String::new();
    std::fs::File::from(dir)
        .take(MAX_LEN)
        .read_to_string(&mut text)
        .map_err(|e| ConfigError::Unreadable(e.to_string()))?;
    parse(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_lines_comments_and_blanks() {
        let cfg = parse("# subnets\n\nallow 203.0.113.0/28  # lab\n  allow 8.8.8.8/32\n").unwrap();
        assert_eq!(cfg.allow.len(), 2);
        assert!(cfg.allows(Ipv4Addr::new(203, 0, 113, 15)));
        assert!(!cfg.allows(Ipv4Addr::new(203, 0, 113, 16)));
        assert!(cfg.allows(Ipv4Addr::new(8, 8, 8, 8)));
        assert_eq!(parse("").unwrap(), Config::default());
    }

    #[test]
    fn anything_else_names_its_line() {
        for bad in [
            "allow 10.0.0.0",
            "allow 10.0.0.0/33",
            "allow 10.0.0.0/+8",
            "allow 010.0.0.0/8",
            "deny 10.0.0.0/8",
            "allow 10.0.0.0/8 extra",
            "allow",
        ] {
            let e = parse(&format!("# ok\n{bad}\n")).unwrap_err();
            assert!(
                matches!(e, ConfigError::Syntax { line: 2, .. }),
                "{bad}: {e}"
            );
            assert!(e.to_string().contains("line 2"), "{e}");
        }
    }
}
