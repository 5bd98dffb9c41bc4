//! What a guest descriptor points at: open file descriptions (a VFS open file, a pipe
//! end, a tty or a socket) shared between descriptors after dup and fork, the pipes
//! themselves, and the per-process descriptor table.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use crate::fs::vfs::OpenFile;

/// Bytes a pipe holds before a writer waits (Linux's default 64 KiB).
pub const PIPE_CAPACITY: usize = 64 * 1024;
/// Most descriptors a process may hold (RLIMIT_NOFILE).
pub const MAX_FDS: usize = 1024;

/// A pipe's buffer and how many open descriptions read and write it.
#[derive(Debug, Default)]
pub struct Pipe {
    pub id: u64,
    pub buf: VecDeque<u8>,
    pub readers: usize,
    pub writers: usize,
}

/// One end of a pipe; its description's lifetime is the end's (counted in the pipe).
#[derive(Debug)]
pub struct PipeEnd {
    pub pipe: Rc<RefCell<Pipe>>,
    pub write: bool,
}

impl PipeEnd {
    pub fn new(pipe: &Rc<RefCell<Pipe>>, write: bool) -> PipeEnd {
        {
            let mut p = pipe.borrow_mut();
            if write {
                p.writers += 1;
            } else {
                p.readers += 1;
            }
        }
        PipeEnd {
            pipe: pipe.clone(),
            write,
        }
    }
}

impl Drop for PipeEnd {
    fn drop(&mut self) {
        let mut p = self.pipe.borrow_mut();
        if self.write {
            p.writers -= 1;
        } else {
            p.readers -= 1;
        }
    }
}

/// What an open file description is.
#[derive(Debug)]
pub enum Object {
    /// A file, directory or memory device of the VFS (the offset of a directory counts
    /// entries, for getdents64).
    File(OpenFile),
    Pipe(PipeEnd),
    /// A console or serial line's tty (its console slot: con0..con7, then ssl0..).
    Tty(usize),
    /// A socket (`socket`).
    Socket(Box<super::socket::Socket>),
    /// /dev/watchdog: the running uml_watchdog helper (stopped when dropped).
    Watchdog(super::harddog::Harddog),
}

/// An open file description.
#[derive(Debug)]
pub struct Desc {
    pub object: Object,
    /// O_NONBLOCK and O_APPEND as fcntl F_GETFL shows them, with the access mode.
    pub flags: u32,
}

pub type DescRef = Rc<RefCell<Desc>>;

pub fn desc(object: Object, flags: u32) -> DescRef {
    Rc::new(RefCell::new(Desc { object, flags }))
}

/// A descriptor: its description and close-on-exec.
#[derive(Debug, Clone)]
pub struct Fd {
    pub desc: DescRef,
    pub cloexec: bool,
}

/// A process's descriptors.
#[derive(Debug, Clone, Default)]
pub struct FdTable {
    slots: Vec<Option<Fd>>,
}

impl FdTable {
    pub fn get(&self, fd: i64) -> Option<&Fd> {
        usize::try_from(fd)
            .ok()
            .and_then(|i| self.slots.get(i)?.as_ref())
    }

    pub fn get_mut(&mut self, fd: i64) -> Option<&mut Fd> {
        usize::try_from(fd)
            .ok()
            .and_then(|i| self.slots.get_mut(i)?.as_mut())
    }

    /// Puts `entry` in the lowest free slot at or above `min`; None when full.
    pub fn insert_from(&mut self, min: usize, entry: Fd) -> Option<usize> {
        let free = (min..MAX_FDS).find(|&i| self.slots.get(i).is_none_or(Option::is_none))?;
        self.set(free, entry);
        Some(free)
    }

    pub fn insert(&mut self, entry: Fd) -> Option<usize> {
        self.insert_from(0, entry)
    }

    /// Puts `entry` at `fd`, returning what was there.
    pub fn set(&mut self, fd: usize, entry: Fd) -> Option<Fd> {
        if self.slots.len() <= fd {
            self.slots.resize(fd + 1, None);
        }
        self.slots[fd].replace(entry)
    }

    pub fn remove(&mut self, fd: i64) -> Option<Fd> {
        usize::try_from(fd)
            .ok()
            .and_then(|i| self.slots.get_mut(i)?.take())
    }

    /// Takes every descriptor (exit).
    pub fn take_all(&mut self) -> Vec<Fd> {
        std::mem::take(&mut self.slots)
            .into_iter()
            .flatten()
            .collect()
    }

    /// Takes the close-on-exec descriptors (execve).
    pub fn take_cloexec(&mut self) -> Vec<Fd> {
        self.slots
            .iter_mut()
            .filter(|s| s.as_ref().is_some_and(|f| f.cloexec))
            .filter_map(Option::take)
            .collect()
    }

    /// The open descriptor numbers.
    pub fn numbers(&self) -> Vec<usize> {
        (0..self.slots.len())
            .filter(|&i| self.slots[i].is_some())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipe_ends_count_and_uncount() {
        let pipe = Rc::new(RefCell::new(Pipe::default()));
        let r = PipeEnd::new(&pipe, false);
        let w = PipeEnd::new(&pipe, true);
        assert_eq!((pipe.borrow().readers, pipe.borrow().writers), (1, 1));
        drop(w);
        assert_eq!(pipe.borrow().writers, 0);
        drop(r);
        assert_eq!(pipe.borrow().readers, 0);
    }

    #[test]
    fn lowest_free_descriptor_and_cloexec() {
        let mut t = FdTable::default();
        let d = desc(Object::Tty(0), 2);
        let fd = |cloexec| Fd {
            desc: d.clone(),
            cloexec,
        };
        assert_eq!(t.insert(fd(false)), Some(0));
        assert_eq!(t.insert(fd(true)), Some(1));
        assert_eq!(t.insert_from(5, fd(false)), Some(5));
        assert_eq!(t.take_cloexec().len(), 1);
        assert_eq!(t.insert(fd(false)), Some(1));
        assert_eq!(t.numbers(), vec![0, 1, 5]);
    }
}
