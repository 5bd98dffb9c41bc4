//! VXLAN (RFC 7348): an 8-byte header in a UDP datagram, then the inner Ethernet frame.
//! Byte 0 holds the flags (only the I bit, 0x08, is defined and must be set), bytes 4-6
//! the 24-bit VNI; the reserved bits are sent as zero and ignored on receipt.

use super::{need, OverlayError};

pub const HEADER_LEN: usize = 8;
/// The IANA port, where our uplinks send by default.
pub const IANA_PORT: u16 = 4789;
/// What `ip link add type vxlan` uses without `dstport` (the kernel's pre-IANA default).
pub const LINUX_LEGACY_PORT: u16 = 8472;
/// The largest VNI (24 bits).
pub const MAX_VNI: u32 = 0x00ff_ffff;
const FLAG_VNI_VALID: u8 = 0x08;

/// A VXLAN header: the network identifier is all it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VxlanHeader {
    pub vni: u32,
}

impl VxlanHeader {
    /// Reads the header; returns it and the inner frame.
    pub fn parse(b: &[u8]) -> Result<(VxlanHeader, &[u8]), OverlayError> {
        need("VXLAN", b, HEADER_LEN)?;
        if b[0] & FLAG_VNI_VALID == 0 {
            return Err(OverlayError::Flags {
                what: "VXLAN",
                flags: u32::from(b[0]),
            });
        }
        let vni = u32::from_be_bytes([0, b[4], b[5], b[6]]);
        Ok((VxlanHeader { vni }, &b[HEADER_LEN..]))
    }

    /// Writes the 8 header bytes into `buf` (at least 8 long); returns 8.
    pub fn emit(&self, buf: &mut [u8]) -> usize {
        let vni = (self.vni & MAX_VNI).to_be_bytes();
        buf[..HEADER_LEN].copy_from_slice(&[FLAG_VNI_VALID, 0, 0, 0, vni[1], vni[2], vni[3], 0]);
        HEADER_LEN
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut buf = [0u8; 8];
        assert_eq!(VxlanHeader { vni: 0x123456 }.emit(&mut buf), 8);
        assert_eq!(buf, [0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0]);
        let (h, inner) = VxlanHeader::parse(&buf).unwrap();
        assert_eq!(h.vni, 0x123456);
        assert!(inner.is_empty());
    }

    #[test]
    fn bytes_as_linux_sends_them() {
        // A datagram's payload from a Linux vxlan device with id 42 (reserved bits zero),
        // then an inner broadcast ARP frame's first bytes.
        let mut p = vec![0x08, 0, 0, 0, 0, 0, 42, 0];
        p.extend_from_slice(&[0xff; 6]);
        let (h, inner) = VxlanHeader::parse(&p).unwrap();
        assert_eq!(h.vni, 42);
        assert_eq!(inner, &[0xff; 6]);
    }

    #[test]
    fn reserved_bits_are_ignored_but_the_i_flag_is_required() {
        let (h, _) = VxlanHeader::parse(&[0xff, 1, 2, 3, 0, 0, 7, 9]).unwrap();
        assert_eq!(h.vni, 7);
        assert_eq!(
            VxlanHeader::parse(&[0, 0, 0, 0, 0, 0, 7, 0]),
            Err(OverlayError::Flags {
                what: "VXLAN",
                flags: 0
            })
        );
        assert!(matches!(
            VxlanHeader::parse(&[8; 7]),
            Err(OverlayError::Short { .. })
        ));
    }
}
