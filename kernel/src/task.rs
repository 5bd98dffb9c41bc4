//! The guest's task table: the processes `ps`, `stack` and SysRq t show (init and a
//! shell per console with input), and the next free pid. A leaf module, so the devices
//! that start and end shells (`chan/`) and the machine can both hold it.

/// A guest process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub pid: u32,
    pub name: String,
    pub tty: String,
}

#[derive(Debug)]
pub struct Tasks {
    list: Vec<Task>,
    next_pid: u32,
}

impl Tasks {
    /// The table with init as pid 1.
    pub fn with_init() -> Tasks {
        Tasks {
            list: vec![Task {
                pid: 1,
                name: "init".into(),
                tty: "?".into(),
            }],
            next_pid: 2,
        }
    }

    /// A fresh pid.
    pub fn new_pid(&mut self) -> u32 {
        let pid = self.next_pid;
        self.next_pid += 1;
        pid
    }

    /// Adds a task unless its pid is listed already.
    pub fn add(&mut self, task: Task) {
        if !self.list.iter().any(|t| t.pid == task.pid) {
            self.list.push(task);
        }
    }

    pub fn remove(&mut self, pid: u32) {
        self.list.retain(|t| t.pid != pid);
    }

    pub fn find(&self, pid: u32) -> Option<&Task> {
        self.list.iter().find(|t| t.pid == pid)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Task> {
        self.list.iter()
    }

    /// The task list SysRq t and `ps` show.
    pub fn listing(&self) -> String {
        let mut out = String::from("  PID TTY      COMMAND\n");
        for t in &self.list {
            out.push_str(&format!("{:>5} {:<8} {}\n", t.pid, t.tty, t.name));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pids_are_fresh_and_tasks_listed_once() {
        let mut t = Tasks::with_init();
        let pid = t.new_pid();
        assert_eq!(pid, 2);
        let sh = Task {
            pid,
            name: "sh (con0)".into(),
            tty: "tty0".into(),
        };
        t.add(sh.clone());
        t.add(sh);
        assert_eq!(t.iter().count(), 2);
        assert!(
            t.listing().ends_with("    2 tty0     sh (con0)\n"),
            "{}",
            t.listing()
        );
        t.remove(2);
        assert!(t.find(2).is_none() && t.find(1).is_some());
    }
}
