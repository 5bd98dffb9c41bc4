//! getpriority and setpriority: each guest process's nice value, as the kernel keeps it
//! (it is not passed to the host: every guest runs at the kernel's priority). Only
//! PRIO_PROCESS names processes here; PRIO_PGRP and PRIO_USER act on the caller's
//! group and on every process (all guests are uid 0).

use super::abi::errno::*;
use super::sentry::Sentry;

const PRIO_PROCESS: u64 = 0;
const PRIO_PGRP: u64 = 1;
const PRIO_USER: u64 = 2;

impl Sentry {
    /// The processes `which`/`who` name; EINVAL for an unknown `which`.
    fn prio_targets(&self, pid: u32, which: u64, who: u64) -> Result<Vec<u32>, i64> {
        let who = who as u32;
        let me = self.procs.get(&pid).ok_or(-ESRCH)?;
        let live = self.procs.values().filter(|p| p.zombie.is_none());
        let found: Vec<u32> = match which {
            PRIO_PROCESS => {
                let target = if who == 0 { pid } else { who };
                live.filter(|p| p.pid == target).map(|p| p.pid).collect()
            }
            PRIO_PGRP => {
                let group = if who == 0 { me.pgid } else { who };
                live.filter(|p| p.pgid == group).map(|p| p.pid).collect()
            }
            PRIO_USER if who == 0 => live.map(|p| p.pid).collect(),
            PRIO_USER => Vec::new(),
            _ => return Err(-EINVAL),
        };
        if found.is_empty() {
            return Err(-ESRCH);
        }
        Ok(found)
    }

    /// getpriority: 20 - nice of the highest-priority target (the raw syscall's form).
    pub(super) fn getpriority(&self, pid: u32, which: u64, who: u64) -> i64 {
        match self.prio_targets(pid, which, who) {
            Ok(t) => {
                let best = t
                    .iter()
                    .filter_map(|p| self.procs.get(p))
                    .map(|p| p.nice)
                    .min()
                    .unwrap_or(0);
                20 - best as i64
            }
            Err(e) => e,
        }
    }

    /// setpriority: the nice value, clamped to -20..=19 (guest root may lower it).
    pub(super) fn setpriority(&mut self, pid: u32, which: u64, who: u64, prio: u64) -> i64 {
        let nice = (prio as i32).clamp(-20, 19);
        match self.prio_targets(pid, which, who) {
            Ok(t) => {
                for p in t {
                    if let Some(p) = self.procs.get_mut(&p) {
                        p.nice = nice;
                    }
                }
                0
            }
            Err(e) => e,
        }
    }
}
