//! Strict checks of every argument the (possibly hostile) caller gives a setuid-root
//! helper: dotted quads, contiguous netmasks, addresses a guest may claim, and tap
//! devices that exist and belong to the caller.

use std::fmt;
use std::net::Ipv4Addr;
use std::path::Path;

use uml_proto::tap::{self, Kind, PinnedIface};

/// Why an argument was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    NotDottedQuad {
        what: &'static str,
        text: String,
    },
    NotANetmask(String),
    Unusable {
        what: &'static str,
        addr: Ipv4Addr,
        why: &'static str,
    },
    BadDeviceName(String),
    NoSuchDevice(String),
    NotATap(String),
    NotYours {
        dev: String,
        uid: u32,
    },
    /// The device was deleted (or re-created) after it was checked.
    Gone(String),
    /// The address policy says no (see policy.rs).
    Claim {
        addr: Ipv4Addr,
        why: String,
    },
    /// The host's state could not be read or changed.
    Host(String),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NotDottedQuad { what, text } => {
                write!(
                    f,
                    "{what} '{}' is not a dotted-quad IPv4 address",
                    printable(text)
                )
            }
            Refusal::NotANetmask(t) => {
                write!(
                    f,
                    "netmask '{}' is not a contiguous IPv4 netmask",
                    printable(t)
                )
            }
            Refusal::Unusable { what, addr, why } => write!(f, "{what} {addr} is {why}"),
            Refusal::BadDeviceName(d) => write!(
                f,
                "Device doesn't contain only alphanumeric characters: '{}'",
                printable(d)
            ),
            Refusal::NoSuchDevice(d) => write!(f, "device '{d}' does not exist"),
            Refusal::NotATap(d) => write!(f, "device '{d}' is not a tap device"),
            Refusal::NotYours { dev, uid } => {
                write!(f, "device '{dev}' is not owned by uid {uid}")
            }
            Refusal::Gone(d) => write!(
                f,
                "device '{d}' was removed or replaced since it was checked; nothing done to it"
            ),
            Refusal::Claim { addr, why } => write!(f, "address {addr} {why}"),
            Refusal::Host(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for Refusal {}

/// The text with control characters escaped, safe to put in a log line.
fn printable(s: &str) -> String {
    s.chars().take(64).flat_map(char::escape_default).collect()
}

/// Four decimal numbers 0..=255 separated by dots; no leading zeros (which inet_aton
/// would read as octal), no signs, no spaces, nothing else.
pub fn dotted_quad(what: &'static str, text: &str) -> Result<Ipv4Addr, Refusal> {
    let bad = || Refusal::NotDottedQuad {
        what,
        text: text.to_owned(),
    };
    let parts: Vec<&str> = text.split('.').collect();
    if parts.len() != 4 {
        return Err(bad());
    }
    let mut octets = [0u8; 4];
    for (o, p) in octets.iter_mut().zip(&parts) {
        let ok = !p.is_empty()
            && p.len() <= 3
            && p.bytes().all(|b| b.is_ascii_digit())
            && !(p.len() > 1 && p.starts_with('0'));
        *o = p.parse().ok().filter(|_| ok).ok_or_else(bad)?;
    }
    Ok(Ipv4Addr::from(octets))
}

/// A dotted-quad netmask whose one bits are contiguous, /8 to /32.
pub fn netmask(text: &str) -> Result<Ipv4Addr, Refusal> {
    let mask = dotted_quad("netmask", text).map_err(|_| Refusal::NotANetmask(text.into()))?;
    let bits = u32::from(mask);
    if bits.leading_ones() + bits.trailing_zeros() != 32 || bits.leading_ones() < 8 {
        return Err(Refusal::NotANetmask(text.into()));
    }
    Ok(mask)
}

/// An address that may name a single host: not zero, loopback, multicast, reserved or
/// broadcast.
pub fn unicast(what: &'static str, addr: Ipv4Addr) -> Result<Ipv4Addr, Refusal> {
    let o = addr.octets();
    let why = if o[0] == 0 {
        Some("in 0.0.0.0/8")
    } else if addr.is_loopback() {
        Some("a loopback address")
    } else if addr.is_multicast() {
        Some("a multicast address")
    } else if addr.is_broadcast() || o[0] >= 240 {
        Some("a broadcast or reserved address")
    } else {
        None
    };
    match why {
        Some(why) => Err(Refusal::Unusable { what, addr, why }),
        None => Ok(addr),
    }
}

/// A device name of 1 to 15 ASCII letters and digits (what the C helper allowed, minus
/// the length overflow).
pub fn device_name(name: &str) -> Result<&str, Refusal> {
    if name.is_empty()
        || name.len() > tap::MAX_NAME_LEN
        || !name.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err(Refusal::BadDeviceName(name.to_owned()));
    }
    Ok(name)
}

/// `name` exists in this network namespace, is a tap device and (unless the caller
/// is root) is owned by `uid`: the device, pinned so that it is acted on by index.
pub fn callers_tap(sys_class_net: &Path, name: &str, uid: u32) -> Result<PinnedIface, Refusal> {
    let index =
        nix::net::if_::if_nametoindex(name).map_err(|_| Refusal::NoSuchDevice(name.to_owned()))?;
    let pinned = PinnedIface::open(sys_class_net, name)
        .map_err(|_| Refusal::NoSuchDevice(name.to_owned()))?;
    // sysfs must describe this namespace's device, not a namesake elsewhere (nor one
    // made since if_nametoindex).
    if pinned.index != index {
        return Err(Refusal::NoSuchDevice(name.to_owned()));
    }
    still_callers(&pinned, uid)?;
    Ok(pinned)
}

/// Checks the pinned device again (after gaining root, before each change): it still
/// exists with the same index, is a tap and is owned by `uid` (unless root calls).
pub fn still_callers(tap: &PinnedIface, uid: u32) -> Result<(), Refusal> {
    let name = || tap.name.clone();
    let info = match tap.inspect() {
        Ok(Some(info)) if info.kind == Kind::Tap => info,
        Ok(_) => return Err(Refusal::NotATap(name())),
        Err(_) => return Err(Refusal::Gone(name())),
    };
    if uid != 0 && info.owner != Some(uid) {
        return Err(Refusal::NotYours { dev: name(), uid });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_dotted_quads_pass() {
        assert_eq!(
            dotted_quad("a", "10.0.0.1").unwrap(),
            Ipv4Addr::new(10, 0, 0, 1)
        );
        for bad in [
            "",
            "10.0.0",
            "10.0.0.1.2",
            "10.0.0.256",
            "010.0.0.1",
            "10.0.0.-1",
            "10.0.0.+1",
            " 10.0.0.1",
            "10.0.0.1 ",
            "0x0a.0.0.1",
            "10..0.1",
            "1e1.0.0.1",
            "10.0.0.1\n",
        ] {
            assert!(dotted_quad("a", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn netmasks_must_be_contiguous() {
        assert!(netmask("255.255.255.0").is_ok());
        assert!(netmask("255.255.255.255").is_ok());
        assert!(netmask("255.0.0.0").is_ok());
        for bad in ["255.0.255.0", "0.0.0.0", "254.0.0.0", "255.255.255.1", "x"] {
            assert!(netmask(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn special_addresses_are_refused() {
        assert!(unicast("address", Ipv4Addr::new(10, 0, 0, 1)).is_ok());
        for bad in [
            [0, 0, 0, 0],
            [127, 0, 0, 1],
            [224, 0, 0, 1],
            [255, 255, 255, 255],
            [240, 0, 0, 1],
        ] {
            assert!(unicast("address", Ipv4Addr::from(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn device_names_are_alphanumeric() {
        assert!(device_name("tap0").is_ok());
        for bad in [
            "",
            "tap-0",
            "../x",
            "tap0;x",
            "abcdefghijklmnop",
            "tap 0",
            "tap0\n",
        ] {
            assert!(device_name(bad).is_err(), "{bad:?}");
        }
    }
}
