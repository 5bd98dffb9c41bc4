//! The x86_64 Linux structures the sentry writes into guest memory (stat, statx,
//! linux_dirent64, termios, winsize, utsname, sysinfo, rlimit, statfs), laid out byte by
//! byte, and the numbers (errno, open flags, signals) the syscall modules share.

use crate::fs::node::{Attr, DirEntry, FileKind, StatFs};

/// Errno values the sentry returns beyond the VFS's (negated when returned).
pub mod errno {
    pub const EPERM: i64 = 1;
    pub const ENOENT: i64 = 2;
    pub const ESRCH: i64 = 3;
    pub const EINTR: i64 = 4;
    pub const EIO: i64 = 5;
    pub const ENXIO: i64 = 6;
    pub const E2BIG: i64 = 7;
    pub const ENOEXEC: i64 = 8;
    pub const EBADF: i64 = 9;
    pub const ECHILD: i64 = 10;
    pub const EAGAIN: i64 = 11;
    pub const ENOMEM: i64 = 12;
    pub const EACCES: i64 = 13;
    pub const EFAULT: i64 = 14;
    pub const EEXIST: i64 = 17;
    pub const ENODEV: i64 = 19;
    pub const ENOTDIR: i64 = 20;
    pub const EINVAL: i64 = 22;
    pub const EMFILE: i64 = 24;
    pub const ENOTTY: i64 = 25;
    pub const ESPIPE: i64 = 29;
    pub const EPIPE: i64 = 32;
    pub const ERANGE: i64 = 34;
    pub const ENOSYS: i64 = 38;
    pub const ELOOP: i64 = 40;
    pub const EAFNOSUPPORT: i64 = 97;
}

fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
    buf[at..at + bytes.len()].copy_from_slice(bytes);
}

/// Linux's new_encode_dev.
pub fn encode_dev(major: u32, minor: u32) -> u64 {
    ((minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)) as u64
}

/// The device number stat shows for files on mount `mount`.
pub fn mount_dev(mount: usize) -> (u32, u32) {
    if mount == 0 {
        (98, 0)
    } else {
        (0, 20 + mount as u32)
    }
}

/// `struct stat` (144 bytes).
pub fn stat(attr: &Attr, dev: (u32, u32)) -> [u8; 144] {
    let mut b = [0u8; 144];
    put(&mut b, 0, &encode_dev(dev.0, dev.1).to_ne_bytes());
    put(&mut b, 8, &attr.ino.to_ne_bytes());
    put(&mut b, 16, &(attr.nlink as u64).to_ne_bytes());
    put(&mut b, 24, &attr.mode().to_ne_bytes());
    put(&mut b, 28, &attr.uid.to_ne_bytes());
    put(&mut b, 32, &attr.gid.to_ne_bytes());
    put(
        &mut b,
        40,
        &encode_dev(attr.rdev.0, attr.rdev.1).to_ne_bytes(),
    );
    put(&mut b, 48, &attr.size.to_ne_bytes());
    put(&mut b, 56, &(attr.blksize.max(512) as u64).to_ne_bytes());
    put(&mut b, 64, &attr.blocks.to_ne_bytes());
    put(&mut b, 72, &attr.atime.to_ne_bytes());
    put(&mut b, 88, &attr.mtime.to_ne_bytes());
    put(&mut b, 104, &attr.ctime.to_ne_bytes());
    b
}

/// `struct statx` (256 bytes) with the basic fields.
pub fn statx(attr: &Attr, dev: (u32, u32)) -> [u8; 256] {
    let mut b = [0u8; 256];
    put(&mut b, 0, &0x7ffu32.to_ne_bytes()); // STATX_BASIC_STATS
    put(&mut b, 4, &attr.blksize.max(512).to_ne_bytes());
    put(&mut b, 16, &attr.nlink.to_ne_bytes());
    put(&mut b, 20, &attr.uid.to_ne_bytes());
    put(&mut b, 24, &attr.gid.to_ne_bytes());
    put(&mut b, 28, &(attr.mode() as u16).to_ne_bytes());
    put(&mut b, 32, &attr.ino.to_ne_bytes());
    put(&mut b, 40, &attr.size.to_ne_bytes());
    put(&mut b, 48, &attr.blocks.to_ne_bytes());
    put(&mut b, 64, &attr.atime.to_ne_bytes());
    put(&mut b, 96, &attr.ctime.to_ne_bytes());
    put(&mut b, 112, &attr.mtime.to_ne_bytes());
    put(&mut b, 128, &attr.rdev.0.to_ne_bytes());
    put(&mut b, 132, &attr.rdev.1.to_ne_bytes());
    put(&mut b, 136, &dev.0.to_ne_bytes());
    put(&mut b, 140, &dev.1.to_ne_bytes());
    b
}

/// The attributes a socket shows (`srwxrwxrwx`, inode `id`).
pub fn socket_attr(id: u64) -> Attr {
    Attr {
        kind: FileKind::Socket,
        perm: 0o777,
        ..pipe_attr(id)
    }
}

/// The attributes a console tty shows (`crw--w---- root tty 5,1`).
pub fn tty_attr() -> Attr {
    Attr {
        ino: 3,
        kind: FileKind::Char,
        perm: 0o620,
        nlink: 1,
        uid: 0,
        gid: 5,
        size: 0,
        blocks: 0,
        atime: 0,
        mtime: 0,
        ctime: 0,
        rdev: (5, 1),
        blksize: 1024,
    }
}

/// The attributes a pipe shows.
pub fn pipe_attr(id: u64) -> Attr {
    Attr::new(id, FileKind::Fifo, 0o600, 0, 0)
}

fn d_type(kind: FileKind) -> u8 {
    match kind {
        FileKind::Fifo => 1,
        FileKind::Char => 2,
        FileKind::Dir => 4,
        FileKind::Block => 6,
        FileKind::File => 8,
        FileKind::Symlink => 10,
        FileKind::Socket => 12,
    }
}

/// Appends one `linux_dirent64` record to `out` if it fits in `room` bytes; its
/// d_off is `next` (the position after it).
pub fn dirent64(out: &mut Vec<u8>, room: usize, e: &DirEntry, next: u64) -> bool {
    let len = (19 + e.name.len() + 1).next_multiple_of(8);
    if out.len() + len > room {
        return false;
    }
    let start = out.len();
    out.resize(start + len, 0);
    let b = &mut out[start..];
    put(b, 0, &e.ino.to_ne_bytes());
    put(b, 8, &next.to_ne_bytes());
    put(b, 16, &(len as u16).to_ne_bytes());
    b[18] = d_type(e.kind);
    put(b, 19, &e.name);
    true
}

/// `struct utsname` (six 65-byte fields).
pub fn utsname(fields: [&str; 6]) -> [u8; 390] {
    let mut b = [0u8; 390];
    for (slot, value) in b.chunks_exact_mut(65).zip(fields) {
        let n = value.len().min(64);
        slot[..n].copy_from_slice(&value.as_bytes()[..n]);
    }
    b
}

/// `struct sysinfo` (112 bytes).
pub fn sysinfo(uptime: i64, total: u64, free: u64, procs: u16) -> [u8; 112] {
    let mut b = [0u8; 112];
    put(&mut b, 0, &uptime.to_ne_bytes());
    put(&mut b, 32, &total.to_ne_bytes());
    put(&mut b, 40, &free.to_ne_bytes());
    put(&mut b, 80, &procs.to_ne_bytes());
    put(&mut b, 104, &1u32.to_ne_bytes());
    b
}

/// `struct statfs` (120 bytes).
pub fn statfs(s: &StatFs) -> [u8; 120] {
    let mut b = [0u8; 120];
    put(&mut b, 0, &s.fs_type.to_ne_bytes());
    put(&mut b, 8, &(s.bsize as u64).to_ne_bytes());
    put(&mut b, 16, &s.blocks.to_ne_bytes());
    put(&mut b, 24, &s.bfree.to_ne_bytes());
    put(&mut b, 32, &s.bavail.to_ne_bytes());
    put(&mut b, 40, &s.files.to_ne_bytes());
    put(&mut b, 48, &s.ffree.to_ne_bytes());
    put(&mut b, 64, &(s.namelen as u64).to_ne_bytes());
    put(&mut b, 72, &(s.bsize as u64).to_ne_bytes());
    b
}

/// A console's default termios (kernel `struct termios`, 36 bytes): cooked, echo,
/// signals, 38400 8N1.
pub fn default_termios() -> [u8; 36] {
    let mut b = [0u8; 36];
    put(&mut b, 0, &0o2400u32.to_ne_bytes()); // ICRNL | IXON
    put(&mut b, 4, &0o5u32.to_ne_bytes()); // OPOST | ONLCR
    put(&mut b, 8, &0o2277u32.to_ne_bytes()); // B38400 | CS8 | CREAD | HUPCL
    put(&mut b, 12, &0o105073u32.to_ne_bytes()); // ISIG ICANON ECHO ECHOE ECHOK ECHOCTL ECHOKE IEXTEN
    let cc = [
        3u8, 0x1c, 0x7f, 0x15, 4, 0, 1, 0, 0x11, 0x13, 0x1a, 0, 0x12, 0x0f, 0x17, 0x16,
    ];
    put(&mut b, 17, &cc);
    b
}

/// A wait status: exited with `code`.
pub fn exited(code: i32) -> i32 {
    (code & 0xff) << 8
}

/// Signals whose default action is to do nothing.
pub fn ignored_by_default(sig: i32) -> bool {
    matches!(
        sig,
        libc::SIGCHLD | libc::SIGURG | libc::SIGWINCH | libc::SIGCONT
    )
}

/// The bit of signal `sig` in a 64-bit set.
pub fn sigbit(sig: i32) -> u64 {
    if (1..=64).contains(&sig) {
        1u64 << (sig - 1)
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dirents_are_aligned_and_bounded() {
        let e = DirEntry {
            ino: 12,
            kind: FileKind::Dir,
            name: b"abc".to_vec(),
        };
        let mut out = Vec::new();
        assert!(dirent64(&mut out, 64, &e, 1));
        assert_eq!(out.len(), 24);
        assert_eq!(u16::from_ne_bytes([out[16], out[17]]), 24);
        assert_eq!((out[18], &out[19..23]), (4, &b"abc\0"[..]));
        assert!(dirent64(&mut out, 48, &e, 2));
        assert!(!dirent64(&mut out, 64, &e, 3));
    }

    #[test]
    fn devices_encode_as_linux() {
        assert_eq!(encode_dev(5, 1), 0x501);
        assert_eq!(encode_dev(98, 0), 98 << 8);
        assert_eq!(
            encode_dev(1, 300),
            (300 & 0xff) | (1 << 8) | ((300 & !0xff) << 12)
        );
    }
}
