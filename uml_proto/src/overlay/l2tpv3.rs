//! L2TPv3 Ethernet pseudowires (RFC 3931, RFC 4719) as linux.uml's `transport=l2tpv3`
//! and `ip l2tp` send them: over UDP a 4-byte data-message word (T bit clear, version 3)
//! comes first; over IP protocol 115 it does not. Then the 32-bit session id, the cookie
//! (0, 4 or 8 bytes, fixed per session), and, when the session has one, a 4-byte counter
//! (linux.uml's `counter`; iproute2 calls it the default L2-specific sublayer). All
//! big-endian. The layout is a property of the session, not of the packet.

use super::{be32, need, OverlayError};

/// IP protocol number of L2TPv3 without UDP.
pub const IP_PROTO: i32 = 115;
/// The first word of a UDP data message: T bit 0, version 3.
pub const DATA_MESSAGE: u32 = 0x0003_0000;

/// The cookie a session carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Cookie {
    #[default]
    None,
    Bits32(u32),
    Bits64(u64),
}

impl Cookie {
    pub fn len(&self) -> usize {
        match self {
            Cookie::None => 0,
            Cookie::Bits32(_) => 4,
            Cookie::Bits64(_) => 8,
        }
    }

    pub fn is_empty(&self) -> bool {
        matches!(self, Cookie::None)
    }

    fn value(&self) -> u64 {
        match *self {
            Cookie::None => 0,
            Cookie::Bits32(c) => u64::from(c),
            Cookie::Bits64(c) => c,
        }
    }
}

/// Where the fields of a session's packets lie.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Layout {
    pub udp: bool,
    /// 0, 4 or 8.
    pub cookie_len: usize,
    pub counter: bool,
}

impl Layout {
    pub fn header_len(&self) -> usize {
        4 * usize::from(self.udp) + 4 + self.cookie_len + 4 * usize::from(self.counter)
    }
}

/// The fields of one packet's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L2tpv3Header {
    pub session: u32,
    pub cookie: Cookie,
    pub counter: Option<u32>,
}

impl L2tpv3Header {
    /// Reads a header of `layout` (after any IPv4 header); returns it and the frame.
    pub fn parse(layout: Layout, b: &[u8]) -> Result<(L2tpv3Header, &[u8]), OverlayError> {
        need("L2TPv3", b, layout.header_len())?;
        let mut at = 0;
        if layout.udp {
            let word = be32(b, 0);
            // A control message (T bit) or another version is not a frame.
            if word & 0x8000_0000 != 0 || (word >> 16) & 0x0f != 3 {
                return Err(OverlayError::Flags {
                    what: "L2TPv3",
                    flags: word,
                });
            }
            at = 4;
        }
        let session = be32(b, at);
        at += 4;
        let cookie = match layout.cookie_len {
            4 => Cookie::Bits32(be32(b, at)),
            8 => Cookie::Bits64((u64::from(be32(b, at)) << 32) | u64::from(be32(b, at + 4))),
            _ => Cookie::None,
        };
        at += cookie.len();
        let counter = layout.counter.then(|| be32(b, at));
        at += 4 * usize::from(layout.counter);
        Ok((
            L2tpv3Header {
                session,
                cookie,
                counter,
            },
            &b[at..],
        ))
    }

    /// Writes the header in `layout` into `buf`; returns its length.
    pub fn emit(&self, layout: Layout, buf: &mut [u8]) -> usize {
        let mut at = 0;
        let mut put = |bytes: &[u8]| {
            buf[at..at + bytes.len()].copy_from_slice(bytes);
            at += bytes.len();
        };
        if layout.udp {
            put(&DATA_MESSAGE.to_be_bytes());
        }
        put(&self.session.to_be_bytes());
        match self.cookie {
            Cookie::None => {}
            Cookie::Bits32(c) => put(&c.to_be_bytes()),
            Cookie::Bits64(c) => put(&c.to_be_bytes()),
        }
        if layout.counter {
            put(&self.counter.unwrap_or(0).to_be_bytes());
        }
        at
    }
}

/// One end of a session with linux.uml's options: `rx_session`/`tx_session`,
/// `rx_cookie`/`tx_cookie` (`cookie64` for 8 bytes), `counter`, `pin_counter`, `udp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct L2tpv3Endpoint {
    pub udp: bool,
    pub rx_session: u32,
    pub tx_session: u32,
    pub rx_cookie: Cookie,
    pub tx_cookie: Cookie,
    pub counter: bool,
    pub pin_counter: bool,
    sent: u32,
}

impl L2tpv3Endpoint {
    pub fn new(udp: bool, rx_session: u32, tx_session: u32) -> L2tpv3Endpoint {
        L2tpv3Endpoint {
            udp,
            rx_session,
            tx_session,
            rx_cookie: Cookie::None,
            tx_cookie: Cookie::None,
            counter: false,
            pin_counter: false,
            sent: 0,
        }
    }

    fn layout(&self, cookie: Cookie) -> Layout {
        Layout {
            udp: self.udp,
            cookie_len: cookie.len(),
            counter: self.counter,
        }
    }

    /// The frame of a packet for this session (session and cookie checked, as linux.uml
    /// checks them; the counter is not enforced).
    pub fn decap<'a>(&self, packet: &'a [u8]) -> Result<&'a [u8], OverlayError> {
        let (h, frame) = L2tpv3Header::parse(self.layout(self.rx_cookie), packet)?;
        if h.session != self.rx_session {
            let (expected, got) = (u64::from(self.rx_session), u64::from(h.session));
            return Err(OverlayError::Mismatch {
                what: "L2TPv3 session",
                expected,
                got,
            });
        }
        if h.cookie != self.rx_cookie {
            let (expected, got) = (self.rx_cookie.value(), h.cookie.value());
            return Err(OverlayError::Mismatch {
                what: "L2TPv3 cookie",
                expected,
                got,
            });
        }
        Ok(frame)
    }

    /// Writes the header for the next frame into `buf`; returns its length.
    pub fn encap_header(&mut self, buf: &mut [u8]) -> usize {
        let counter = self.counter.then(|| {
            if self.pin_counter {
                0
            } else {
                self.sent = self.sent.wrapping_add(1);
                self.sent
            }
        });
        let h = L2tpv3Header {
            session: self.tx_session,
            cookie: self.tx_cookie,
            counter,
        };
        h.emit(self.layout(self.tx_cookie), buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp_header_with_64_bit_cookie_and_counter() {
        let layout = Layout {
            udp: true,
            cookie_len: 8,
            counter: true,
        };
        assert_eq!(layout.header_len(), 20);
        let h = L2tpv3Header {
            session: 0xffff_fffe,
            cookie: Cookie::Bits64(0x0102_0304_0506_0708),
            counter: Some(3),
        };
        let mut buf = [0u8; 32];
        assert_eq!(h.emit(layout, &mut buf), 20);
        assert_eq!(
            buf[..20],
            [0, 3, 0, 0, 0xff, 0xff, 0xff, 0xfe, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 3]
        );
        let (back, frame) = L2tpv3Header::parse(layout, &buf[..22]).unwrap();
        assert_eq!(back, h);
        assert_eq!(frame, &[0, 0]);
    }

    #[test]
    fn ip_mode_has_no_data_word() {
        let layout = Layout {
            udp: false,
            cookie_len: 4,
            counter: false,
        };
        let h = L2tpv3Header {
            session: 9,
            cookie: Cookie::Bits32(0xcafe),
            counter: None,
        };
        let mut buf = [0u8; 8];
        assert_eq!(h.emit(layout, &mut buf), 8);
        assert_eq!(buf, [0, 0, 0, 9, 0, 0, 0xca, 0xfe]);
    }

    #[test]
    fn control_messages_and_short_packets_are_refused() {
        let layout = Layout {
            udp: true,
            cookie_len: 0,
            counter: false,
        };
        assert!(matches!(
            L2tpv3Header::parse(layout, &[0xc8, 3, 0, 0, 0, 0, 0, 1]),
            Err(OverlayError::Flags { .. })
        ));
        assert!(matches!(
            L2tpv3Header::parse(layout, &[0, 2, 0, 0, 0, 0, 0, 1]),
            Err(OverlayError::Flags { .. })
        ));
        assert!(matches!(
            L2tpv3Header::parse(layout, &[0, 3, 0, 0, 0]),
            Err(OverlayError::Short { .. })
        ));
    }

    #[test]
    fn endpoints_check_session_and_cookie() {
        let mut a = L2tpv3Endpoint::new(true, 1, 2);
        a.tx_cookie = Cookie::Bits32(0xaa);
        a.rx_cookie = Cookie::Bits32(0xbb);
        a.counter = true;
        let mut b = L2tpv3Endpoint::new(true, 2, 1);
        b.tx_cookie = Cookie::Bits32(0xbb);
        b.rx_cookie = Cookie::Bits32(0xaa);
        b.counter = true;
        let mut buf = [0u8; 32];
        let n = a.encap_header(&mut buf);
        assert_eq!(
            buf[..n],
            [0, 3, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0xaa, 0, 0, 0, 1]
        );
        buf[n] = 0x55;
        assert_eq!(b.decap(&buf[..n + 1]).unwrap(), &[0x55]);
        // The same packet at the sender itself: wrong session.
        assert!(matches!(
            a.decap(&buf[..n + 1]),
            Err(OverlayError::Mismatch { .. })
        ));
        // Right session, wrong cookie.
        let mut c = b.clone();
        c.rx_cookie = Cookie::Bits32(0xab);
        assert!(matches!(
            c.decap(&buf[..n + 1]),
            Err(OverlayError::Mismatch {
                what: "L2TPv3 cookie",
                ..
            })
        ));
        a.pin_counter = true;
        let n = a.encap_header(&mut buf);
        assert_eq!(buf[n - 4..n], [0, 0, 0, 0]);
    }
}
