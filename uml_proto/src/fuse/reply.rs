//! A reply written to /dev/fuse: the 16-byte `OutHeader` (the request's `unique`, 0
//! or a negative errno) and, on success, the operation's reply struct or data. One
//! write per reply; an error reply carries nothing after the header.

use super::wire::wire_struct;
use super::FuseError;

wire_struct! {
    /// The header of every reply: `len` counts the whole reply.
    OutHeader { len: u32, error: i32, unique: u64 }
}

/// A parsed reply (what a server wrote; for tests and the fuzz target).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply<'a> {
    pub unique: u64,
    /// 0, or the positive errno the request failed with.
    pub errno: i32,
    pub payload: &'a [u8],
}

/// Errors the kernel accepts in a reply: 0 or -1..-511.
const MAX_ERRNO: i32 = 511;

impl<'a> Reply<'a> {
    /// A success reply carrying `payload`.
    pub fn ok(unique: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = OutHeader {
            len: (OutHeader::SIZE + payload.len()) as u32,
            error: 0,
            unique,
        }
        .to_bytes();
        out.extend_from_slice(payload);
        out
    }

    /// An error reply for `errno` (positive; out-of-range values become EIO).
    pub fn error(unique: u64, errno: i32) -> Vec<u8> {
        let e = if (1..=MAX_ERRNO).contains(&errno) {
            errno
        } else {
            libc::EIO
        };
        OutHeader {
            len: OutHeader::SIZE as u32,
            error: -e,
            unique,
        }
        .to_bytes()
    }

    /// Checks a reply as the kernel does: the length matches, the error is in range,
    /// an error carries no payload.
    pub fn parse(buf: &'a [u8]) -> Result<Reply<'a>, FuseError> {
        let h = OutHeader::from_bytes(buf)?;
        if h.len as usize != buf.len() {
            return Err(FuseError::BadLength {
                len: h.len,
                got: buf.len(),
            });
        }
        if h.error > 0 || h.error < -MAX_ERRNO {
            return Err(FuseError::BadError(h.error));
        }
        let payload = &buf[OutHeader::SIZE..];
        if h.error != 0 && !payload.is_empty() {
            return Err(FuseError::ErrorWithPayload(payload.len()));
        }
        Ok(Reply {
            unique: h.unique,
            errno: -h.error,
            payload,
        })
    }

    /// Its bytes again.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self.errno {
            0 => Reply::ok(self.unique, self.payload),
            e => Reply::error(self.unique, e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_round_trip_and_are_checked() {
        let ok = Reply::ok(7, b"data");
        assert_eq!(ok.len(), 20);
        assert_eq!(&ok[0..4], &20u32.to_ne_bytes());
        let r = Reply::parse(&ok).unwrap();
        assert_eq!((r.unique, r.errno, r.payload), (7, 0, &b"data"[..]));
        assert_eq!(r.to_bytes(), ok);
        let err = Reply::error(8, libc::ENOENT);
        assert_eq!(&err[4..8], &(-libc::ENOENT).to_ne_bytes());
        assert_eq!(Reply::parse(&err).unwrap().errno, libc::ENOENT);
        assert_eq!(
            Reply::parse(&Reply::error(8, 100_000)).unwrap().errno,
            libc::EIO
        );
        let mut bad = err.clone();
        bad[4..8].copy_from_slice(&5i32.to_ne_bytes());
        assert_eq!(Reply::parse(&bad), Err(FuseError::BadError(5)));
        let mut with_payload = err.clone();
        with_payload.extend_from_slice(b"xx");
        with_payload[0..4].copy_from_slice(&18u32.to_ne_bytes());
        assert_eq!(
            Reply::parse(&with_payload),
            Err(FuseError::ErrorWithPayload(2))
        );
        assert!(Reply::parse(&ok[..19]).is_err());
    }
}
