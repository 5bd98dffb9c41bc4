//! Ethernet II as the UML network transports carry it: a MAC address type and a typed
//! view over a frame's 14-byte header (destination, source, EtherType). Frames travel
//! without FCS or any extra header, one per datagram.

use std::fmt;
use std::str::FromStr;

/// Bytes in an Ethernet header (two MACs and the EtherType).
pub const HEADER_LEN: usize = 14;
/// The largest frame the transports carry: a 1500-byte MTU plus the header.
pub const MAX_FRAME_LEN: usize = 1514;

/// A 48-bit Ethernet address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);

    /// Group (multicast or broadcast) addresses have bit 0 of the first byte set.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }

    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// Locally administered addresses (bit 1 of the first byte), like UML's random ones.
    pub fn is_local(&self) -> bool {
        self.0[0] & 2 == 2
    }

    /// The address as one integer (handy as a cheap hash key).
    pub fn to_u64(&self) -> u64 {
        let mut b = [0u8; 8];
        b[..6].copy_from_slice(&self.0);
        u64::from_le_bytes(b)
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a text or a frame is not what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EtherError {
    /// A MAC address text that is not six `:`-separated hex bytes.
    BadMac(String),
    /// A frame shorter than the 14-byte header.
    Runt(usize),
}

impl fmt::Display for EtherError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EtherError::BadMac(s) => write!(f, "'{s}' is not a MAC address (xx:xx:xx:xx:xx:xx)"),
            EtherError::Runt(n) => {
                write!(f, "frame of {n} bytes is shorter than an Ethernet header")
            }
        }
    }
}

impl std::error::Error for EtherError {}

impl FromStr for MacAddr {
    type Err = EtherError;

    fn from_str(s: &str) -> Result<MacAddr, EtherError> {
        let bad = || EtherError::BadMac(s.to_owned());
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in out.iter_mut() {
            let p = parts.next().ok_or_else(bad)?;
            if p.is_empty() || p.len() > 2 {
                return Err(bad());
            }
            *byte = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(MacAddr(out))
    }
}

/// A read-only view of a frame whose length has been checked to hold a header.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    bytes: &'a [u8],
}

impl<'a> Frame<'a> {
    /// Checks that `bytes` holds at least an Ethernet header.
    pub fn parse(bytes: &'a [u8]) -> Result<Frame<'a>, EtherError> {
        if bytes.len() < HEADER_LEN {
            return Err(EtherError::Runt(bytes.len()));
        }
        Ok(Frame { bytes })
    }

    pub fn dst(&self) -> MacAddr {
        MacAddr(self.bytes[0..6].try_into().expect("6 bytes"))
    }

    pub fn src(&self) -> MacAddr {
        MacAddr(self.bytes[6..12].try_into().expect("6 bytes"))
    }

    pub fn ethertype(&self) -> u16 {
        u16::from_be_bytes([self.bytes[12], self.bytes[13]])
    }

    pub fn payload(&self) -> &'a [u8] {
        &self.bytes[HEADER_LEN..]
    }

    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

/// Writes a header (dst, src, EtherType) into the first 14 bytes of `buf`.
pub fn emit_header(
    dst: MacAddr,
    src: MacAddr,
    ethertype: u16,
    buf: &mut [u8],
) -> Result<(), EtherError> {
    if buf.len() < HEADER_LEN {
        return Err(EtherError::Runt(buf.len()));
    }
    buf[0..6].copy_from_slice(&dst.0);
    buf[6..12].copy_from_slice(&src.0);
    buf[12..14].copy_from_slice(&ethertype.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_text_round_trips() {
        let m: MacAddr = "fe:fd:01:02:03:0a".parse().unwrap();
        assert_eq!(m.0, [0xfe, 0xfd, 1, 2, 3, 10]);
        assert_eq!(m.to_string(), "fe:fd:01:02:03:0a");
        assert!(m.is_local() && !m.is_multicast());
        for bad in [
            "",
            "fe:fd:01:02:03",
            "fe:fd:01:02:03:04:05",
            "fe:fd:01:02:03:4g",
            "fe::01:02:03:04",
            "123:0:0:0:0:0",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn header_view_and_emit_agree() {
        // An ARP request as linux.uml sends it: 42 bytes, not padded.
        let mut f = [0u8; 42];
        let src = MacAddr([0xfe, 0xfd, 0, 0, 0, 1]);
        emit_header(MacAddr::BROADCAST, src, 0x0806, &mut f).unwrap();
        let v = Frame::parse(&f).unwrap();
        assert!(v.dst().is_broadcast() && v.dst().is_multicast());
        assert_eq!(v.src(), src);
        assert_eq!(v.ethertype(), 0x0806);
        assert_eq!(v.payload().len(), 28);
        assert_eq!(Frame::parse(&f[..13]).unwrap_err(), EtherError::Runt(13));
    }
}
