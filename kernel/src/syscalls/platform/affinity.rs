//! Keeping a guest that is busy with syscalls on the tracer's CPU. Each trapped syscall
//! is two ptrace stops; when the guest runs on another CPU, every resume wakes that CPU
//! with an interrupt, and on a virtual machine whose other vCPU has gone idle (halted)
//! that alone costs 10-20 µs. The sentry pins a guest it resumes to the CPU its own
//! thread is on (the resume then wakes it locally, and the tracer yields to it), and
//! lets it go again (the kernel's own CPU set) when it did not stop again within the
//! sentry's spin window: a guest that computes is pinned for microseconds only, and
//! guests that compute in parallel still spread over the CPUs.

use std::collections::HashMap;

use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::unistd::Pid;

/// The guests pinned now, and to which CPU.
pub struct Affinity {
    /// The kernel's own CPU set (what a guest gets back).
    all: Option<CpuSet>,
    pinned: HashMap<Pid, usize>,
}

impl Affinity {
    pub fn new() -> Affinity {
        Affinity {
            all: sched_getaffinity(Pid::from_raw(0)).ok(),
            pinned: HashMap::new(),
        }
    }

    /// Pins `pid` to the CPU this thread runs on (nothing when it already is, or when
    /// the host cannot say).
    pub fn pin_here(&mut self, pid: Pid) {
        // SAFETY: sched_getcpu takes no argument; it reads the vDSO/rseq CPU number.
        let cpu = unsafe { libc::sched_getcpu() };
        let Ok(cpu) = usize::try_from(cpu) else {
            return;
        };
        if self.all.is_none() || self.pinned.get(&pid) == Some(&cpu) {
            return;
        }
        let mut set = CpuSet::new();
        if set.set(cpu).is_ok() && sched_setaffinity(pid, &set).is_ok() {
            self.pinned.insert(pid, cpu);
        }
    }

    /// A child forked by a pinned guest inherited its CPU.
    pub fn inherit(&mut self, parent: Pid, child: Pid) {
        if let Some(&cpu) = self.pinned.get(&parent) {
            self.pinned.insert(child, cpu);
        }
    }

    /// Gives every pinned guest the kernel's CPU set back.
    pub fn release_all(&mut self) {
        let Some(all) = self.all else {
            return;
        };
        for (pid, _) in self.pinned.drain() {
            let _ = sched_setaffinity(pid, &all);
        }
    }

    /// A guest that is gone.
    pub fn forget(&mut self, pid: Pid) {
        self.pinned.remove(&pid);
    }
}
