//! Named pipes (mkfifo): opening a FIFO node of the VFS gives an end of the pipe kept
//! for that node, so every opener shares one buffer. As in Linux, an open for reading
//! waits until a writer opens and an open for writing waits until a reader does (the
//! waiting opener already holds its end, so the other side sees it and both go on);
//! O_NONBLOCK readers never wait, O_NONBLOCK writers without a reader get ENXIO, O_RDWR
//! never waits. Reads and writes are then those of any pipe end.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use super::fdtable::{desc, DescRef, Object, Pipe, PipeEnd};
use super::sentry::Sentry;
use crate::fs::vfs::{oflag, Loc};

/// The value an open that has to wait returns inside the sentry (ERESTARTSYS: never
/// seen by a guest); the dispatcher turns it into a wait.
pub const OPEN_WAITS: i64 = -512;

const O_NONBLOCK: u32 = 0o4000;
const ENXIO: i64 = 6;

/// The FIFOs opened so far and the openers waiting for the other side.
#[derive(Default)]
pub struct Fifos {
    pipes: HashMap<Loc, Rc<RefCell<Pipe>>>,
    /// A waiting opener's end, by guest pid.
    pending: HashMap<u32, (Loc, DescRef)>,
}

impl Sentry {
    /// Opens the FIFO at `loc` for `pid`: its description, or OPEN_WAITS.
    pub(super) fn open_fifo(&mut self, pid: u32, loc: Loc, flags: u32) -> Result<DescRef, i64> {
        // A waiting opener's own end from its earlier try.
        let mine = match self.fifos.pending.remove(&pid) {
            Some((l, d)) if l == loc => Some(d),
            _ => None,
        };
        // Ends of openers that are gone.
        let procs = &self.procs;
        self.fifos
            .pending
            .retain(|p, _| procs.get(p).is_some_and(|p| p.zombie.is_none()));
        let next_id = &mut self.next_pipe;
        let pipe = self
            .fifos
            .pipes
            .entry(loc)
            .or_insert_with(|| {
                *next_id += 1;
                Rc::new(RefCell::new(Pipe {
                    id: *next_id,
                    ..Pipe::default()
                }))
            })
            .clone();
        let access = flags & oflag::O_ACCMODE;
        let keep = flags & (oflag::O_ACCMODE | O_NONBLOCK);
        let d = match mine {
            Some(d) => d,
            None => {
                {
                    let mut p = pipe.borrow_mut();
                    if p.readers == 0 && p.writers == 0 {
                        p.buf.clear(); // nobody had it open: what was left is gone
                    }
                }
                let write = access == oflag::O_WRONLY;
                if write && flags & O_NONBLOCK != 0 && pipe.borrow().readers == 0 {
                    return Err(-ENXIO);
                }
                desc(Object::Pipe(PipeEnd::new(&pipe, write)), keep)
            }
        };
        let other_side = {
            let p = pipe.borrow();
            match access {
                oflag::O_WRONLY => p.readers > 0,
                oflag::O_RDONLY => p.writers > 0 || flags & O_NONBLOCK != 0,
                _ => true,
            }
        };
        if other_side {
            return Ok(d);
        }
        self.fifos.pending.insert(pid, (loc, d));
        Err(OPEN_WAITS)
    }
}
