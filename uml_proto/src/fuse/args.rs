//! The fixed-layout argument and reply structs of the FUSE operations (uapi `fuse.h`
//! at minor version 31), each with its exact size; names and data that follow them
//! in a message are handled by `request`.

use super::wire::wire_struct;
use super::FuseError;

wire_struct! {
    /// A node's attributes (`struct fuse_attr`, 88 bytes).
    Attr {
        ino: u64,
        size: u64,
        blocks: u64,
        atime: u64,
        mtime: u64,
        ctime: u64,
        atimensec: u32,
        mtimensec: u32,
        ctimensec: u32,
        mode: u32,
        nlink: u32,
        uid: u32,
        gid: u32,
        rdev: u32,
        blksize: u32,
        flags: u32,
    }
}

wire_struct! {
    /// The answer to LOOKUP, MKNOD, MKDIR, SYMLINK, LINK (and CREATE's first part):
    /// a node id the kernel now holds one lookup reference on.
    EntryOut {
        nodeid: u64,
        generation: u64,
        entry_valid: u64,
        attr_valid: u64,
        entry_valid_nsec: u32,
        attr_valid_nsec: u32,
        attr: Attr,
    }
}

wire_struct! {
    /// The answer to GETATTR and SETATTR.
    AttrOut {
        attr_valid: u64,
        attr_valid_nsec: u32,
        dummy: u32,
        attr: Attr,
    }
}

wire_struct! {
    /// FORGET: drop `nlookup` lookup references (no reply).
    ForgetIn { nlookup: u64 }
}

wire_struct! {
    /// One entry of BATCH_FORGET.
    ForgetOne { nodeid: u64, nlookup: u64 }
}

wire_struct! {
    /// BATCH_FORGET's header; `count` `ForgetOne`s follow.
    BatchForgetIn { count: u32, dummy: u32 }
}

wire_struct! {
    /// GETATTR (`getattr_flags` bit 0: `fh` is set).
    GetattrIn { getattr_flags: u32, dummy: u32, fh: u64 }
}

wire_struct! {
    /// SETATTR: `valid` (the `fattr` bits) says which fields count.
    SetattrIn {
        valid: u32,
        padding: u32,
        fh: u64,
        size: u64,
        lock_owner: u64,
        atime: u64,
        mtime: u64,
        ctime: u64,
        atimensec: u32,
        mtimensec: u32,
        ctimensec: u32,
        mode: u32,
        unused4: u32,
        uid: u32,
        gid: u32,
        unused5: u32,
    }
}

wire_struct! {
    /// MKNOD; the name follows.
    MknodIn { mode: u32, rdev: u32, umask: u32, padding: u32 }
}

wire_struct! {
    /// MKDIR; the name follows.
    MkdirIn { mode: u32, umask: u32 }
}

wire_struct! {
    /// RENAME; the old and new names follow.
    RenameIn { newdir: u64 }
}

wire_struct! {
    /// RENAME2 (renameat2 flags); the old and new names follow.
    Rename2In { newdir: u64, flags: u32, padding: u32 }
}

wire_struct! {
    /// LINK: a new name (which follows) in the request's directory for `oldnodeid`.
    LinkIn { oldnodeid: u64 }
}

wire_struct! {
    /// OPEN and OPENDIR.
    OpenIn { flags: u32, open_flags: u32 }
}

wire_struct! {
    /// CREATE; the name follows.
    CreateIn { flags: u32, mode: u32, umask: u32, open_flags: u32 }
}

wire_struct! {
    /// The answer to OPEN, OPENDIR (and CREATE's second part): the handle.
    OpenOut { fh: u64, open_flags: u32, padding: u32 }
}

wire_struct! {
    /// RELEASE and RELEASEDIR.
    ReleaseIn { fh: u64, flags: u32, release_flags: u32, lock_owner: u64 }
}

wire_struct! {
    /// FLUSH (each close of a descriptor).
    FlushIn { fh: u64, unused: u32, padding: u32, lock_owner: u64 }
}

wire_struct! {
    /// READ, READDIR and READDIRPLUS.
    ReadIn {
        fh: u64,
        offset: u64,
        size: u32,
        read_flags: u32,
        lock_owner: u64,
        flags: u32,
        padding: u32,
    }
}

wire_struct! {
    /// WRITE; `size` bytes of data follow.
    WriteIn {
        fh: u64,
        offset: u64,
        size: u32,
        write_flags: u32,
        lock_owner: u64,
        flags: u32,
        padding: u32,
    }
}

wire_struct! {
    /// The answer to WRITE.
    WriteOut { size: u32, padding: u32 }
}

wire_struct! {
    /// The answer to STATFS (`struct fuse_kstatfs`).
    StatfsOut {
        blocks: u64,
        bfree: u64,
        bavail: u64,
        files: u64,
        ffree: u64,
        bsize: u32,
        namelen: u32,
        frsize: u32,
        padding: u32,
        spare: [u32; 6],
    }
}

wire_struct! {
    /// FSYNC and FSYNCDIR (bit 0 of `fsync_flags`: data only).
    FsyncIn { fh: u64, fsync_flags: u32, padding: u32 }
}

wire_struct! {
    /// ACCESS: the access(2) mask (R 4, W 2, X 1; 0 for existence).
    AccessIn { mask: u32, padding: u32 }
}

wire_struct! {
    /// INTERRUPT: the request to interrupt.
    InterruptIn { unique: u64 }
}

wire_struct! {
    /// The answer to INIT (64 bytes since minor 23).
    InitOut {
        major: u32,
        minor: u32,
        max_readahead: u32,
        flags: u32,
        max_background: u16,
        congestion_threshold: u16,
        max_write: u32,
        time_gran: u32,
        max_pages: u16,
        map_alignment: u16,
        flags2: u32,
        unused: [u32; 7],
    }
}

/// INIT's argument: 16 bytes before minor 36, 64 since (with `flags2`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InitIn {
    pub major: u32,
    pub minor: u32,
    pub max_readahead: u32,
    pub flags: u32,
    /// The high flag bits (0 when the kernel sent the short form).
    pub flags2: u32,
}

wire_struct! {
    /// The 16-byte form of INIT's argument.
    InitInShort { major: u32, minor: u32, max_readahead: u32, flags: u32 }
}

impl InitIn {
    /// The short form's size.
    pub const MIN_SIZE: usize = 16;
    /// The long form's size.
    pub const SIZE: usize = 64;

    pub fn from_bytes(b: &[u8]) -> Result<InitIn, FuseError> {
        let s = InitInShort::from_bytes(b).map_err(|_| FuseError::Short {
            what: "InitIn",
            need: Self::MIN_SIZE,
            got: b.len(),
        })?;
        let flags2 = match b.get(16..20) {
            Some(f) => u32::from_ne_bytes([f[0], f[1], f[2], f[3]]),
            None => 0,
        };
        Ok(InitIn {
            major: s.major,
            minor: s.minor,
            max_readahead: s.max_readahead,
            flags: s.flags,
            flags2,
        })
    }

    /// The 64-byte form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = InitInShort {
            major: self.major,
            minor: self.minor,
            max_readahead: self.max_readahead,
            flags: self.flags,
        }
        .to_bytes();
        v.extend_from_slice(&self.flags2.to_ne_bytes());
        v.resize(Self::SIZE, 0);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_the_kernels() {
        assert_eq!(Attr::SIZE, 88);
        assert_eq!(EntryOut::SIZE, 128);
        assert_eq!(AttrOut::SIZE, 104);
        assert_eq!(SetattrIn::SIZE, 88);
        assert_eq!(GetattrIn::SIZE, 16);
        assert_eq!(MknodIn::SIZE, 16);
        assert_eq!(MkdirIn::SIZE, 8);
        assert_eq!(Rename2In::SIZE, 16);
        assert_eq!(CreateIn::SIZE, 16);
        assert_eq!(OpenOut::SIZE, 16);
        assert_eq!(ReleaseIn::SIZE, 24);
        assert_eq!(FlushIn::SIZE, 24);
        assert_eq!(ReadIn::SIZE, 40);
        assert_eq!(WriteIn::SIZE, 40);
        assert_eq!(WriteOut::SIZE, 8);
        assert_eq!(StatfsOut::SIZE, 80);
        assert_eq!(FsyncIn::SIZE, 16);
        assert_eq!(AccessIn::SIZE, 8);
        assert_eq!(InitOut::SIZE, 64);
        assert_eq!(ForgetOne::SIZE, 16);
    }

    #[test]
    fn fields_sit_where_the_kernel_reads_them() {
        let a = Attr {
            ino: 0x0102_0304_0506_0708,
            mode: 0o100644,
            uid: 1000,
            rdev: 0x0ae5,
            ..Attr::default()
        };
        let b = a.to_bytes();
        assert_eq!(b.len(), 88);
        assert_eq!(&b[0..8], &0x0102_0304_0506_0708u64.to_ne_bytes());
        assert_eq!(&b[60..64], &0o100644u32.to_ne_bytes());
        assert_eq!(&b[68..72], &1000u32.to_ne_bytes());
        assert_eq!(&b[76..80], &0x0ae5u32.to_ne_bytes());
        assert_eq!(Attr::from_bytes(&b).unwrap(), a);
        let e = EntryOut {
            nodeid: 9,
            attr: a,
            ..EntryOut::default()
        };
        let eb = e.to_bytes();
        assert_eq!(&eb[40..48], &a.to_bytes()[..8]);
        assert_eq!(EntryOut::from_bytes(&eb).unwrap(), e);
    }

    #[test]
    fn short_input_is_a_typed_error() {
        assert_eq!(
            ReadIn::from_bytes(&[0u8; 39]),
            Err(FuseError::Short {
                what: "ReadIn",
                need: 40,
                got: 39
            })
        );
        assert!(InitIn::from_bytes(&[0u8; 15]).is_err());
    }

    #[test]
    fn init_in_short_and_long_forms() {
        let mut short = Vec::new();
        for v in [7u32, 31, 131072, 0x1234] {
            short.extend_from_slice(&v.to_ne_bytes());
        }
        let i = InitIn::from_bytes(&short).unwrap();
        assert_eq!((i.major, i.minor, i.flags, i.flags2), (7, 31, 0x1234, 0));
        let long = InitIn { flags2: 5, ..i }.to_bytes();
        assert_eq!(long.len(), 64);
        assert_eq!(InitIn::from_bytes(&long).unwrap().flags2, 5);
    }
}
