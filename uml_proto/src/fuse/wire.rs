//! The fixed-layout building blocks of FUSE messages: integer fields in host byte order
//! and a macro that declares a struct with its exact wire size, `from_bytes` (checks the
//! length, returns a typed error) and `to_bytes` / `write_to`. Every FUSE argument and
//! reply struct in this module is declared with it, so layouts are one list of fields.

use byteorder::{ByteOrder, NativeEndian};

/// A field of a fixed-layout struct (FUSE uses the host's byte order).
pub trait Field: Sized + Copy {
    const SIZE: usize;
    /// Reads the field from the start of `b` (the caller checked the length).
    fn get(b: &[u8]) -> Self;
    fn put(self, out: &mut Vec<u8>);
}

impl Field for u16 {
    const SIZE: usize = 2;
    fn get(b: &[u8]) -> Self {
        NativeEndian::read_u16(b)
    }
    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_ne_bytes());
    }
}

impl Field for u32 {
    const SIZE: usize = 4;
    fn get(b: &[u8]) -> Self {
        NativeEndian::read_u32(b)
    }
    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_ne_bytes());
    }
}

impl Field for i32 {
    const SIZE: usize = 4;
    fn get(b: &[u8]) -> Self {
        NativeEndian::read_i32(b)
    }
    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_ne_bytes());
    }
}

impl Field for u64 {
    const SIZE: usize = 8;
    fn get(b: &[u8]) -> Self {
        NativeEndian::read_u64(b)
    }
    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_ne_bytes());
    }
}

impl<const N: usize> Field for [u32; N] {
    const SIZE: usize = 4 * N;
    fn get(b: &[u8]) -> Self {
        let mut a = [0u32; N];
        for (i, v) in a.iter_mut().enumerate() {
            *v = NativeEndian::read_u32(&b[4 * i..]);
        }
        a
    }
    fn put(self, out: &mut Vec<u8>) {
        for v in self {
            v.put(out);
        }
    }
}

/// Declares a fixed-layout wire struct: its fields in order, `SIZE`, `from_bytes`,
/// `to_bytes` and `write_to`; it is a `Field` itself so structs can nest.
macro_rules! wire_struct {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $f:ident : $t:ty),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct $name {
            $($(#[$fm])* pub $f: $t,)*
        }

        impl $name {
            /// Size on the wire.
            pub const SIZE: usize = 0 $(+ <$t as $crate::fuse::wire::Field>::SIZE)*;

            /// Reads it from the start of `b` (longer input is fine: what follows is
            /// the next part of the message).
            pub fn from_bytes(b: &[u8]) -> Result<Self, $crate::fuse::FuseError> {
                if b.len() < Self::SIZE {
                    return Err($crate::fuse::FuseError::Short {
                        what: stringify!($name),
                        need: Self::SIZE,
                        got: b.len(),
                    });
                }
                Ok(<Self as $crate::fuse::wire::Field>::get(b))
            }

            /// Its exact bytes.
            pub fn to_bytes(&self) -> Vec<u8> {
                let mut v = Vec::with_capacity(Self::SIZE);
                self.write_to(&mut v);
                v
            }

            /// Appends its bytes to `out`.
            pub fn write_to(&self, out: &mut Vec<u8>) {
                $crate::fuse::wire::Field::put(*self, out);
            }
        }

        impl $crate::fuse::wire::Field for $name {
            const SIZE: usize = $name::SIZE;
            #[allow(unused_assignments)]
            fn get(b: &[u8]) -> Self {
                let mut at = 0;
                $(
                    let $f = <$t as $crate::fuse::wire::Field>::get(&b[at..]);
                    at += <$t as $crate::fuse::wire::Field>::SIZE;
                )*
                $name { $($f,)* }
            }
            fn put(self, out: &mut Vec<u8>) {
                $( $crate::fuse::wire::Field::put(self.$f, out); )*
            }
        }
    };
}

pub(crate) use wire_struct;

/// `n` rounded up to a multiple of 8 (directory entries are 8-byte aligned).
pub fn align8(n: usize) -> usize {
    (n + 7) & !7
}
