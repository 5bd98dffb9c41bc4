//! The kernel log: every line the boot and the devices print, kept in a ring buffer
//! for `dmesg`, timestamped like printk, and queued for the console (con0).
//! `quiet` keeps informational lines off the console but still in the buffer.

use std::collections::VecDeque;
use std::time::Instant;

/// Bytes of log text kept for `dmesg` (older lines are dropped).
const RING_BYTES: usize = 64 * 1024;

/// How important a line is; warnings show on the console even when booted `quiet`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Err,
    Warning,
    Info,
    /// Only in the ring buffer (`dmesg`), never on the console.
    Debug,
}

#[derive(Debug)]
pub struct KernelLog {
    start: Instant,
    quiet: bool,
    ring: VecDeque<String>,
    ring_bytes: usize,
    /// Text waiting to be written to the console.
    console: Vec<u8>,
}

impl KernelLog {
    pub fn new(start: Instant, quiet: bool) -> KernelLog {
        KernelLog {
            start,
            quiet,
            ring: VecDeque::new(),
            ring_bytes: 0,
            console: Vec::new(),
        }
    }

    pub fn info(&mut self, text: impl AsRef<str>) {
        self.print(Level::Info, text.as_ref());
    }

    pub fn warn(&mut self, text: impl AsRef<str>) {
        self.print(Level::Warning, text.as_ref());
    }

    pub fn debug(&mut self, text: impl AsRef<str>) {
        self.print(Level::Debug, text.as_ref());
    }

    pub fn err(&mut self, text: impl AsRef<str>) {
        self.print(Level::Err, text.as_ref());
    }

    /// Logs each line of `text` at `level`.
    pub fn print(&mut self, level: Level, text: &str) {
        let t = self.start.elapsed();
        for line in text.lines() {
            let stamped = format!("[{:5}.{:06}] {}", t.as_secs(), t.subsec_micros(), line);
            if level <= Level::Warning || (!self.quiet && level == Level::Info) {
                self.console.extend_from_slice(line.as_bytes());
                self.console.push(b'\n');
            }
            self.ring_bytes += stamped.len() + 1;
            self.ring.push_back(stamped);
        }
        while self.ring_bytes > RING_BYTES {
            match self.ring.pop_front() {
                Some(old) => self.ring_bytes -= old.len() + 1,
                None => break,
            }
        }
    }

    /// The whole buffer as `dmesg` shows it.
    pub fn dmesg(&self) -> String {
        let mut out = String::with_capacity(self.ring_bytes);
        for line in &self.ring {
            out.push_str(line);
            out.push('\n');
        }
        out
    }

    /// Takes the text queued for the console.
    pub fn take_console(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.console)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_keeps_info_off_the_console_but_in_dmesg() {
        let mut log = KernelLog::new(Instant::now(), true);
        log.info("hello");
        log.warn("careful");
        assert_eq!(log.take_console(), b"careful\n");
        let d = log.dmesg();
        assert!(d.contains("] hello\n") && d.contains("] careful\n"), "{d}");
        assert!(log.take_console().is_empty());
    }

    #[test]
    fn ring_drops_oldest() {
        let mut log = KernelLog::new(Instant::now(), false);
        for i in 0..10_000 {
            log.info(format!("line {i}"));
        }
        let d = log.dmesg();
        assert!(d.len() <= RING_BYTES && d.contains("line 9999") && !d.contains("line 0\n"));
    }
}
