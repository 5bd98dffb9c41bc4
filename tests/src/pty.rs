//! Running a program on a pseudo-terminal, for tests of interactive sessions: send
//! keystrokes, wait (bounded) for text to appear, collect the exit status.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::pty::{openpty, Winsize};

/// A child process whose stdin, stdout and stderr are one terminal.
pub struct PtySession {
    master: File,
    child: Child,
    /// Everything the terminal showed so far.
    pub seen: Vec<u8>,
    /// How much of `seen` earlier `expect` calls consumed.
    consumed: usize,
}

impl PtySession {
    /// Starts `cmd` in a new session with a 24x80 terminal as its controlling tty.
    pub fn spawn(cmd: &mut Command) -> PtySession {
        Self::spawn_sized(cmd, 24, 80)
    }

    /// Starts `cmd` in a new session with a `rows`x`cols` terminal as its controlling tty.
    pub fn spawn_sized(cmd: &mut Command, rows: u16, cols: u16) -> PtySession {
        let size = Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = openpty(Some(&size), None).expect("openpty");
        // The child must not hold the master too, or closing ours would not hang up.
        fcntl(&pty.master, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).expect("FD_CLOEXEC");
        let slave: OwnedFd = pty.slave;
        let stdio = |fd: &OwnedFd| Stdio::from(fd.try_clone().expect("dup pty slave"));
        cmd.stdin(stdio(&slave))
            .stdout(stdio(&slave))
            .stderr(stdio(&slave));
        // SAFETY: between fork and exec only async-signal-safe calls: setsid and ioctl
        // on the inherited terminal (fd 0) to make it the controlling tty.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn on pty");
        drop(slave);
        PtySession {
            master: File::from(pty.master),
            child,
            seen: Vec::new(),
            consumed: 0,
        }
    }

    /// Types `keys`.
    pub fn send(&mut self, keys: &[u8]) {
        self.master.write_all(keys).expect("write to pty");
    }

    /// Reads what is available within `wait`; false when the terminal closed.
    fn read_some(&mut self, wait: Duration) -> bool {
        let ms = u16::try_from(wait.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(self.master.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(n) if n > 0 => {}
            _ => return true,
        }
        let mut buf = [0u8; 4096];
        match self.master.read(&mut buf) {
            Ok(0) | Err(_) => false,
            Ok(k) => {
                self.seen.extend_from_slice(&buf[..k]);
                true
            }
        }
    }

    /// Waits at most `limit` for `text` to appear after what earlier calls consumed.
    pub fn expect(&mut self, text: &str, limit: Duration) -> bool {
        let start = Instant::now();
        loop {
            let hay = &self.seen[self.consumed..];
            if let Some(i) = hay.windows(text.len()).position(|w| w == text.as_bytes()) {
                self.consumed += i + text.len();
                return true;
            }
            if start.elapsed() > limit || !self.read_some(Duration::from_millis(50)) {
                return false;
            }
        }
    }

    /// Closes the terminal's master side, as a closed xterm or ssh session does: the
    /// session leader gets SIGHUP, reads and writes on the terminal fail from then on.
    pub fn hang_up(&mut self) {
        let null = File::open("/dev/null").expect("/dev/null");
        // dup2 onto the master's descriptor closes the master and leaves /dev/null in its
        // place (EOF on read), under the same number.
        let placeholder = null.try_clone().expect("dup /dev/null");
        let mut master = OwnedFd::from(std::mem::replace(&mut self.master, placeholder));
        nix::unistd::dup2(&null, &mut master).expect("dup2");
        self.master = File::from(master);
    }

    /// Everything shown so far, as text.
    pub fn screen(&self) -> String {
        String::from_utf8_lossy(&self.seen).into_owned()
    }

    /// Waits at most `limit` for the child to exit (killing it by pid on timeout),
    /// draining the terminal meanwhile.
    pub fn wait(&mut self, limit: Duration) -> (ExitStatus, bool) {
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                // Whatever the child wrote last is still in the terminal.
                loop {
                    let before = self.seen.len();
                    if !self.read_some(Duration::from_millis(20)) || self.seen.len() == before {
                        break;
                    }
                }
                return (s, false);
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                return (self.child.wait().expect("wait after kill"), true);
            }
            self.read_some(Duration::from_millis(20));
        }
    }
}

impl Drop for PtySession {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
