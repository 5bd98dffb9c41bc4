//! One FUSE connection's protocol state and its dispatcher: INIT negotiation, then
//! every request answered against the guest's VFS (the same tree, the same open-file
//! rules and the same data the guest's shell sees). Pure: bytes in, bytes out; the
//! device (`device.rs`) does the reading and writing. The operations themselves are
//! in `names.rs` (the namespace) and `files.rs` (open files and directories).

use uml_proto::fuse::{
    encode_dev, init_flags, AttrOut, EntryOut, InitIn, InitOut, Operation, Reply, Request,
    KERNEL_MINOR_VERSION, KERNEL_VERSION, MIN_MINOR_VERSION,
};

use super::handles::{Handle, Handles};
use super::nodes::Nodes;
use super::perm::Caller;
use crate::fs::node::Attr;
use crate::fs::{Errno, Loc, Vfs};

/// Largest WRITE (and READ) the connection carries.
pub const MAX_WRITE: u32 = 128 * 1024;
/// The read buffer a request needs at most (the header and WRITE's argument fit in
/// the page on top).
pub const REQUEST_BUFFER: usize = MAX_WRITE as usize + 4096;
/// Pages per request (MAX_WRITE / 4 KiB).
const MAX_PAGES: u16 = 32;

/// A failed operation: the positive errno the host gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fail(pub i32);

impl From<Errno> for Fail {
    fn from(e: Errno) -> Fail {
        Fail(e.code())
    }
}

pub type Op<T> = Result<T, Fail>;

/// The protocol state of one connection.
#[derive(Debug)]
pub struct Session {
    pub(super) nodes: Nodes,
    pub(super) handles: Handles,
    /// The negotiated minor version, once INIT is done.
    pub minor: Option<u32>,
    /// The host sent DESTROY (it is unmounting).
    pub destroyed: bool,
}

/// The inode number the host shows for `loc`: the guest's own for the root
/// filesystem; other mounts' numbers get the mount in the top bits so that two
/// filesystems' inodes never share a number on the one FUSE mount.
pub fn host_ino(loc: Loc) -> u64 {
    if loc.mount == 0 {
        loc.ino
    } else {
        (loc.ino & 0xffff_ffff_ffff) | ((loc.mount as u64) << 48)
    }
}

/// The guest's attributes as FUSE carries them.
pub fn fuse_attr(loc: Loc, a: &Attr) -> uml_proto::fuse::Attr {
    let secs = |t: i64| u64::try_from(t).unwrap_or(0);
    uml_proto::fuse::Attr {
        ino: host_ino(loc),
        size: a.size,
        blocks: a.blocks,
        atime: secs(a.atime),
        mtime: secs(a.mtime),
        ctime: secs(a.ctime),
        atimensec: 0,
        mtimensec: 0,
        ctimensec: 0,
        mode: a.mode(),
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: encode_dev(a.rdev.0, a.rdev.1),
        blksize: a.blksize,
        flags: 0,
    }
}

/// A single path component the VFS may be given: no `/`, not `.` or `..`.
pub fn check_name(name: &[u8]) -> Op<&[u8]> {
    if name.is_empty() || name.contains(&b'/') || name == b"." || name == b".." {
        return Err(Fail(libc::EINVAL));
    }
    if name.len() > crate::fs::vfs::NAME_MAX {
        return Err(Fail(libc::ENAMETOOLONG));
    }
    Ok(name)
}

impl Session {
    /// A connection serving the tree whose root is `root`.
    pub fn new(root: Loc) -> Session {
        Session {
            nodes: Nodes::new(root),
            handles: Handles::default(),
            minor: None,
            destroyed: false,
        }
    }

    /// Answers one request; None when the protocol wants no reply (FORGET,
    /// BATCH_FORGET, INTERRUPT: every request is answered before the next is read,
    /// so there is never one to interrupt).
    pub fn handle(&mut self, vfs: &mut Vfs, req: &Request) -> Option<Vec<u8>> {
        let unique = req.header.unique;
        let result = match &req.op {
            Operation::Forget(f) => {
                self.nodes.forget(req.header.nodeid, f.nlookup);
                return None;
            }
            Operation::BatchForget(list) => {
                for f in list {
                    self.nodes.forget(f.nodeid, f.nlookup);
                }
                return None;
            }
            Operation::Interrupt(_) => return None,
            Operation::Init(a) => self.init(a),
            _ if self.minor.is_none() => Err(Fail(libc::EIO)),
            _ => self.dispatch(vfs, req),
        };
        Some(match result {
            Ok(payload) => Reply::ok(unique, &payload),
            Err(Fail(e)) => Reply::error(unique, e),
        })
    }

    /// INIT: our major version; the lower of the two minors; what we take of the
    /// kernel's offers (big writes and the page count for them).
    fn init(&mut self, a: &InitIn) -> Op<Vec<u8>> {
        if a.major < KERNEL_VERSION || self.minor.is_some() {
            return Err(Fail(libc::EPROTO));
        }
        let mut out = InitOut {
            major: KERNEL_VERSION,
            minor: KERNEL_MINOR_VERSION,
            ..InitOut::default()
        };
        if a.major > KERNEL_VERSION {
            // The kernel asks again with our major.
            return Ok(out.to_bytes());
        }
        if a.minor < MIN_MINOR_VERSION {
            return Err(Fail(libc::EPROTO));
        }
        let minor = a.minor.min(KERNEL_MINOR_VERSION);
        out.minor = minor;
        out.flags = a.flags & (init_flags::BIG_WRITES | init_flags::MAX_PAGES);
        out.max_readahead = a.max_readahead.min(MAX_WRITE);
        out.max_background = 16;
        out.congestion_threshold = 12;
        out.max_write = MAX_WRITE;
        out.time_gran = 1_000_000_000;
        if out.flags & init_flags::MAX_PAGES != 0 {
            out.max_pages = MAX_PAGES;
        }
        self.minor = Some(minor);
        let mut bytes = out.to_bytes();
        if minor < 23 {
            // Older kernels know the 24-byte form only.
            bytes.truncate(24);
        }
        Ok(bytes)
    }

    fn dispatch(&mut self, vfs: &mut Vfs, req: &Request) -> Op<Vec<u8>> {
        let id = req.header.nodeid;
        let who = Caller {
            uid: req.header.uid,
            gid: req.header.gid,
        };
        match &req.op {
            Operation::Lookup { name } => self.lookup(vfs, who, id, name),
            Operation::Getattr(a) => self.getattr(vfs, id, a),
            Operation::Setattr(a) => self.setattr(vfs, who, id, a),
            Operation::Readlink => self.readlink(vfs, id),
            Operation::Symlink { name, target } => self.symlink(vfs, who, id, name, target),
            Operation::Mknod { arg, name } => self.mknod(vfs, who, id, arg, name),
            Operation::Mkdir { arg, name } => self.mkdir(vfs, who, id, arg, name),
            Operation::Unlink { name } => self.remove(vfs, who, id, name, false),
            Operation::Rmdir { name } => self.remove(vfs, who, id, name, true),
            Operation::Rename { arg, old, new } => {
                self.rename(vfs, who, (id, old), (arg.newdir, new), 0)
            }
            Operation::Rename2 { arg, old, new } => {
                self.rename(vfs, who, (id, old), (arg.newdir, new), arg.flags)
            }
            Operation::Link { arg, name } => self.link(vfs, who, id, arg.oldnodeid, name),
            Operation::Access(a) => self.access(vfs, who, id, a.mask),
            Operation::Statfs => self.statfs(vfs, id),
            Operation::Open(a) => self.open(vfs, who, id, a.flags),
            Operation::Create { arg, name } => self.create(vfs, who, id, arg, name),
            Operation::Read(a) => self.read(vfs, a),
            Operation::Write { arg, data } => self.write(vfs, arg, data),
            Operation::Flush(_) => Ok(Vec::new()),
            Operation::Release(a) => self.release(vfs, a.fh),
            Operation::Fsync(_) | Operation::Fsyncdir(_) => self.fsync(vfs, id),
            Operation::Opendir(_) => self.opendir(vfs, who, id),
            Operation::Readdir(a) => self.readdir(vfs, a),
            Operation::Releasedir(a) => self.release(vfs, a.fh),
            Operation::Destroy => {
                self.close(vfs);
                self.destroyed = true;
                Ok(Vec::new())
            }
            // READDIRPLUS is never enabled at INIT; the rest we do not implement.
            _ => Err(Fail(libc::ENOSYS)),
        }
    }

    /// The place a node id stands for (ESTALE for an id the host should not hold).
    pub(super) fn loc(&self, id: u64) -> Op<Loc> {
        self.nodes.loc(id).ok_or(Fail(libc::ESTALE))
    }

    /// An entry reply for `loc`, reached as `name` in `dir`; the host now holds one
    /// more lookup reference on its node. Nothing is cached on the host: the guest
    /// changes the same files, so every walk and stat comes back here.
    pub(super) fn entry(&mut self, vfs: &mut Vfs, loc: Loc, dir: Loc, name: &[u8]) -> Op<Vec<u8>> {
        let attr = vfs.getattr(loc)?;
        let nodeid = self.nodes.found(loc, dir, name);
        Ok(EntryOut {
            nodeid,
            attr: fuse_attr(loc, &attr),
            ..EntryOut::default()
        }
        .to_bytes())
    }

    pub(super) fn attr_out(loc: Loc, attr: &Attr) -> Vec<u8> {
        AttrOut {
            attr: fuse_attr(loc, attr),
            ..AttrOut::default()
        }
        .to_bytes()
    }

    /// Closes every handle the host still holds (the connection ended).
    pub fn close(&mut self, vfs: &mut Vfs) {
        for h in self.handles.drain() {
            if let Handle::File(f) = h {
                let _ = vfs.close(f);
            }
        }
    }

    /// How many node ids and handles the host holds.
    pub fn held(&self) -> (usize, usize) {
        (self.nodes.len(), self.handles.len())
    }
}
