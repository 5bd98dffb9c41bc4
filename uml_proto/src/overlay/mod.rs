//! The Linux kernel's own layer-2 overlays, as a virtual LAN meets other hosts through
//! them: VXLAN (RFC 7348), GRE transparent Ethernet bridging (RFC 2784/2890, protocol
//! 0x6558) and L2TPv3 Ethernet pseudowires (RFC 3931/4719) in the shapes linux.uml 6.1's
//! vector transports and iproute2's `ip link`/`ip l2tp` devices send them. Each header is
//! a typed value with `parse` (checks lengths and flags, returns the inner frame) and
//! `emit`; `spec` reads the text that names an overlay endpoint.

pub mod gre;
pub mod l2tpv3;
pub mod spec;
pub mod vxlan;

use std::fmt;

/// Why an encapsulated packet (or an endpoint's text) is not what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OverlayError {
    /// Fewer bytes than the header needs.
    Short {
        what: &'static str,
        have: usize,
        need: usize,
    },
    /// Flag bits that this header kind does not carry (or that are required and missing).
    Flags { what: &'static str, flags: u32 },
    /// A GRE packet for another protocol than transparent Ethernet bridging.
    Protocol(u16),
    /// A session, cookie, key or VNI that is not this endpoint's.
    Mismatch {
        what: &'static str,
        expected: u64,
        got: u64,
    },
    /// An IPv4 header that is not one (raw sockets hand it to us before the overlay).
    BadIpv4Header,
    /// An endpoint text that cannot be used, with the reason.
    Spec(String),
}

impl fmt::Display for OverlayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OverlayError::Short { what, have, need } => {
                write!(
                    f,
                    "{what} packet of {have} bytes is shorter than its {need}-byte header"
                )
            }
            OverlayError::Flags { what, flags } => write!(f, "{what} header with flags {flags:#x}"),
            OverlayError::Protocol(p) => {
                write!(
                    f,
                    "GRE packet for protocol {p:#06x}, not Ethernet bridging (0x6558)"
                )
            }
            OverlayError::Mismatch {
                what,
                expected,
                got,
            } => {
                write!(f, "{what} {got:#x} is not ours ({expected:#x})")
            }
            OverlayError::BadIpv4Header => write!(f, "malformed IPv4 header before the overlay"),
            OverlayError::Spec(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for OverlayError {}

/// Raw IPv4 sockets (GRE is IP protocol 47, L2TPv3 without UDP is 115) deliver the IPv4
/// header in front of the overlay header; this returns what follows it.
pub fn strip_ipv4_header(packet: &[u8]) -> Result<&[u8], OverlayError> {
    let first = *packet.first().ok_or(OverlayError::BadIpv4Header)?;
    let header_len = usize::from(first & 0x0f) * 4;
    if first >> 4 != 4 || header_len < 20 || packet.len() < header_len {
        return Err(OverlayError::BadIpv4Header);
    }
    Ok(&packet[header_len..])
}

fn need(what: &'static str, b: &[u8], need: usize) -> Result<(), OverlayError> {
    if b.len() < need {
        return Err(OverlayError::Short {
            what,
            have: b.len(),
            need,
        });
    }
    Ok(())
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_header_is_stripped_by_its_length_field() {
        let mut p = vec![0x46u8];
        p.extend_from_slice(&[0; 23]);
        p.extend_from_slice(b"gre");
        assert_eq!(strip_ipv4_header(&p).unwrap(), b"gre");
        assert_eq!(
            strip_ipv4_header(&[0x45; 10]),
            Err(OverlayError::BadIpv4Header)
        );
        assert_eq!(
            strip_ipv4_header(&[0x65; 40]),
            Err(OverlayError::BadIpv4Header)
        );
        assert_eq!(
            strip_ipv4_header(&[0x42; 40]),
            Err(OverlayError::BadIpv4Header)
        );
        assert_eq!(strip_ipv4_header(&[]), Err(OverlayError::BadIpv4Header));
    }
}
