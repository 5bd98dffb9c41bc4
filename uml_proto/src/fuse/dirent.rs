//! Directory entries as READDIR returns them: `ino`, the offset of the next entry,
//! the name's length and its DT_ type, then the name, padded to 8 bytes. A reply
//! holds as many whole entries as fit the size the kernel asked for.

use super::wire::{align8, Field};
use super::FuseError;

/// One directory entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dirent<'a> {
    pub ino: u64,
    /// The offset that continues the listing after this entry.
    pub off: u64,
    /// DT_* (the file type bits of the mode shifted down by 12).
    pub kind: u32,
    pub name: &'a [u8],
}

/// The fixed part of an entry.
const HEAD: usize = 24;

impl<'a> Dirent<'a> {
    /// Its size on the wire, padding included.
    pub fn size(&self) -> usize {
        align8(HEAD + self.name.len())
    }

    /// Appends it to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let start = out.len();
        self.ino.put(out);
        self.off.put(out);
        (self.name.len() as u32).put(out);
        self.kind.put(out);
        out.extend_from_slice(self.name);
        out.resize(start + self.size(), 0);
    }

    /// Every entry of a READDIR reply's payload.
    pub fn parse_all(mut buf: &'a [u8]) -> Result<Vec<Dirent<'a>>, FuseError> {
        let mut out = Vec::new();
        while !buf.is_empty() {
            if buf.len() < HEAD {
                return Err(FuseError::Short {
                    what: "dirent",
                    need: HEAD,
                    got: buf.len(),
                });
            }
            let namelen = u32::get(&buf[16..]) as usize;
            let size = align8(HEAD + namelen);
            if buf.len() < HEAD + namelen {
                return Err(FuseError::Short {
                    what: "dirent name",
                    need: HEAD + namelen,
                    got: buf.len(),
                });
            }
            out.push(Dirent {
                ino: u64::get(buf),
                off: u64::get(&buf[8..]),
                kind: u32::get(&buf[20..]),
                name: &buf[HEAD..HEAD + namelen],
            });
            buf = buf.get(size..).unwrap_or_default();
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_padded_and_parse_back() {
        let a = Dirent {
            ino: 2,
            off: 1,
            kind: 4,
            name: b".",
        };
        let b = Dirent {
            ino: 12,
            off: 2,
            kind: 8,
            name: b"hello.txt",
        };
        assert_eq!(a.size(), 32);
        assert_eq!(b.size(), 40);
        let mut buf = Vec::new();
        a.write_to(&mut buf);
        b.write_to(&mut buf);
        assert_eq!(buf.len(), 72);
        assert_eq!(&buf[16..20], &1u32.to_ne_bytes());
        assert_eq!(&buf[24..25], b".");
        assert!(buf[25..32].iter().all(|&x| x == 0));
        assert_eq!(Dirent::parse_all(&buf).unwrap(), vec![a, b]);
        assert!(Dirent::parse_all(&buf[..60]).is_err());
    }
}
