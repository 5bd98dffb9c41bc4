//! Guest commands as the event loop runs them. A command line is handed to the init
//! program the kernel was booted with (the built-in shell, given by `main`, so nothing in
//! the kernel imports the shell); what it cannot answer at once (`ping`, `tcpsend`:
//! anything that waits) comes back as a job. The loop polls every job whenever anything
//! happened and at the latest at the job's deadline, and writes what it printed to the
//! console or TCP session that started it. Nothing waits inside a job.

use std::time::Instant;

use crate::machine::Machine;

/// What running one command line gave.
pub enum Run {
    /// Finished: everything it printed.
    Done(String),
    /// Still running: the loop drives it.
    Job(Box<dyn Job>),
}

/// What one poll of a job gave.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Text printed since the last poll.
    pub output: String,
    /// The job is over (its last output is in `output`).
    pub done: bool,
}

impl Progress {
    pub fn more(output: String) -> Progress {
        Progress {
            output,
            done: false,
        }
    }

    pub fn finished(output: String) -> Progress {
        Progress { output, done: true }
    }
}

/// A command that takes time, driven by the loop.
pub trait Job {
    /// Does what can be done now without waiting.
    fn poll(&mut self, m: &mut Machine) -> Progress;
    /// When the job next needs a poll even if nothing happens (None: only on events).
    fn deadline(&self) -> Option<Instant>;
    /// The job is dropped unfinished (SysRq e, its session closed): release what it holds.
    fn cancel(&mut self, m: &mut Machine);
}

/// Runs one command line of the guest's init program.
pub type Interpreter = fn(&str, &mut Machine) -> Run;
