//! Console and serial-line channels: `fd:N`, `null`, `none`, `pty`/`pts` and `tty:DEV`.
//! A line has an input end (registered with the event loop) and an output end. Host
//! terminals are put in raw mode while the kernel runs (restored when the line is
//! dropped) and the guest side does its own echo and newline translation, as the
//! kernel's tty layer does. `port:` lines get their terminal later, per connection
//! (`port.rs`).

pub mod consoles;
pub mod ldisc;
pub mod port;
pub mod xterm;

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use nix::sys::termios::{self, SetArg, Termios};

use crate::cmdline::{ChanSpec, LineSpec};

/// Which family a line belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Con,
    Ssl,
}

impl Family {
    pub fn prefix(self) -> &'static str {
        match self {
            Family::Con => "con",
            Family::Ssl => "ssl",
        }
    }
}

/// A descriptor the line reads or writes.
#[derive(Debug)]
enum End {
    /// Inherited from the host (`fd:N`): not ours to close.
    Borrowed(RawFd),
    /// Opened by us (`pty` master, `tty:DEV`).
    Owned(File),
    /// `null`: reads nothing, output discarded.
    Null,
}

impl End {
    fn fd(&self) -> Option<RawFd> {
        match self {
            End::Borrowed(fd) => Some(*fd),
            End::Owned(f) => Some(f.as_raw_fd()),
            End::Null => None,
        }
    }
}

/// An open line.
#[derive(Debug)]
pub struct Line {
    pub family: Family,
    pub index: usize,
    pub spec: LineSpec,
    input: End,
    output: End,
    /// Host device shown in the boot log (`/dev/pts/N`).
    pub device: Option<PathBuf>,
    /// The input is a terminal: echo typed characters and translate newlines.
    pub terminal: bool,
    /// Terminal settings to put back when the line goes away.
    saved: Vec<(RawFd, Termios)>,
    /// The pty slave we keep open so the master never sees a hang-up.
    _slave: Option<File>,
    /// `port:PORT`: the TCP port whose connections give this line its terminal.
    pub port: Option<u16>,
    /// `xterm`: a terminal emulator window gives this line its terminal.
    pub xterm: bool,
}

/// Why a line or one of its channels cannot be used; the text names the switch.
#[derive(Debug)]
pub enum ChanError {
    /// A channel of `line` (`con0`, `ssl1`) would not open.
    Open {
        line: String,
        spec: ChanSpec,
        source: io::Error,
    },
    /// A `port:` line's port cannot be listened on.
    Listen {
        line: String,
        port: u16,
        source: io::Error,
    },
}

impl std::fmt::Display for ChanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChanError::Open { line, spec, source } => write!(f, "{line}={spec}: {source}"),
            ChanError::Listen { line, port, source } => {
                write!(f, "{line}=port:{port}: cannot listen: {source}")
            }
        }
    }
}

impl std::error::Error for ChanError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ChanError::Open { source, .. } | ChanError::Listen { source, .. } => Some(source),
        }
    }
}

fn chan_error(line: &str, spec: &ChanSpec, source: io::Error) -> ChanError {
    ChanError::Open {
        line: line.to_owned(),
        spec: spec.clone(),
        source,
    }
}

fn borrow(fd: RawFd) -> BorrowedFd<'static> {
    // SAFETY: only used for the duration of a termios call on a descriptor the line
    // holds open (an inherited fd checked with fcntl, or a File we own).
    unsafe { BorrowedFd::borrow_raw(fd) }
}

fn fd_is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only reads the descriptor table entry.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

fn is_terminal(fd: RawFd) -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(fd) == 1 }
}

/// Puts a terminal in raw mode, returning the settings to restore.
fn make_raw(fd: RawFd) -> io::Result<Termios> {
    let saved = termios::tcgetattr(borrow(fd)).map_err(io::Error::from)?;
    let mut raw = saved.clone();
    termios::cfmakeraw(&mut raw);
    termios::tcsetattr(borrow(fd), SetArg::TCSANOW, &raw).map_err(io::Error::from)?;
    Ok(saved)
}

impl Line {
    /// Opens a line's channels; `None` when the line is `none`.
    pub fn open(family: Family, index: usize, spec: &LineSpec) -> Result<Option<Line>, ChanError> {
        if spec.is_none() {
            return Ok(None);
        }
        let name = format!("{}{index}", family.prefix());
        let mut line = Line {
            family,
            index,
            spec: spec.clone(),
            input: End::Null,
            output: End::Null,
            device: None,
            terminal: false,
            saved: Vec::new(),
            _slave: None,
            port: None,
            xterm: false,
        };
        if spec.input == ChanSpec::Pty || spec.output == ChanSpec::Pty {
            line.open_pty()
                .map_err(|e| chan_error(&name, &ChanSpec::Pty, e))?;
        }
        line.input = line
            .open_end(&spec.input)
            .map_err(|e| chan_error(&name, &spec.input, e))?;
        line.output = if spec.output == spec.input && matches!(spec.input, ChanSpec::Tty(_)) {
            match &line.input {
                End::Owned(f) => End::Owned(
                    f.try_clone()
                        .map_err(|e| chan_error(&name, &spec.output, e))?,
                ),
                _ => End::Null,
            }
        } else {
            line.open_end(&spec.output)
                .map_err(|e| chan_error(&name, &spec.output, e))?
        };
        if let Some(fd) = line.input.fd() {
            if is_terminal(fd) {
                line.terminal = true;
                if !matches!(spec.input, ChanSpec::Pty) {
                    let saved = make_raw(fd).map_err(|e| chan_error(&name, &spec.input, e))?;
                    line.saved.push((fd, saved));
                }
            }
        }
        Ok(Some(line))
    }

    fn open_pty(&mut self) -> io::Result<()> {
        use nix::fcntl::OFlag;
        let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
            .map_err(io::Error::from)?;
        nix::pty::grantpt(&master).map_err(io::Error::from)?;
        nix::pty::unlockpt(&master).map_err(io::Error::from)?;
        let path = PathBuf::from(nix::pty::ptsname_r(&master).map_err(io::Error::from)?);
        let slave = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
            .open(&path)?;
        let mut raw = termios::tcgetattr(&slave).map_err(io::Error::from)?;
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(&slave, SetArg::TCSANOW, &raw).map_err(io::Error::from)?;
        // SAFETY: into_raw_fd hands over sole ownership of the master descriptor.
        let master = unsafe { File::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(master)) };
        set_nonblocking(master.as_raw_fd())?;
        self.device = Some(path);
        self._slave = Some(slave);
        self.input = End::Owned(master);
        Ok(())
    }

    fn open_end(&mut self, spec: &ChanSpec) -> io::Result<End> {
        match spec {
            ChanSpec::Fd(n) => {
                if fd_is_open(*n) {
                    Ok(End::Borrowed(*n))
                } else {
                    Err(io::Error::from_raw_os_error(libc::EBADF))
                }
            }
            ChanSpec::Null | ChanSpec::None => Ok(End::Null),
            ChanSpec::Pty => match &self.input {
                End::Owned(master) if self.device.is_some() => Ok(End::Owned(master.try_clone()?)),
                _ => Err(io::Error::other("pty not open")),
            },
            ChanSpec::Tty(dev) => Ok(End::Owned(
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
                    .open(dev)?,
            )),
            ChanSpec::Port(p) => {
                self.port = Some(*p);
                Ok(End::Null)
            }
            ChanSpec::Xterm => {
                self.xterm = true;
                Ok(End::Null)
            }
        }
    }

    /// A `port:` line's terminal arrived: it becomes both ends, in raw mode.
    pub fn attach_terminal(&mut self, tty: File) -> io::Result<()> {
        if let Ok(mut raw) = termios::tcgetattr(&tty) {
            termios::cfmakeraw(&mut raw);
            let _ = termios::tcsetattr(&tty, SetArg::TCSANOW, &raw);
        }
        self.output = End::Owned(tty.try_clone()?);
        self.input = End::Owned(tty);
        self.terminal = true;
        Ok(())
    }

    /// A `port:` line's connection ended: back to waiting for the next one.
    pub fn detach_terminal(&mut self) {
        self.input = End::Null;
        self.output = End::Null;
    }

    pub fn name(&self) -> String {
        format!("{}{}", self.family.prefix(), self.index)
    }

    /// The descriptor to poll for input, if the line reads anything.
    pub fn input_fd(&self) -> Option<RawFd> {
        self.input.fd()
    }

    /// Reads what is waiting; Ok(empty) means end of input.
    pub fn read_input(&mut self) -> io::Result<Vec<u8>> {
        let mut buf = [0u8; 1024];
        let n = match &mut self.input {
            End::Owned(f) => f.read(&mut buf),
            End::Borrowed(fd) => {
                // SAFETY: reads into a stack buffer of the given length from an
                // inherited descriptor checked open at boot.
                let rc = unsafe { libc::read(*fd, buf.as_mut_ptr().cast(), buf.len()) };
                if rc < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(rc as usize)
                }
            }
            End::Null => Ok(0),
        };
        match n {
            Ok(n) => Ok(buf[..n].to_vec()),
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.kind() == io::ErrorKind::Interrupted =>
            {
                Err(e)
            }
            Err(e) if e.raw_os_error() == Some(libc::EIO) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Writes guest output; newlines become CR LF on terminals. Output that a full
    /// pty cannot take is dropped, as a serial line without a listener drops it.
    pub fn write_output(&mut self, text: &[u8]) {
        let translated;
        let bytes = if self.terminal {
            translated = crlf(text);
            &translated[..]
        } else {
            text
        };
        match &mut self.output {
            End::Owned(f) => {
                let _ = f.write_all(bytes);
            }
            End::Borrowed(fd) => {
                // SAFETY: `ManuallyDrop` keeps the borrowed descriptor open after the
                // temporary File is gone; the descriptor was checked open at boot.
                let mut f = std::mem::ManuallyDrop::new(unsafe { File::from_raw_fd(*fd) });
                let _ = f.write_all(bytes);
            }
            End::Null => {}
        }
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        for (fd, saved) in self.saved.drain(..) {
            let _ = termios::tcsetattr(borrow(fd), SetArg::TCSANOW, &saved);
        }
    }
}

fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_GETFL/F_SETFL on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// `\n` -> `\r\n` (a lone `\n` only; an existing `\r\n` is kept).
pub fn crlf(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 8);
    let mut prev = 0u8;
    for &b in text {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_translation() {
        assert_eq!(crlf(b"a\nb\r\nc"), b"a\r\nb\r\nc");
    }

    #[test]
    fn pty_line_announces_and_echoes_through() {
        let spec = LineSpec::both(ChanSpec::Pty);
        let mut line = Line::open(Family::Ssl, 1, &spec).unwrap().unwrap();
        let dev = line.device.clone().unwrap();
        assert!(dev.starts_with("/dev/pts"));
        let mut user = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&dev)
            .unwrap();
        user.write_all(b"hi\r").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert_eq!(line.read_input().unwrap(), b"hi\r");
        line.write_output(b"ok\n");
        let mut buf = [0u8; 16];
        let n = user.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"ok\r\n");
    }

    #[test]
    fn bad_fd_is_refused() {
        let spec = LineSpec::both(ChanSpec::Fd(987));
        let e = Line::open(Family::Con, 0, &spec).unwrap_err().to_string();
        assert!(e.starts_with("con0=fd:987: "), "{e}");
    }
}
