//! GRE carrying Ethernet frames (transparent Ethernet bridging, protocol 0x6558), as
//! `ip link add type gretap` and linux.uml's `transport=gre` send it over IP protocol 47:
//! a 4-byte base header (flags, protocol), then in this order an optional checksum word
//! (C bit), key (K bit) and sequence number (S bit), each 4 bytes, big-endian.

use super::{be32, need, OverlayError};

/// IP protocol number of GRE.
pub const IP_PROTO: i32 = 47;
/// The protocol field for Ethernet frames.
pub const PROTO_TEB: u16 = 0x6558;
const FLAG_CHECKSUM: u16 = 0x8000;
const FLAG_ROUTING: u16 = 0x4000;
const FLAG_KEY: u16 = 0x2000;
const FLAG_SEQUENCE: u16 = 0x1000;
/// Recursion control, strict source route and the version must all be zero.
const MUST_BE_ZERO: u16 = 0x0fff;

/// The optional fields of one GRE header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GreHeader {
    /// Whether a checksum word is present (received only: we never send one).
    pub checksum: bool,
    pub key: Option<u32>,
    pub sequence: Option<u32>,
}

impl GreHeader {
    pub fn len(&self) -> usize {
        4 + 4
            * (usize::from(self.checksum)
                + usize::from(self.key.is_some())
                + usize::from(self.sequence.is_some()))
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// Reads the header (after any IPv4 header); returns it and the inner frame.
    pub fn parse(b: &[u8]) -> Result<(GreHeader, &[u8]), OverlayError> {
        need("GRE", b, 4)?;
        let flags = u16::from_be_bytes([b[0], b[1]]);
        if flags & (FLAG_ROUTING | MUST_BE_ZERO) != 0 {
            return Err(OverlayError::Flags {
                what: "GRE",
                flags: u32::from(flags),
            });
        }
        let proto = u16::from_be_bytes([b[2], b[3]]);
        if proto != PROTO_TEB {
            return Err(OverlayError::Protocol(proto));
        }
        let mut h = GreHeader {
            checksum: flags & FLAG_CHECKSUM != 0,
            ..GreHeader::default()
        };
        let mut at = 4 + 4 * usize::from(h.checksum);
        if flags & FLAG_KEY != 0 {
            need("GRE", b, at + 4)?;
            h.key = Some(be32(b, at));
            at += 4;
        }
        if flags & FLAG_SEQUENCE != 0 {
            need("GRE", b, at + 4)?;
            h.sequence = Some(be32(b, at));
            at += 4;
        }
        need("GRE", b, at)?;
        Ok((h, &b[at..]))
    }

    /// Writes the header (never a checksum) into `buf`; returns its length.
    pub fn emit(&self, buf: &mut [u8]) -> usize {
        let mut flags = 0u16;
        let mut at = 4;
        if let Some(key) = self.key {
            flags |= FLAG_KEY;
            buf[at..at + 4].copy_from_slice(&key.to_be_bytes());
            at += 4;
        }
        if let Some(seq) = self.sequence {
            flags |= FLAG_SEQUENCE;
            buf[at..at + 4].copy_from_slice(&seq.to_be_bytes());
            at += 4;
        }
        buf[0..2].copy_from_slice(&flags.to_be_bytes());
        buf[2..4].copy_from_slice(&PROTO_TEB.to_be_bytes());
        at
    }
}

/// One end of a GRE tunnel with linux.uml's options (`rx_key`/`tx_key`, `sequence`,
/// `pin_sequence`): checks what arrives, numbers what leaves.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GreEndpoint {
    pub rx_key: Option<u32>,
    pub tx_key: Option<u32>,
    pub sequence: bool,
    /// Send sequence number 0 always (linux.uml's `pin_sequence`).
    pub pin_sequence: bool,
    sent: u32,
}

impl GreEndpoint {
    pub fn new(rx_key: Option<u32>, tx_key: Option<u32>, sequence: bool, pin: bool) -> Self {
        GreEndpoint {
            rx_key,
            tx_key,
            sequence,
            pin_sequence: pin,
            sent: 0,
        }
    }

    /// The inner frame of a packet for this endpoint (key checked; sequence numbers are
    /// not enforced, as linux.uml does not).
    pub fn decap<'a>(&self, packet: &'a [u8]) -> Result<&'a [u8], OverlayError> {
        let (h, inner) = GreHeader::parse(packet)?;
        if h.key != self.rx_key {
            return Err(OverlayError::Mismatch {
                what: "GRE key",
                expected: self.rx_key.map_or(0, u64::from),
                got: h.key.map_or(0, u64::from),
            });
        }
        Ok(inner)
    }

    /// Writes the header for the next frame into `buf`; returns its length.
    pub fn encap_header(&mut self, buf: &mut [u8]) -> usize {
        let sequence = self.sequence.then(|| {
            if self.pin_sequence {
                0
            } else {
                self.sent = self.sent.wrapping_add(1);
                self.sent
            }
        });
        GreHeader {
            checksum: false,
            key: self.tx_key,
            sequence,
        }
        .emit(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_header_is_four_bytes() {
        let mut buf = [0u8; 16];
        let n = GreHeader::default().emit(&mut buf);
        assert_eq!(&buf[..n], &[0, 0, 0x65, 0x58]);
        let (h, inner) = GreHeader::parse(&[0, 0, 0x65, 0x58, 1, 2]).unwrap();
        assert_eq!(h, GreHeader::default());
        assert_eq!(inner, &[1, 2]);
    }

    #[test]
    fn key_then_sequence_as_linux_orders_them() {
        let mut buf = [0u8; 16];
        let h = GreHeader {
            checksum: false,
            key: Some(0x01020304),
            sequence: Some(7),
        };
        assert_eq!(h.emit(&mut buf), 12);
        assert_eq!(buf[..12], [0x30, 0, 0x65, 0x58, 1, 2, 3, 4, 0, 0, 0, 7]);
        assert_eq!(GreHeader::parse(&buf[..12]).unwrap(), (h, &[][..]));
    }

    #[test]
    fn a_checksum_word_is_skipped() {
        let p = [0xa0, 0, 0x65, 0x58, 0xab, 0xcd, 0, 0, 0, 0, 0, 9, 0xee];
        let (h, inner) = GreHeader::parse(&p).unwrap();
        assert!(h.checksum);
        assert_eq!(h.key, Some(9));
        assert_eq!(inner, &[0xee]);
    }

    #[test]
    fn other_protocols_versions_and_short_packets_are_refused() {
        assert_eq!(
            GreHeader::parse(&[0, 0, 0x08, 0]),
            Err(OverlayError::Protocol(0x0800))
        );
        assert!(matches!(
            GreHeader::parse(&[0, 1, 0x65, 0x58]),
            Err(OverlayError::Flags { .. })
        ));
        assert!(matches!(
            GreHeader::parse(&[0x40, 0, 0x65, 0x58]),
            Err(OverlayError::Flags { .. })
        ));
        assert!(matches!(
            GreHeader::parse(&[0x20, 0, 0x65, 0x58, 1]),
            Err(OverlayError::Short { .. })
        ));
        assert!(matches!(
            GreHeader::parse(&[0x80, 0, 0x65, 0x58]),
            Err(OverlayError::Short { .. })
        ));
    }

    #[test]
    fn endpoint_checks_the_key_and_numbers_frames() {
        let mut a = GreEndpoint::new(Some(1), Some(2), true, false);
        let b = GreEndpoint::new(Some(2), Some(1), false, false);
        let mut buf = [0u8; 16];
        let n = a.encap_header(&mut buf);
        assert_eq!(buf[..n], [0x30, 0, 0x65, 0x58, 0, 0, 0, 2, 0, 0, 0, 1]);
        let n = a.encap_header(&mut buf);
        assert_eq!(buf[8..n], [0, 0, 0, 2]);
        assert_eq!(b.decap(&buf[..n]).unwrap(), &[][..]);
        assert!(matches!(
            a.decap(&buf[..n]),
            Err(OverlayError::Mismatch { .. })
        ));
        let mut pinned = GreEndpoint::new(None, None, true, true);
        let n = pinned.encap_header(&mut buf);
        assert_eq!(buf[..n], [0x10, 0, 0x65, 0x58, 0, 0, 0, 0]);
    }
}
