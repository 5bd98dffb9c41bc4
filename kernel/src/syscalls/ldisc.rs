//! The line discipline of the guests' ttys (one per console and serial line), as Linux's
//! N_TTY does it for what busybox uses: input translation (ICRNL, INLCR, IGNCR),
//! canonical mode with echo, erase, kill and word erase, ^D as end of file, the
//! signal characters (^C ^\ ^Z) when ISIG is on, non-canonical reads by VMIN/VTIME, and
//! output processing (OPOST|ONLCR). Pure state: the sentry's `tty` module feeds it typed
//! bytes, reads from it and sends the signals it reports.

use std::collections::VecDeque;
use std::time::Duration;

/// Offsets and bits of the kernel's `struct termios` (36 bytes on x86_64).
pub mod tc {
    pub const IFLAG: usize = 0;
    pub const OFLAG: usize = 4;
    pub const LFLAG: usize = 12;
    pub const CC: usize = 17;

    pub const VINTR: usize = 0;
    pub const VQUIT: usize = 1;
    pub const VERASE: usize = 2;
    pub const VKILL: usize = 3;
    pub const VEOF: usize = 4;
    pub const VTIME: usize = 5;
    pub const VMIN: usize = 6;
    pub const VSUSP: usize = 10;
    pub const VEOL: usize = 11;
    pub const VWERASE: usize = 14;

    pub const ISTRIP: u32 = 0o40;
    pub const INLCR: u32 = 0o100;
    pub const IGNCR: u32 = 0o200;
    pub const ICRNL: u32 = 0o400;
    pub const OPOST: u32 = 0o1;
    pub const ONLCR: u32 = 0o4;
    pub const ISIG: u32 = 0o1;
    pub const ICANON: u32 = 0o2;
    pub const ECHO: u32 = 0o10;
    pub const ECHOE: u32 = 0o20;
    pub const ECHOK: u32 = 0o40;
    pub const ECHONL: u32 = 0o100;
    pub const NOFLSH: u32 = 0o200;
    pub const ECHOCTL: u32 = 0o1000;
    pub const IEXTEN: u32 = 0o100000;
}

/// Bytes a tty holds unread (Linux's N_TTY buffer is 4 KiB); more typed is dropped.
pub const INPUT_MAX: usize = 4096;

/// A line discipline's state: termios, window size, typed input.
#[derive(Debug, Clone)]
pub struct Ldisc {
    pub termios: [u8; 36],
    pub winsize: [u8; 8],
    /// The line being edited (canonical mode).
    edit: Vec<u8>,
    /// What reads take: complete lines in canonical mode (an empty one is ^D on an
    /// empty line: end of file), plain bytes otherwise.
    ready: VecDeque<Vec<u8>>,
}

/// What typed input gave besides what reads take.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Typed {
    /// Echo, already output-processed, for the terminal.
    pub echo: Vec<u8>,
    /// Signals for the foreground process group (SIGINT, SIGQUIT, SIGTSTP), in order.
    pub signals: Vec<i32>,
}

/// What a read of the tty gets now.
#[derive(Debug, PartialEq, Eq)]
pub enum Read {
    Data(Vec<u8>),
    /// Wait for input; with VTIME, at most this long.
    Wait(Option<Duration>),
}

impl Default for Ldisc {
    fn default() -> Ldisc {
        let mut winsize = [0u8; 8];
        winsize[0..2].copy_from_slice(&24u16.to_ne_bytes());
        winsize[2..4].copy_from_slice(&80u16.to_ne_bytes());
        Ldisc {
            termios: super::abi::default_termios(),
            winsize,
            edit: Vec::new(),
            ready: VecDeque::new(),
        }
    }
}

impl Ldisc {
    fn flag(&self, at: usize) -> u32 {
        let t = &self.termios;
        u32::from_ne_bytes([t[at], t[at + 1], t[at + 2], t[at + 3]])
    }

    fn cc(&self, i: usize) -> u8 {
        self.termios[tc::CC + i]
    }

    fn lflag(&self, bit: u32) -> bool {
        self.flag(tc::LFLAG) & bit != 0
    }

    pub fn canonical(&self) -> bool {
        self.lflag(tc::ICANON)
    }

    /// Sets new termios (TCSETS*): leaving canonical mode hands the edited line to
    /// reads; `flush` (TCSETSF) drops unread input.
    pub fn set_termios(&mut self, t: &[u8], flush: bool) {
        self.termios.copy_from_slice(&t[..36]);
        if flush {
            self.flush();
        } else if !self.canonical() && !self.edit.is_empty() {
            self.ready.push_back(std::mem::take(&mut self.edit));
        }
    }

    /// Drops unread and half-typed input.
    pub fn flush(&mut self) {
        self.edit.clear();
        self.ready.clear();
    }

    /// Bytes a read could take now (FIONREAD).
    pub fn pending(&self) -> usize {
        self.ready.iter().map(Vec::len).sum()
    }

    /// Whether a read would not wait (poll's POLLIN).
    pub fn readable(&self) -> bool {
        match self.canonical() {
            true => !self.ready.is_empty(),
            false => self.pending() > 0,
        }
    }

    /// Output processing: with OPOST|ONLCR a newline goes out as CR LF.
    pub fn output(&self, data: &[u8]) -> Vec<u8> {
        let o = self.flag(tc::OFLAG);
        if o & tc::OPOST == 0 || o & tc::ONLCR == 0 {
            return data.to_vec();
        }
        let mut out = Vec::with_capacity(data.len() + 8);
        for &b in data {
            if b == b'\n' {
                out.push(b'\r');
            }
            out.push(b);
        }
        out
    }

    fn echo_char(&self, b: u8, out: &mut Vec<u8>) {
        if !self.lflag(tc::ECHO) {
            return;
        }
        if b < 0x20 && b != b'\n' && b != b'\t' && self.lflag(tc::ECHOCTL) {
            out.extend_from_slice(&[b'^', b + 0x40]);
        } else if b == 0x7f && self.lflag(tc::ECHOCTL) {
            out.extend_from_slice(b"^?");
        } else {
            out.extend(self.output(&[b]));
        }
    }

    /// Erases the last character of the line being edited (with its echo).
    fn erase_one(&mut self, out: &mut Vec<u8>) -> Option<u8> {
        let b = self.edit.pop()?;
        if self.lflag(tc::ECHO) && self.lflag(tc::ECHOE) {
            let width = if b < 0x20 && b != b'\t' && self.lflag(tc::ECHOCTL) {
                2
            } else {
                1
            };
            for _ in 0..width {
                out.extend_from_slice(b"\x08 \x08");
            }
        }
        Some(b)
    }

    /// Typed bytes: translated, edited, echoed; signal characters reported.
    pub fn input(&mut self, bytes: &[u8]) -> Typed {
        let mut t = Typed::default();
        let iflag = self.flag(tc::IFLAG);
        for &raw in bytes {
            let mut b = if iflag & tc::ISTRIP != 0 {
                raw & 0x7f
            } else {
                raw
            };
            if b == b'\r' {
                if iflag & tc::IGNCR != 0 {
                    continue;
                }
                if iflag & tc::ICRNL != 0 {
                    b = b'\n';
                }
            } else if b == b'\n' && iflag & tc::INLCR != 0 {
                b = b'\r';
            }
            if self.lflag(tc::ISIG) {
                let sig = match b {
                    _ if b == self.cc(tc::VINTR) && b != 0 => Some(libc::SIGINT),
                    _ if b == self.cc(tc::VQUIT) && b != 0 => Some(libc::SIGQUIT),
                    _ if b == self.cc(tc::VSUSP) && b != 0 => Some(libc::SIGTSTP),
                    _ => None,
                };
                if let Some(sig) = sig {
                    if !self.lflag(tc::NOFLSH) {
                        self.flush();
                    }
                    self.echo_char(b, &mut t.echo);
                    t.signals.push(sig);
                    continue;
                }
            }
            if !self.canonical() {
                if self.pending() < INPUT_MAX {
                    match self.ready.back_mut() {
                        Some(last) => last.push(b),
                        None => self.ready.push_back(vec![b]),
                    }
                    self.echo_char(b, &mut t.echo);
                }
                continue;
            }
            self.canonical_byte(b, &mut t.echo);
        }
        t
    }

    fn canonical_byte(&mut self, b: u8, echo: &mut Vec<u8>) {
        let iexten = self.lflag(tc::IEXTEN);
        if b == self.cc(tc::VERASE) && b != 0 {
            self.erase_one(echo);
        } else if b == self.cc(tc::VKILL) && b != 0 {
            while self.erase_one(echo).is_some() {}
            if !self.lflag(tc::ECHOE) && self.lflag(tc::ECHOK) && self.lflag(tc::ECHO) {
                echo.extend(self.output(b"\n"));
            }
        } else if b == self.cc(tc::VWERASE) && b != 0 && iexten {
            while self.edit.last().is_some_and(|c| c.is_ascii_whitespace()) {
                self.erase_one(echo);
            }
            while self.edit.last().is_some_and(|c| !c.is_ascii_whitespace()) {
                self.erase_one(echo);
            }
        } else if b == self.cc(tc::VEOF) && b != 0 {
            self.ready.push_back(std::mem::take(&mut self.edit));
        } else if b == b'\n' || (b == self.cc(tc::VEOL) && b != 0) {
            if self.lflag(tc::ECHO) || self.lflag(tc::ECHONL) {
                echo.extend(self.output(b"\n"));
            }
            let mut line = std::mem::take(&mut self.edit);
            line.push(b);
            self.ready.push_back(line);
        } else if self.edit.len() + self.pending() < INPUT_MAX - 1 {
            self.edit.push(b);
            self.echo_char(b, echo);
        }
    }

    /// A read of at most `max` bytes: a line (or what is left of it) in canonical mode,
    /// else by VMIN and VTIME. `timed_out`: the VTIME wait of this read is over.
    pub fn read(&mut self, max: usize, timed_out: bool) -> Read {
        if max == 0 {
            return Read::Data(Vec::new());
        }
        if self.canonical() {
            let Some(line) = self.ready.front_mut() else {
                return Read::Wait(None);
            };
            if line.len() <= max {
                return Read::Data(self.ready.pop_front().unwrap_or_default());
            }
            return Read::Data(line.drain(..max).collect());
        }
        let vmin = usize::from(self.cc(tc::VMIN));
        let vtime = self.cc(tc::VTIME);
        let have = self.pending();
        let enough = match (vmin, vtime) {
            (0, 0) => true,
            (0, _) => have > 0 || timed_out,
            (_, 0) => have >= vmin.min(max),
            _ => have > 0,
        };
        if !enough {
            let limit = (vmin == 0).then(|| Duration::from_millis(u64::from(vtime) * 100));
            return Read::Wait(limit);
        }
        let mut out = Vec::new();
        while out.len() < max {
            let Some(chunk) = self.ready.front_mut() else {
                break;
            };
            let n = chunk.len().min(max - out.len());
            out.extend(chunk.drain(..n));
            if chunk.is_empty() {
                self.ready.pop_front();
            }
        }
        Read::Data(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(l: &mut Ldisc, vmin: u8, vtime: u8) {
        let mut t = l.termios;
        let lflag = u32::from_ne_bytes([t[12], t[13], t[14], t[15]]) & !(tc::ICANON | tc::ECHO);
        t[12..16].copy_from_slice(&lflag.to_ne_bytes());
        t[tc::CC + tc::VMIN] = vmin;
        t[tc::CC + tc::VTIME] = vtime;
        l.set_termios(&t, false);
    }

    #[test]
    fn canonical_line_with_erase_kill_and_word_erase() {
        let mut l = Ldisc::default();
        let t = l.input(b"ecx\x7fho one two\x17three\r");
        assert_eq!(l.read(100, false), Read::Data(b"echo one three\n".to_vec()));
        assert!(t.echo.starts_with(b"ecx\x08 \x08ho"));
        assert!(t.echo.ends_with(b"three\r\n"));
        l.input(b"junk\x15ok\n");
        assert_eq!(l.read(100, false), Read::Data(b"ok\n".to_vec()));
        assert_eq!(l.read(100, false), Read::Wait(None));
    }

    #[test]
    fn eof_on_an_empty_line_reads_zero_bytes_and_ends_a_partial_one() {
        let mut l = Ldisc::default();
        l.input(b"ab\x04\x04");
        assert_eq!(l.read(100, false), Read::Data(b"ab".to_vec()));
        assert_eq!(l.read(100, false), Read::Data(Vec::new()));
    }

    #[test]
    fn signal_characters_flush_and_echo() {
        let mut l = Ldisc::default();
        let t = l.input(b"sleep\x03\x1a\x1c");
        assert_eq!(t.signals, vec![libc::SIGINT, libc::SIGTSTP, libc::SIGQUIT]);
        assert_eq!(t.echo, b"sleep^C^Z^\\");
        assert!(!l.readable());
    }

    #[test]
    fn raw_mode_by_vmin_and_vtime() {
        let mut l = Ldisc::default();
        raw(&mut l, 1, 0);
        assert_eq!(l.read(10, false), Read::Wait(None));
        let t = l.input(b"\x1b[A");
        assert!(t.echo.is_empty());
        assert_eq!(l.read(2, false), Read::Data(b"\x1b[".to_vec()));
        assert_eq!(l.read(10, false), Read::Data(b"A".to_vec()));
        raw(&mut l, 0, 5);
        assert_eq!(
            l.read(10, false),
            Read::Wait(Some(Duration::from_millis(500)))
        );
        assert_eq!(l.read(10, true), Read::Data(Vec::new()));
        raw(&mut l, 0, 0);
        assert_eq!(l.read(10, false), Read::Data(Vec::new()));
    }

    #[test]
    fn output_processing_follows_opost_onlcr() {
        let mut l = Ldisc::default();
        assert_eq!(l.output(b"a\nb"), b"a\r\nb");
        let mut t = l.termios;
        t[4..8].copy_from_slice(&0u32.to_ne_bytes());
        l.set_termios(&t, false);
        assert_eq!(l.output(b"a\nb"), b"a\nb");
    }
}
