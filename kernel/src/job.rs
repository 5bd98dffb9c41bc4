//! Guest commands as the event loop runs them. A command line is handed to the init
//! program the kernel was booted with (the built-in shell, given by `main`, so nothing in
//! the kernel imports the shell); what it cannot answer at once (`ping`, `tcpsend`:
//! anything that waits) comes back as a job. The loop polls every job whenever anything
//! happened and at the latest at the job's deadline, and writes what it printed to the
//! console or TCP session that started it. Nothing waits inside a job.

use std::collections::VecDeque;
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
    /// A descriptor whose readiness should wake the loop for this job (a helper's
    /// answer), if any.
    fn fd(&self) -> Option<std::os::fd::RawFd> {
        None
    }
    /// The job is dropped unfinished (SysRq e, its session closed): release what it holds.
    fn cancel(&mut self, m: &mut Machine);
}

/// Runs one command line of the guest's init program.
pub type Interpreter = fn(&str, &mut Machine) -> Run;

/// Where a command's output goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    /// A console or serial line (its slot).
    Console(usize),
    /// A TCP shell session: device and socket.
    Session(usize, smoltcp::iface::SocketHandle),
}

/// A job and where its output goes.
struct Running {
    sink: Sink,
    job: Box<dyn Job>,
}

/// The running jobs, at most one per sink, and the lines typed on a sink while its
/// job runs, in order.
#[derive(Default)]
pub struct Jobs {
    running: Vec<Running>,
    queued: Vec<(Sink, VecDeque<String>)>,
}

impl Jobs {
    /// A job runs on `sink`.
    pub fn busy(&self, sink: Sink) -> bool {
        self.running.iter().any(|r| r.sink == sink)
    }

    /// The console slots whose command still runs (their input waits).
    pub fn busy_consoles(&self) -> Vec<usize> {
        self.running
            .iter()
            .filter_map(|r| match r.sink {
                Sink::Console(slot) => Some(slot),
                Sink::Session(..) => None,
            })
            .collect()
    }

    pub fn start(&mut self, sink: Sink, job: Box<dyn Job>) {
        self.running.push(Running { sink, job });
    }

    /// Keeps a line typed on a busy sink for later.
    pub fn queue(&mut self, sink: Sink, line: String) {
        match self.queued.iter_mut().find(|(s, _)| *s == sink) {
            Some((_, q)) => q.push_back(line),
            None => self.queued.push((sink, VecDeque::from([line]))),
        }
    }

    /// The next line queued on `sink`, if it is idle.
    pub fn next_line(&mut self, sink: Sink) -> Option<String> {
        if self.busy(sink) {
            return None;
        }
        let line = self
            .queued
            .iter_mut()
            .find(|(s, _)| *s == sink)
            .and_then(|(_, q)| q.pop_front());
        self.queued.retain(|(_, q)| !q.is_empty());
        line
    }

    /// Polls every job once: what each printed, and the sinks whose job finished
    /// (those jobs are gone).
    pub fn poll(&mut self, m: &mut Machine) -> Vec<(Sink, Progress)> {
        let mut out = Vec::new();
        self.running.retain_mut(|r| {
            let p = r.job.poll(m);
            let done = p.done;
            out.push((r.sink, p));
            !done
        });
        out
    }

    /// Drops the jobs and queued lines of every sink `gone` accepts.
    pub fn drop_where(&mut self, m: &mut Machine, gone: impl Fn(Sink) -> bool) {
        let (dropped, kept): (Vec<Running>, Vec<Running>) = std::mem::take(&mut self.running)
            .into_iter()
            .partition(|r| gone(r.sink));
        self.running = kept;
        for mut r in dropped {
            r.job.cancel(m);
        }
        self.queued.retain(|(s, _)| !gone(*s));
    }

    /// The descriptors the jobs wait on.
    pub fn fds(&self) -> Vec<std::os::fd::RawFd> {
        self.running.iter().filter_map(|r| r.job.fd()).collect()
    }

    /// The nearest deadline of any job.
    pub fn deadline(&self) -> Option<Instant> {
        self.running.iter().filter_map(|r| r.job.deadline()).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;

    fn machine() -> Machine {
        let boot = Instant::now();
        Machine {
            config: crate::cmdline::Config::default(),
            log: crate::klog::KernelLog::new(boot, true),
            disks: crate::block::Disks::new(None),
            boot,
            notify: None,
            tasks: crate::task::Tasks::with_init(),
            action: None,
            socket_path: "/nonexistent".into(),
            net: crate::net::Net::default(),
        }
    }

    /// Prints its poll count; done after `polls`; records a cancel.
    struct Counter {
        polls: u32,
        seen: u32,
        cancelled: Rc<Cell<bool>>,
    }

    impl Job for Counter {
        fn poll(&mut self, _: &mut Machine) -> Progress {
            self.seen += 1;
            let out = format!("{}\n", self.seen);
            if self.seen == self.polls {
                Progress::finished(out)
            } else {
                Progress::more(out)
            }
        }
        fn deadline(&self) -> Option<Instant> {
            None
        }
        fn cancel(&mut self, _: &mut Machine) {
            self.cancelled.set(true);
        }
    }

    fn counter(polls: u32) -> (Box<dyn Job>, Rc<Cell<bool>>) {
        let cancelled = Rc::new(Cell::new(false));
        let job = Counter {
            polls,
            seen: 0,
            cancelled: cancelled.clone(),
        };
        (Box::new(job), cancelled)
    }

    #[test]
    fn lines_wait_for_the_job_on_their_sink_and_run_in_order() {
        let mut m = machine();
        let mut jobs = Jobs::default();
        let con = Sink::Console(0);
        let (job, _) = counter(2);
        jobs.start(con, job);
        assert!(jobs.busy(con) && !jobs.busy(Sink::Console(1)));
        assert_eq!(jobs.busy_consoles(), vec![0]);
        jobs.queue(con, "a".into());
        jobs.queue(con, "b".into());
        assert_eq!(jobs.next_line(con), None, "busy sinks keep their lines");
        assert_eq!(jobs.poll(&mut m), vec![(con, Progress::more("1\n".into()))]);
        assert_eq!(
            jobs.poll(&mut m),
            vec![(con, Progress::finished("2\n".into()))]
        );
        assert!(!jobs.busy(con) && jobs.poll(&mut m).is_empty());
        assert_eq!(jobs.next_line(con).as_deref(), Some("a"));
        assert_eq!(jobs.next_line(con).as_deref(), Some("b"));
        assert_eq!(jobs.next_line(con), None);
    }

    #[test]
    fn dropping_a_sink_cancels_its_job_and_forgets_its_lines() {
        let mut m = machine();
        let mut jobs = Jobs::default();
        let (a, a_cancelled) = counter(5);
        let (b, b_cancelled) = counter(5);
        jobs.start(Sink::Console(0), a);
        jobs.start(Sink::Console(1), b);
        jobs.queue(Sink::Console(0), "later".into());
        jobs.drop_where(&mut m, |s| s == Sink::Console(0));
        assert!(a_cancelled.get() && !b_cancelled.get());
        assert!(!jobs.busy(Sink::Console(0)) && jobs.busy(Sink::Console(1)));
        assert_eq!(jobs.next_line(Sink::Console(0)), None);
        assert_eq!(jobs.deadline(), None);
    }
}
