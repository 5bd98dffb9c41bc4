//! ARP for IPv4 over Ethernet (RFC 826) as a typed view over its 28 bytes, and the
//! probe of IPv4 address conflict detection (RFC 5227: a request with sender address
//! 0.0.0.0 asking who has an address). uml_net probes a LAN before it publishes a
//! guest's address there.

use std::net::Ipv4Addr;

/// Bytes of an Ethernet/IPv4 ARP packet.
pub const LEN: usize = 28;
/// The EtherType of ARP.
pub const ETHERTYPE: u16 = 0x0806;
pub const OP_REQUEST: u16 = 1;
pub const OP_REPLY: u16 = 2;

/// One Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpPacket {
    pub op: u16,
    pub sender_mac: [u8; 6],
    pub sender_ip: Ipv4Addr,
    pub target_mac: [u8; 6],
    pub target_ip: Ipv4Addr,
}

/// Why bytes are not an Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArpError {
    TooShort(usize),
    NotEthernetIpv4,
}

impl std::fmt::Display for ArpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ArpError::TooShort(n) => write!(f, "ARP packet of {n} bytes (needs {LEN})"),
            ArpError::NotEthernetIpv4 => f.write_str("ARP packet not for Ethernet and IPv4"),
        }
    }
}

impl std::error::Error for ArpError {}

impl ArpPacket {
    /// The conflict-detection probe for `target` from `mac`.
    pub fn probe(mac: [u8; 6], target: Ipv4Addr) -> ArpPacket {
        ArpPacket {
            op: OP_REQUEST,
            sender_mac: mac,
            sender_ip: Ipv4Addr::UNSPECIFIED,
            target_mac: [0; 6],
            target_ip: target,
        }
    }

    pub fn parse(b: &[u8]) -> Result<ArpPacket, ArpError> {
        if b.len() < LEN {
            return Err(ArpError::TooShort(b.len()));
        }
        if b[0..6] != [0, 1, 8, 0, 6, 4] {
            return Err(ArpError::NotEthernetIpv4);
        }
        let mac = |at: usize| <[u8; 6]>::try_from(&b[at..at + 6]).unwrap_or_default();
        let ip = |at: usize| Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3]);
        Ok(ArpPacket {
            op: u16::from_be_bytes([b[6], b[7]]),
            sender_mac: mac(8),
            sender_ip: ip(14),
            target_mac: mac(18),
            target_ip: ip(24),
        })
    }

    pub fn emit(&self, out: &mut [u8; LEN]) {
        out[0..6].copy_from_slice(&[0, 1, 8, 0, 6, 4]);
        out[6..8].copy_from_slice(&self.op.to_be_bytes());
        out[8..14].copy_from_slice(&self.sender_mac);
        out[14..18].copy_from_slice(&self.sender_ip.octets());
        out[18..24].copy_from_slice(&self.target_mac);
        out[24..28].copy_from_slice(&self.target_ip.octets());
    }

    /// Whether this packet shows some other host using `addr`: it is sent from
    /// `addr`, or it is another host's probe for `addr` (RFC 5227, 2.1.1).
    pub fn claims(&self, addr: Ipv4Addr, own_mac: [u8; 6]) -> bool {
        self.sender_ip == addr
            || (self.op == OP_REQUEST
                && self.sender_ip.is_unspecified()
                && self.target_ip == addr
                && self.sender_mac != own_mac)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_round_trips_and_matches_the_rfc_layout() {
        let p = ArpPacket::probe([2, 0, 0, 0, 0, 1], Ipv4Addr::new(192, 168, 5, 9));
        let mut b = [0u8; LEN];
        p.emit(&mut b);
        assert_eq!(
            b,
            [
                0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 192, 168,
                5, 9
            ]
        );
        assert_eq!(ArpPacket::parse(&b), Ok(p));
        assert_eq!(ArpPacket::parse(&b[..20]), Err(ArpError::TooShort(20)));
        let mut bad = b;
        bad[1] = 6;
        assert_eq!(ArpPacket::parse(&bad), Err(ArpError::NotEthernetIpv4));
    }

    #[test]
    fn answers_and_rival_probes_claim_the_address_our_own_probe_does_not() {
        let me = [2, 0, 0, 0, 0, 1];
        let addr = Ipv4Addr::new(10, 1, 1, 9);
        let reply = ArpPacket {
            op: OP_REPLY,
            sender_mac: [2, 0, 0, 0, 0, 2],
            sender_ip: addr,
            target_mac: me,
            target_ip: Ipv4Addr::UNSPECIFIED,
        };
        assert!(reply.claims(addr, me));
        assert!(!reply.claims(Ipv4Addr::new(10, 1, 1, 8), me));
        assert!(ArpPacket::probe([2, 0, 0, 0, 0, 3], addr).claims(addr, me));
        assert!(!ArpPacket::probe(me, addr).claims(addr, me));
    }
}
