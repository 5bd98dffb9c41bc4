//! Pipe buffers are the kernel's (host) memory: a guest that fills every pipe it can open
//! (64 KiB each, 1024 descriptors, 256 processes) would hold gigabytes of it. As Linux
//! shrinks pipes to one page once a user passes pipe-user-pages-soft, the sentry lets a
//! pipe grow past one page only while all pipe buffers together stay under a quarter of
//! `mem=`; beyond, writers wait (or get EAGAIN) at one page per pipe.

use std::collections::HashSet;

use super::fdtable::{Object, PIPE_CAPACITY};
use super::sentry::Sentry;
use crate::machine::Machine;

/// What a pipe may always hold (one page).
pub const SMALL_PIPE: usize = 4096;

impl Sentry {
    /// The capacity a pipe holding `held` bytes gets for a write of `len` more.
    pub(super) fn pipe_capacity(&self, m: &Machine, held: usize, len: usize) -> usize {
        if held + len <= SMALL_PIPE {
            return PIPE_CAPACITY;
        }
        let budget = (m.config.mem / 4) as usize;
        // The pipe being written is borrowed by the caller: pipe_bytes cannot read it.
        if self.pipe_bytes() + held + len > budget {
            SMALL_PIPE
        } else {
            PIPE_CAPACITY
        }
    }

    /// Bytes in every guest pipe not borrowed right now (each counted once; a
    /// description in use is reached through its pipe's other end, if any).
    fn pipe_bytes(&self) -> usize {
        let mut seen = HashSet::new();
        let mut total = 0;
        for p in self.procs.values() {
            for n in p.fds.numbers() {
                let Some(fd) = p.fds.get(n as i64) else {
                    continue;
                };
                let Ok(d) = fd.desc.try_borrow() else {
                    continue;
                };
                if let Object::Pipe(end) = &d.object {
                    if seen.insert(std::rc::Rc::as_ptr(&end.pipe) as usize) {
                        total += end.pipe.try_borrow().map_or(0, |p| p.buf.len());
                    }
                }
            }
        }
        total
    }
}
