//! fallocate(2): reserving space in a file. The VFS's filesystems allocate on write, so
//! mode 0 only grows the file to `offset + len` (the new range reads as zeros, as a
//! reservation does) and FALLOC_FL_KEEP_SIZE changes nothing visible; the other modes
//! (punching or zeroing holes, collapsing, inserting) are refused with EOPNOTSUPP.
//! The errno cases in Linux's order: EINVAL (a negative offset, a length of 0 or
//! less), EOPNOTSUPP (a mode), EBADF (not open for writing), ESPIPE (a pipe), EISDIR,
//! ENODEV (not a regular file), EFBIG (past the largest file).

use super::abi::errno::*;
use super::fdtable::Object;
use super::file::fe;
use super::sentry::Sentry;
use crate::fs::node::{FileKind, SetAttr};
use crate::fs::vfs::oflag;
use crate::machine::Machine;

const FALLOC_FL_KEEP_SIZE: u64 = 1;
const EISDIR: i64 = 21;
const EFBIG: i64 = 27;
const EOPNOTSUPP: i64 = 95;
/// The largest file offset (Linux's MAX_LFS_FILESIZE).
const MAX_FILE: u64 = i64::MAX as u64;

impl Sentry {
    pub(super) fn fallocate(
        &mut self,
        m: &mut Machine,
        pid: u32,
        fd: i64,
        mode: u64,
        offset: u64,
        len: u64,
    ) -> i64 {
        if (offset as i64) < 0 || (len as i64) <= 0 {
            return -EINVAL;
        }
        if mode & !FALLOC_FL_KEEP_SIZE != 0 {
            return -EOPNOTSUPP;
        }
        let d = match self.desc_of(pid, fd) {
            Ok(d) => d,
            Err(e) => return e,
        };
        let d = d.borrow();
        if d.flags & oflag::O_ACCMODE == oflag::O_RDONLY {
            return -EBADF;
        }
        let loc = match &d.object {
            Object::File(of) => of.loc,
            Object::Pipe(_) => return -ESPIPE,
            _ => return -ENODEV,
        };
        let attr = match m.files.vfs.getattr(loc) {
            Ok(a) => a,
            Err(e) => return fe(e),
        };
        match attr.kind {
            FileKind::File => {}
            FileKind::Dir => return -EISDIR,
            _ => return -ENODEV,
        }
        let Some(end) = offset.checked_add(len).filter(|&e| e <= MAX_FILE) else {
            return -EFBIG;
        };
        if mode & FALLOC_FL_KEEP_SIZE != 0 || end <= attr.size {
            return 0;
        }
        let set = SetAttr {
            size: Some(end),
            ..SetAttr::default()
        };
        m.files.vfs.setattr_at(loc, &set).map_or_else(fe, |_| 0)
    }
}
