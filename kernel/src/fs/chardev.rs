//! The memory character devices the kernel itself implements (major 1: null, zero,
//! full, random, urandom) and the /dev tree a guest sees: a tmpfs holding the device
//! nodes (memory devices, ttys, console, the ubd disks). Other devices (ttys, disks)
//! are served by their drivers through the syscall layer; here they read as ENXIO.

use std::io::Read;

use super::errno::{Errno, FsResult};
use super::node::{FileKind, FileSystem, NewNode};
use super::tmpfs::Tmpfs;

/// Major number of the memory devices.
pub const MEM_MAJOR: u32 = 1;
/// Major number of UML's ubd disks (16 minors per disk).
pub const UBD_MAJOR: u32 = 98;

fn random_bytes(buf: &mut [u8]) -> FsResult<usize> {
    let mut f = std::fs::File::open("/dev/urandom").map_err(|_| Errno::EIO)?;
    f.read_exact(buf).map_err(|_| Errno::EIO)?;
    Ok(buf.len())
}

/// Reads from character device `rdev`.
pub fn read(rdev: (u32, u32), buf: &mut [u8]) -> FsResult<usize> {
    match rdev {
        (MEM_MAJOR, 3) => Ok(0),
        (MEM_MAJOR, 5) | (MEM_MAJOR, 7) => {
            buf.fill(0);
            Ok(buf.len())
        }
        (MEM_MAJOR, 8) | (MEM_MAJOR, 9) => random_bytes(buf),
        _ => Err(Errno::ENXIO),
    }
}

/// Writes to character device `rdev`.
pub fn write(rdev: (u32, u32), data: &[u8]) -> FsResult<usize> {
    match rdev {
        (MEM_MAJOR, 3) | (MEM_MAJOR, 5) | (MEM_MAJOR, 8) | (MEM_MAJOR, 9) => Ok(data.len()),
        (MEM_MAJOR, 7) => Err(Errno::ENOSPC),
        _ => Err(Errno::ENXIO),
    }
}

/// A /dev: the memory devices, tty, console, tty0..tty`ttys`, ttyS0..ttyS3, and ubda.. for each
/// disk index given; plus the directories shm and pts.
pub fn devfs(ttys: u32, disks: &[usize]) -> FsResult<Tmpfs> {
    let mut fs = Tmpfs::new(0);
    let root = fs.root();
    let mut nodes: Vec<(String, FileKind, u32, (u32, u32))> = vec![
        ("null".into(), FileKind::Char, 0o666, (1, 3)),
        ("zero".into(), FileKind::Char, 0o666, (1, 5)),
        ("full".into(), FileKind::Char, 0o666, (1, 7)),
        ("random".into(), FileKind::Char, 0o666, (1, 8)),
        ("urandom".into(), FileKind::Char, 0o666, (1, 9)),
        ("tty".into(), FileKind::Char, 0o666, (5, 0)),
        ("console".into(), FileKind::Char, 0o600, (5, 1)),
        ("watchdog".into(), FileKind::Char, 0o600, (10, 130)),
    ];
    for n in 0..=ttys {
        nodes.push((format!("tty{n}"), FileKind::Char, 0o620, (4, n)));
    }
    // The serial lines ssl0..ssl3 (the sentry's ttys; an unconfigured one: ENODEV).
    for n in 0..4 {
        nodes.push((format!("ttyS{n}"), FileKind::Char, 0o660, (4, 64 + n)));
    }
    for &d in disks {
        let name = format!("ubd{}", (b'a' + (d % 26) as u8) as char);
        nodes.push((name, FileKind::Block, 0o660, (UBD_MAJOR, 16 * d as u32)));
    }
    for (name, kind, perm, rdev) in nodes {
        let node = NewNode {
            kind,
            perm,
            uid: 0,
            gid: 0,
            rdev,
        };
        fs.mknod(root, name.as_bytes(), &node)?;
    }
    for dir in ["shm", "pts"] {
        let node = NewNode {
            kind: FileKind::Dir,
            perm: 0o755,
            uid: 0,
            gid: 0,
            rdev: (0, 0),
        };
        fs.mknod(root, dir.as_bytes(), &node)?;
    }
    let shm_perm = super::node::SetAttr {
        perm: Some(0o1777),
        ..Default::default()
    };
    let shm = fs.lookup(root, b"shm")?;
    fs.setattr(shm, &shm_perm)?;
    Ok(fs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::vfs::{oflag::*, Vfs};

    #[test]
    fn dev_nodes_read_and_write_through_the_vfs() {
        let mut vfs = Vfs::new(Box::new(Tmpfs::new(0)), "rootfs");
        let r = vfs.root();
        vfs.mkdir(r, b"/dev", 0o755, 0, 0).expect("mkdir");
        vfs.mount(
            r,
            b"/dev",
            Box::new(devfs(2, &[0, 1]).expect("devfs")),
            "devtmpfs",
        )
        .expect("mount");
        let mut buf = [7u8; 64];
        let mut f = vfs.open(r, b"/dev/zero", O_RDWR, 0, 0, 0).expect("zero");
        assert_eq!(vfs.read(&mut f, &mut buf), Ok(64));
        assert!(buf.iter().all(|&b| b == 0));
        assert_eq!(vfs.write(&mut f, b"gone"), Ok(4));
        vfs.close(f).expect("close");
        let mut f = vfs.open(r, b"/dev/null", O_RDWR, 0, 0, 0).expect("null");
        assert_eq!(vfs.read(&mut f, &mut buf), Ok(0));
        vfs.close(f).expect("close");
        let mut f = vfs.open(r, b"/dev/full", O_WRONLY, 0, 0, 0).expect("full");
        assert_eq!(vfs.write(&mut f, b"x"), Err(Errno::ENOSPC));
        vfs.close(f).expect("close");
        let mut f = vfs
            .open(r, b"/dev/urandom", O_RDONLY, 0, 0, 0)
            .expect("urandom");
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        vfs.read(&mut f, &mut a).expect("read");
        vfs.read(&mut f, &mut b).expect("read");
        assert_ne!(a, b);
        vfs.close(f).expect("close");
        let disk = vfs.stat(r, b"/dev/ubdb", true).expect("ubdb");
        assert_eq!((disk.kind, disk.rdev), (FileKind::Block, (98, 16)));
        assert_eq!(vfs.stat(r, b"/dev/shm", true).expect("shm").perm, 0o1777);
        let mut f = vfs.open(r, b"/dev/tty1", O_RDONLY, 0, 0, 0).expect("tty1");
        assert_eq!(vfs.read(&mut f, &mut buf), Err(Errno::ENXIO));
        vfs.close(f).expect("close");
    }
}
