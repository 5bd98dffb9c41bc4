//! umlfs's session driven with requests as the host kernel sends them (built and
//! parsed by `uml_proto::fuse`), against a tmpfs VFS that the test also uses the way
//! the guest's shell does: both sides must see the same files.

use uml_proto::fuse::{
    fattr, init_flags, opcode, rename_flags, AccessIn, AttrOut, CreateIn, Dirent, EntryOut,
    ForgetIn, ForgetOne, GetattrIn, InHeader, InitIn, InitOut, LinkIn, MkdirIn, MknodIn, OpenIn,
    OpenOut, Operation, ReadIn, ReleaseIn, Rename2In, RenameIn, Reply, Request, SetattrIn,
    StatfsOut, WriteIn, WriteOut, ROOT_ID,
};

use super::session::Session;
use crate::fs::oflag::*;
use crate::fs::tmpfs::Tmpfs;
use crate::fs::Vfs;

const ROOT: (u32, u32) = (0, 0);
const ALICE: (u32, u32) = (1000, 100);

struct Host {
    vfs: Vfs,
    s: Session,
    unique: u64,
}

impl Host {
    fn new() -> Host {
        let vfs = Vfs::new(Box::new(Tmpfs::new(0)), "rootfs");
        let s = Session::new(vfs.root());
        let mut h = Host { vfs, s, unique: 0 };
        let out = h
            .init(7, 39, init_flags::BIG_WRITES | init_flags::ASYNC_READ)
            .unwrap();
        assert_eq!(InitOut::from_bytes(&out).unwrap().minor, 31);
        h
    }

    fn send(&mut self, node: u64, who: (u32, u32), op: Operation) -> Option<Result<Vec<u8>, i32>> {
        self.unique += 2;
        let bytes = Request {
            header: InHeader {
                unique: self.unique,
                nodeid: node,
                uid: who.0,
                gid: who.1,
                pid: 1234,
                ..InHeader::default()
            },
            op,
        }
        .to_bytes();
        let req = Request::parse(&bytes).unwrap();
        let reply = self.s.handle(&mut self.vfs, &req)?;
        let r = Reply::parse(&reply).unwrap();
        assert_eq!(r.unique, self.unique);
        Some(if r.errno == 0 {
            Ok(r.payload.to_vec())
        } else {
            Err(r.errno)
        })
    }

    fn call(&mut self, node: u64, who: (u32, u32), op: Operation) -> Result<Vec<u8>, i32> {
        self.send(node, who, op).expect("a reply")
    }

    fn init(&mut self, major: u32, minor: u32, flags: u32) -> Result<Vec<u8>, i32> {
        let op = Operation::Init(InitIn {
            major,
            minor,
            max_readahead: 1 << 20,
            flags,
            flags2: 0,
        });
        self.call(0, ROOT, op)
    }

    fn lookup(&mut self, dir: u64, who: (u32, u32), name: &[u8]) -> Result<EntryOut, i32> {
        let out = self.call(dir, who, Operation::Lookup { name })?;
        Ok(EntryOut::from_bytes(&out).unwrap())
    }

    fn mkdir(
        &mut self,
        dir: u64,
        who: (u32, u32),
        name: &[u8],
        mode: u32,
    ) -> Result<EntryOut, i32> {
        let arg = MkdirIn { mode, umask: 0 };
        let out = self.call(dir, who, Operation::Mkdir { arg, name })?;
        Ok(EntryOut::from_bytes(&out).unwrap())
    }

    fn create(
        &mut self,
        dir: u64,
        who: (u32, u32),
        name: &[u8],
        mode: u32,
    ) -> Result<(EntryOut, u64), i32> {
        let arg = CreateIn {
            flags: O_RDWR | O_CREAT,
            mode: 0o100000 | mode,
            umask: 0,
            open_flags: 0,
        };
        let out = self.call(dir, who, Operation::Create { arg, name })?;
        let e = EntryOut::from_bytes(&out).unwrap();
        let o = OpenOut::from_bytes(&out[EntryOut::SIZE..]).unwrap();
        Ok((e, o.fh))
    }

    fn open(&mut self, node: u64, who: (u32, u32), flags: u32) -> Result<u64, i32> {
        let out = self.call(
            node,
            who,
            Operation::Open(OpenIn {
                flags,
                open_flags: 0,
            }),
        )?;
        Ok(OpenOut::from_bytes(&out).unwrap().fh)
    }

    fn write(&mut self, node: u64, fh: u64, offset: u64, data: &[u8]) -> Result<u32, i32> {
        let arg = WriteIn {
            fh,
            offset,
            size: data.len() as u32,
            ..WriteIn::default()
        };
        let out = self.call(node, ROOT, Operation::Write { arg, data })?;
        Ok(WriteOut::from_bytes(&out).unwrap().size)
    }

    fn read(&mut self, node: u64, fh: u64, offset: u64, size: u32) -> Result<Vec<u8>, i32> {
        let arg = ReadIn {
            fh,
            offset,
            size,
            ..ReadIn::default()
        };
        self.call(node, ROOT, Operation::Read(arg))
    }

    fn release(&mut self, node: u64, fh: u64) {
        let arg = ReleaseIn {
            fh,
            ..ReleaseIn::default()
        };
        self.call(node, ROOT, Operation::Release(arg)).unwrap();
    }

    fn getattr(&mut self, node: u64) -> Result<uml_proto::fuse::Attr, i32> {
        let out = self.call(node, ROOT, Operation::Getattr(GetattrIn::default()))?;
        Ok(AttrOut::from_bytes(&out).unwrap().attr)
    }

    fn list(&mut self, node: u64, who: (u32, u32), size: u32) -> Result<Vec<String>, i32> {
        let out = self.call(node, who, Operation::Opendir(OpenIn::default()))?;
        let fh = OpenOut::from_bytes(&out).unwrap().fh;
        let mut names = Vec::new();
        let mut offset = 0;
        loop {
            let arg = ReadIn {
                fh,
                offset,
                size,
                ..ReadIn::default()
            };
            let page = self.call(node, who, Operation::Readdir(arg))?;
            let entries = Dirent::parse_all(&page).unwrap();
            let Some(last) = entries.last() else { break };
            offset = last.off;
            names.extend(
                entries
                    .iter()
                    .map(|d| String::from_utf8_lossy(d.name).into_owned()),
            );
        }
        let arg = ReleaseIn {
            fh,
            ..ReleaseIn::default()
        };
        self.call(node, who, Operation::Releasedir(arg))?;
        names.sort();
        Ok(names)
    }

    /// What the guest's shell would read at `path`.
    fn guest_read(&mut self, path: &str) -> Vec<u8> {
        let cwd = self.vfs.root();
        let mut f = self
            .vfs
            .open(cwd, path.as_bytes(), O_RDONLY, 0, 0, 0)
            .unwrap();
        let mut buf = vec![0u8; 4096];
        let n = self.vfs.read(&mut f, &mut buf).unwrap();
        self.vfs.close(f).unwrap();
        buf.truncate(n);
        buf
    }

    fn guest_write(&mut self, path: &str, data: &[u8]) {
        let cwd = self.vfs.root();
        let mut f = self
            .vfs
            .open(
                cwd,
                path.as_bytes(),
                O_WRONLY | O_CREAT | O_TRUNC,
                0o644,
                0,
                0,
            )
            .unwrap();
        self.vfs.write(&mut f, data).unwrap();
        self.vfs.close(f).unwrap();
    }
}

#[test]
fn init_negotiates_the_version() {
    let vfs = Vfs::new(Box::new(Tmpfs::new(0)), "rootfs");
    let mut h = Host {
        s: Session::new(vfs.root()),
        vfs,
        unique: 0,
    };
    // Nothing before INIT.
    assert_eq!(h.call(ROOT_ID, ROOT, Operation::Statfs), Err(libc::EIO));
    // A newer major is told ours and asks again; an older one is refused.
    let out = InitOut::from_bytes(&h.init(8, 0, 0).unwrap()).unwrap();
    assert_eq!((out.major, out.minor), (7, 31));
    assert!(h.s.minor.is_none());
    assert_eq!(h.init(6, 99, 0), Err(libc::EPROTO));
    assert_eq!(h.init(7, 8, 0), Err(libc::EPROTO));
    // An old 7.22 kernel gets the 24-byte form; flags are what both sides have.
    let flags = init_flags::BIG_WRITES | init_flags::ASYNC_READ | init_flags::MAX_PAGES;
    let out = h.init(7, 22, flags).unwrap();
    assert_eq!(out.len(), 24);
    let mut full = out.clone();
    full.resize(64, 0);
    let o = InitOut::from_bytes(&full).unwrap();
    assert_eq!((o.major, o.minor), (7, 22));
    assert_eq!(o.flags, init_flags::BIG_WRITES | init_flags::MAX_PAGES);
    assert_eq!(o.max_write, 128 * 1024);
    // A second INIT is a protocol error; requests now work.
    assert_eq!(h.init(7, 31, 0), Err(libc::EPROTO));
    let s = StatfsOut::from_bytes(&h.call(ROOT_ID, ROOT, Operation::Statfs).unwrap()).unwrap();
    assert_eq!((s.bsize, s.namelen), (4096, 255));
}

#[test]
fn host_and_guest_share_files() {
    let mut h = Host::new();
    let (e, fh) = h.create(ROOT_ID, ROOT, b"from-host", 0o640).unwrap();
    assert_eq!(e.attr.mode, 0o100640);
    assert_eq!(h.write(e.nodeid, fh, 0, b"hello guest\n").unwrap(), 12);
    h.release(e.nodeid, fh);
    assert_eq!(h.guest_read("/from-host"), b"hello guest\n");
    h.guest_write("/from-guest", b"hello host\n");
    let g = h.lookup(ROOT_ID, ROOT, b"from-guest").unwrap();
    assert_eq!(g.attr.size, 11);
    let fh = h.open(g.nodeid, ROOT, O_RDONLY).unwrap();
    assert_eq!(h.read(g.nodeid, fh, 0, 4096).unwrap(), b"hello host\n");
    assert_eq!(h.read(g.nodeid, fh, 6, 4096).unwrap(), b"host\n");
    // The guest rewrites it: the host's next read sees the new bytes.
    h.guest_write("/from-guest", b"changed\n");
    assert_eq!(h.read(g.nodeid, fh, 0, 4096).unwrap(), b"changed\n");
    h.release(g.nodeid, fh);
    // Writing through a read-only handle fails as in the guest.
    let fh = h.open(g.nodeid, ROOT, O_RDONLY).unwrap();
    assert_eq!(h.write(g.nodeid, fh, 0, b"x"), Err(libc::EBADF));
    h.release(g.nodeid, fh);
    assert_eq!(
        h.list(ROOT_ID, ROOT, 4096).unwrap(),
        [".", "..", "from-guest", "from-host"]
    );
}

#[test]
fn names_change_on_both_sides() {
    let mut h = Host::new();
    let d = h.mkdir(ROOT_ID, ROOT, b"dir", 0o755).unwrap();
    assert_eq!(d.attr.mode, 0o040755);
    let (f, fh) = h.create(d.nodeid, ROOT, b"a", 0o644).unwrap();
    h.release(f.nodeid, fh);
    // rename within and across directories
    let arg = RenameIn { newdir: d.nodeid };
    h.call(
        d.nodeid,
        ROOT,
        Operation::Rename {
            arg,
            old: b"a",
            new: b"b",
        },
    )
    .unwrap();
    let arg = RenameIn { newdir: ROOT_ID };
    h.call(
        d.nodeid,
        ROOT,
        Operation::Rename {
            arg,
            old: b"b",
            new: b"top",
        },
    )
    .unwrap();
    assert_eq!(h.guest_read("/top"), b"");
    // The moved node still opens (its new name is remembered).
    let fh = h.open(f.nodeid, ROOT, O_RDWR).unwrap();
    h.write(f.nodeid, fh, 0, b"moved").unwrap();
    h.release(f.nodeid, fh);
    assert_eq!(h.guest_read("/top"), b"moved");
    // RENAME2: no replace; no exchange.
    let (g, fh) = h.create(ROOT_ID, ROOT, b"other", 0o644).unwrap();
    h.release(g.nodeid, fh);
    let arg = Rename2In {
        newdir: ROOT_ID,
        flags: rename_flags::NOREPLACE,
        padding: 0,
    };
    let r = h.call(
        ROOT_ID,
        ROOT,
        Operation::Rename2 {
            arg,
            old: b"top",
            new: b"other",
        },
    );
    assert_eq!(r, Err(libc::EEXIST));
    let arg = Rename2In {
        flags: rename_flags::EXCHANGE,
        ..arg
    };
    let r = h.call(
        ROOT_ID,
        ROOT,
        Operation::Rename2 {
            arg,
            old: b"top",
            new: b"other",
        },
    );
    assert_eq!(r, Err(libc::EINVAL));
    // symlink, readlink, hard link
    let op = Operation::Symlink {
        name: b"ln",
        target: b"dir/../top",
    };
    let s = EntryOut::from_bytes(&h.call(ROOT_ID, ROOT, op).unwrap()).unwrap();
    assert_eq!(s.attr.mode & 0o170000, 0o120000);
    assert_eq!(
        h.call(s.nodeid, ROOT, Operation::Readlink).unwrap(),
        b"dir/../top"
    );
    assert_eq!(h.guest_read("/ln"), b"moved");
    let arg = LinkIn {
        oldnodeid: f.nodeid,
    };
    let l = EntryOut::from_bytes(
        &h.call(d.nodeid, ROOT, Operation::Link { arg, name: b"hard" })
            .unwrap(),
    )
    .unwrap();
    assert_eq!((l.nodeid, l.attr.nlink), (f.nodeid, 2));
    assert_eq!(h.guest_read("/dir/hard"), b"moved");
    // mknod: a fifo and a device node keep their numbers.
    let arg = MknodIn {
        mode: 0o020600,
        rdev: uml_proto::fuse::encode_dev(1, 3),
        umask: 0,
        padding: 0,
    };
    let n = EntryOut::from_bytes(
        &h.call(d.nodeid, ROOT, Operation::Mknod { arg, name: b"null" })
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        (n.attr.mode, n.attr.rdev),
        (0o020600, uml_proto::fuse::encode_dev(1, 3))
    );
    // unlink, rmdir with the VFS's rules
    assert_eq!(
        h.call(ROOT_ID, ROOT, Operation::Rmdir { name: b"dir" }),
        Err(libc::ENOTEMPTY)
    );
    assert_eq!(
        h.call(ROOT_ID, ROOT, Operation::Unlink { name: b"dir" }),
        Err(libc::EISDIR)
    );
    for name in [&b"hard"[..], b"null"] {
        h.call(d.nodeid, ROOT, Operation::Unlink { name }).unwrap();
    }
    h.call(ROOT_ID, ROOT, Operation::Rmdir { name: b"dir" })
        .unwrap();
    assert_eq!(h.lookup(ROOT_ID, ROOT, b"dir").unwrap_err(), libc::ENOENT);
    // names the VFS must never be given
    assert_eq!(
        h.mkdir(ROOT_ID, ROOT, b"a/b", 0o755).unwrap_err(),
        libc::EINVAL
    );
    assert_eq!(
        h.mkdir(ROOT_ID, ROOT, b"..", 0o755).unwrap_err(),
        libc::EINVAL
    );
    assert_eq!(h.lookup(ROOT_ID, ROOT, b"..").unwrap_err(), libc::ENOENT);
}

#[test]
fn setattr_changes_modes_owners_sizes_and_times() {
    let mut h = Host::new();
    let (f, fh) = h.create(ROOT_ID, ROOT, b"f", 0o644).unwrap();
    h.write(f.nodeid, fh, 0, b"0123456789").unwrap();
    h.release(f.nodeid, fh);
    let arg = SetattrIn {
        valid: fattr::MODE | fattr::UID | fattr::GID | fattr::SIZE | fattr::MTIME,
        mode: 0o100600,
        uid: 1000,
        gid: 100,
        size: 4,
        mtime: 1_000_000,
        ..SetattrIn::default()
    };
    let a = AttrOut::from_bytes(&h.call(f.nodeid, ROOT, Operation::Setattr(arg)).unwrap())
        .unwrap()
        .attr;
    assert_eq!(
        (a.mode, a.uid, a.gid, a.size, a.mtime),
        (0o100600, 1000, 100, 4, 1_000_000)
    );
    let root = h.vfs.root();
    let st = h.vfs.stat(root, b"/f", false).unwrap();
    assert_eq!(
        (st.perm, st.uid, st.gid, st.size, st.mtime),
        (0o600, 1000, 100, 4, 1_000_000)
    );
    assert_eq!(h.getattr(f.nodeid).unwrap().size, 4);
}

#[test]
fn host_users_get_the_guests_permissions() {
    let mut h = Host::new();
    let etc = h.mkdir(ROOT_ID, ROOT, b"etc", 0o755).unwrap().nodeid;
    let (secret, fh) = h.create(etc, ROOT, b"secret", 0o600).unwrap();
    h.release(secret.nodeid, fh);
    // root's 0600 file and root's 0755 directory, for uid 1000
    assert_eq!(h.open(secret.nodeid, ALICE, O_RDONLY), Err(libc::EACCES));
    assert_eq!(
        h.create(etc, ALICE, b"mine", 0o644).unwrap_err(),
        libc::EACCES
    );
    assert_eq!(h.mkdir(etc, ALICE, b"d", 0o755).unwrap_err(), libc::EACCES);
    assert_eq!(
        h.call(etc, ALICE, Operation::Unlink { name: b"secret" }),
        Err(libc::EACCES)
    );
    let chmod = SetattrIn {
        valid: fattr::MODE,
        mode: 0o100666,
        ..SetattrIn::default()
    };
    assert_eq!(
        h.call(secret.nodeid, ALICE, Operation::Setattr(chmod)),
        Err(libc::EPERM)
    );
    let access = |mask| Operation::Access(AccessIn { mask, padding: 0 });
    assert_eq!(h.call(secret.nodeid, ALICE, access(4)), Err(libc::EACCES));
    assert_eq!(h.call(secret.nodeid, ROOT, access(4 | 2)), Ok(vec![]));
    assert_eq!(h.call(secret.nodeid, ROOT, access(1)), Err(libc::EACCES));
    // A hard link to someone else's unreadable file is refused.
    let home = h.mkdir(ROOT_ID, ROOT, b"home", 0o777).unwrap();
    let arg = LinkIn {
        oldnodeid: secret.nodeid,
    };
    assert_eq!(
        h.call(home.nodeid, ALICE, Operation::Link { arg, name: b"x" }),
        Err(libc::EPERM)
    );
    // In a world-writable directory uid 1000 creates files owned by uid 1000.
    let (mine, fh) = h.create(home.nodeid, ALICE, b"mine", 0o644).unwrap();
    h.release(mine.nodeid, fh);
    assert_eq!((mine.attr.uid, mine.attr.gid), (1000, 100));
    let root = h.vfs.root();
    let st = h.vfs.stat(root, b"/home/mine", false).unwrap();
    assert_eq!((st.uid, st.gid), (1000, 100));
    // ... may chmod it but not give it away
    let chown = SetattrIn {
        valid: fattr::UID,
        uid: 0,
        ..SetattrIn::default()
    };
    assert_eq!(
        h.call(mine.nodeid, ALICE, Operation::Setattr(chown)),
        Err(libc::EPERM)
    );
    assert!(h
        .call(mine.nodeid, ALICE, Operation::Setattr(chmod))
        .is_ok());
    // Sticky directory: uid 1000 cannot remove root's file in it.
    let tmp = h.mkdir(ROOT_ID, ROOT, b"tmp", 0o1777).unwrap();
    let (rf, fh) = h.create(tmp.nodeid, ROOT, b"rootfile", 0o666).unwrap();
    h.release(rf.nodeid, fh);
    assert_eq!(
        h.call(tmp.nodeid, ALICE, Operation::Unlink { name: b"rootfile" }),
        Err(libc::EPERM)
    );
    // Search permission guards lookups.
    let closed = h.mkdir(ROOT_ID, ROOT, b"closed", 0o700).unwrap();
    let (_, fh) = h.create(closed.nodeid, ROOT, b"inside", 0o644).unwrap();
    h.release(closed.nodeid, fh);
    assert_eq!(
        h.lookup(closed.nodeid, ALICE, b"inside").unwrap_err(),
        libc::EACCES
    );
    assert_eq!(
        h.list(closed.nodeid, ALICE, 4096).unwrap_err(),
        libc::EACCES
    );
}

#[test]
fn node_ids_live_while_looked_up_and_unknown_ones_are_stale() {
    let mut h = Host::new();
    let (f, fh) = h.create(ROOT_ID, ROOT, b"f", 0o644).unwrap();
    h.release(f.nodeid, fh);
    assert_eq!(h.lookup(ROOT_ID, ROOT, b"f").unwrap().nodeid, f.nodeid);
    assert_eq!(h.s.held(), (2, 0));
    // FORGET and BATCH_FORGET get no reply.
    assert!(h
        .send(f.nodeid, ROOT, Operation::Forget(ForgetIn { nlookup: 1 }))
        .is_none());
    assert!(h.getattr(f.nodeid).is_ok());
    let one = ForgetOne {
        nodeid: f.nodeid,
        nlookup: 1,
    };
    assert!(h.send(0, ROOT, Operation::BatchForget(vec![one])).is_none());
    assert_eq!(h.s.held(), (1, 0));
    assert_eq!(h.getattr(f.nodeid), Err(libc::ESTALE));
    assert_eq!(h.getattr(ROOT_ID).unwrap().mode & 0o170000, 0o040000);
    // Unknown operations: ENOSYS; INTERRUPT: no reply.
    let op = Operation::Other {
        opcode: opcode::GETXATTR,
        body: b"\0\0\0\0\0\0\0\0user.x\0",
    };
    assert_eq!(h.call(ROOT_ID, ROOT, op), Err(libc::ENOSYS));
    let op = Operation::Interrupt(uml_proto::fuse::InterruptIn { unique: 3 });
    assert!(h.send(0, ROOT, op).is_none());
}

#[test]
fn a_file_unlinked_while_the_host_holds_it_open_stays_readable() {
    let mut h = Host::new();
    h.guest_write("/doomed", b"still here");
    let e = h.lookup(ROOT_ID, ROOT, b"doomed").unwrap();
    let fh = h.open(e.nodeid, ROOT, O_RDONLY).unwrap();
    let root = h.vfs.root();
    h.vfs.unlink(root, b"/doomed").unwrap();
    assert_eq!(h.read(e.nodeid, fh, 0, 100).unwrap(), b"still here");
    h.release(e.nodeid, fh);
    assert!(h.getattr(e.nodeid).is_err());
    // Closing the connection closes what the host left open.
    h.guest_write("/kept", b"x");
    let k = h.lookup(ROOT_ID, ROOT, b"kept").unwrap();
    h.open(k.nodeid, ROOT, O_RDONLY).unwrap();
    assert_eq!(h.s.held().1, 1);
    h.s.close(&mut h.vfs);
    assert_eq!(h.s.held().1, 0);
}

#[test]
fn directories_are_read_in_pages_and_mounts_are_crossed() {
    let mut h = Host::new();
    for i in 0..50 {
        h.guest_write(&format!("/file-with-a-long-name-{i:02}"), b"");
    }
    let all = h.list(ROOT_ID, ROOT, 4096).unwrap();
    let paged = h.list(ROOT_ID, ROOT, 100).unwrap();
    assert_eq!(all.len(), 52);
    assert_eq!(all, paged);
    // A tmpfs mounted in the guest shows through, with its own inode numbers.
    let root = h.vfs.root();
    h.vfs.mkdir(root, b"/mnt", 0o755, 0, 0).unwrap();
    h.vfs
        .mount(root, b"/mnt", Box::new(Tmpfs::new(0)), "tmpfs")
        .unwrap();
    let m = h.lookup(ROOT_ID, ROOT, b"mnt").unwrap();
    assert_ne!(m.attr.ino >> 48, 0);
    let (f, fh) = h.create(m.nodeid, ROOT, b"on-mnt", 0o644).unwrap();
    h.write(f.nodeid, fh, 0, b"mounted").unwrap();
    // The guest cannot unmount what the host holds open.
    assert!(h.vfs.umount(root, b"/mnt").is_err());
    h.release(f.nodeid, fh);
    assert_eq!(h.guest_read("/mnt/on-mnt"), b"mounted");
    assert_eq!(h.list(m.nodeid, ROOT, 4096).unwrap(), [".", "..", "on-mnt"]);
}

#[test]
fn a_rewound_listing_shows_what_changed_meanwhile() {
    let mut h = Host::new();
    let out = h
        .call(ROOT_ID, ROOT, Operation::Opendir(OpenIn::default()))
        .unwrap();
    let fh = OpenOut::from_bytes(&out).unwrap().fh;
    let names = |h: &mut Host| {
        let arg = ReadIn {
            fh,
            size: 4096,
            ..ReadIn::default()
        };
        let page = h.call(ROOT_ID, ROOT, Operation::Readdir(arg)).unwrap();
        let list: Vec<String> = Dirent::parse_all(&page)
            .unwrap()
            .iter()
            .map(|d| String::from_utf8_lossy(d.name).into_owned())
            .collect();
        list
    };
    assert_eq!(names(&mut h), [".", ".."]);
    h.guest_write("/new", b"");
    assert_eq!(names(&mut h), [".", "..", "new"]);
    // A directory that went away while open: the next listing says so.
    let d = h.mkdir(ROOT_ID, ROOT, b"d", 0o755).unwrap();
    let out = h
        .call(d.nodeid, ROOT, Operation::Opendir(OpenIn::default()))
        .unwrap();
    let dfh = OpenOut::from_bytes(&out).unwrap().fh;
    let root = h.vfs.root();
    h.vfs.rmdir(root, b"/d").unwrap();
    let arg = ReadIn {
        fh: dfh,
        size: 4096,
        ..ReadIn::default()
    };
    assert!(h.call(d.nodeid, ROOT, Operation::Readdir(arg)).is_err());
}
