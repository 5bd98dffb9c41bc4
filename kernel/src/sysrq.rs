//! The magic SysRq keys as mconsole `sysrq` runs them, and the task stack mconsole
//! `stack` shows: what each prints (also into the kernel log) and what the machine does
//! next. Reset (`b`) is answered before it happens, so the kernel sends that reply.

use crate::machine::{Action, Machine};
use crate::proc;

/// What a key did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The text to answer with (already logged).
    Text(String),
    /// Reset: answer at once with an empty OK, then reboot.
    Reset,
}

const HELP: &str = "sysrq: HELP : reboot(b) terminate-all-tasks(e) help(h) kill-all-tasks(i) show-memory-usage(m) poweroff(o) sync(s) show-task-states(t) unmount(u) \n";

/// Runs SysRq `key` (None or an unknown key: the help line).
pub fn run(key: Option<char>, m: &mut Machine) -> Outcome {
    let mut out = String::new();
    match key {
        Some('b') => {
            m.log.info("sysrq: Resetting");
            m.action = Some(Action::Reboot);
            return Outcome::Reset;
        }
        Some('o') => {
            out.push_str("sysrq: Power Off\n");
            m.action = Some(Action::Halt(0));
        }
        Some('s') => {
            out.push_str("sysrq: Emergency Sync\n");
            if m.sync_disks() {
                out.push_str("Emergency Sync complete\n");
            }
        }
        Some('u') => {
            out.push_str("sysrq: Emergency Remount R/O\n");
            m.sync_disks();
            out.push_str("Emergency Remount complete\n");
        }
        Some('m') => {
            out.push_str("sysrq: Show Memory\n");
            out.push_str(&proc::read(m, "meminfo").unwrap_or_default());
        }
        Some('t') => {
            out.push_str("sysrq: Show State\n");
            out.push_str(&m.tasks.listing());
        }
        Some('e') => {
            out.push_str("sysrq: Terminate All Tasks\n");
            m.action = Some(Action::KillTasks(libc::SIGTERM));
        }
        Some('i') => {
            out.push_str("sysrq: Kill All Tasks\n");
            m.action = Some(Action::KillTasks(libc::SIGKILL));
        }
        _ => out.push_str(HELP),
    }
    m.log.info(&out);
    Outcome::Text(out)
}

/// Why `stack` has nothing to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StackError {
    NoPid,
    NoSuchTask,
}

impl std::fmt::Display for StackError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StackError::NoPid => "Please specify a pid",
            StackError::NoSuchTask => "Couldn't find that pid",
        })
    }
}

impl std::error::Error for StackError {}

/// mconsole `stack PID`: the task's state and call trace (also logged).
pub fn stack(arg: &str, m: &mut Machine) -> Result<String, StackError> {
    let digits: String = arg.chars().take_while(|c| c.is_ascii_digit()).collect();
    let pid = digits.parse::<u32>().map_err(|_| StackError::NoPid)?;
    let task = m.tasks.find(pid).ok_or(StackError::NoSuchTask)?;
    let wait = if pid == 1 {
        "init_wait_children"
    } else {
        "shell_read_line"
    };
    let text = format!(
        "task:{:<15} state:S pid:{pid}\nCall Trace:\n <TASK>\n {wait}+0x1c/0x40\n event_loop_poll+0x4a/0x90\n kernel_main+0x120/0x200\n </TASK>\n",
        task.name
    );
    m.log.info(&text);
    Ok(text)
}
