//! The kernel's one event loop: every device registers the host file descriptors it
//! wants to hear about, each under a token of the caller's choosing, and the loop
//! reports which tokens are ready. No threads: a device that has nothing to read is
//! simply not woken.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

/// The registered descriptors and their tokens.
#[derive(Debug)]
pub struct EventLoop<T: Copy + Eq> {
    sources: Vec<(RawFd, T)>,
}

impl<T: Copy + Eq> Default for EventLoop<T> {
    fn default() -> Self {
        EventLoop {
            sources: Vec::new(),
        }
    }
}

impl<T: Copy + Eq> EventLoop<T> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Wakes the loop with `token` whenever `fd` is readable, hung up or in error.
    /// The caller keeps owning the descriptor and must unregister it before closing.
    pub fn register(&mut self, fd: RawFd, token: T) {
        self.sources.push((fd, token));
    }

    /// Forgets every descriptor registered under `token`.
    pub fn unregister(&mut self, token: T) {
        self.sources.retain(|&(_, t)| t != token);
    }

    pub fn is_registered(&self, token: T) -> bool {
        self.sources.iter().any(|&(_, t)| t == token)
    }

    /// Waits until a registered descriptor accepted by `wanted` is ready, or the
    /// timeout passes (None: forever); returns the ready tokens in registration order.
    pub fn wait(
        &self,
        timeout: Option<Duration>,
        wanted: impl Fn(T) -> bool,
    ) -> io::Result<Vec<T>> {
        let chosen: Vec<(RawFd, T)> = self
            .sources
            .iter()
            .copied()
            .filter(|&(_, t)| wanted(t))
            .collect();
        let mut fds: Vec<libc::pollfd> = chosen
            .iter()
            .map(|&(fd, _)| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // ppoll, not poll: a timeout below a millisecond (a device retrying a full host
        // queue) must sleep that long, not round down to a busy loop.
        let ts = timeout.map(|d| libc::timespec {
            tv_sec: d.as_secs().min(i32::MAX as u64) as libc::time_t,
            tv_nsec: d.subsec_nanos() as libc::c_long,
        });
        let ts_ptr = ts
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        loop {
            // SAFETY: `fds` is a valid, exclusively borrowed array of `fds.len()` pollfd
            // structures, and `ts_ptr` is null or points at `ts`, alive for the whole
            // call; a null signal mask leaves the mask unchanged.
            let rc = unsafe {
                libc::ppoll(
                    fds.as_mut_ptr(),
                    fds.len() as libc::nfds_t,
                    ts_ptr,
                    std::ptr::null(),
                )
            };
            if rc >= 0 {
                break;
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
        Ok(fds
            .iter()
            .zip(&chosen)
            .filter(|(p, _)| p.revents != 0)
            .map(|(_, &(_, t))| t)
            .collect())
    }
}

/// A device's view of the loop: it registers under its own token type, which `wrap`
/// turns into the loop's, so devices need not know each other's tokens.
pub struct Scope<'a, T: Copy + Eq, U> {
    events: &'a mut EventLoop<T>,
    wrap: fn(U) -> T,
}

impl<T: Copy + Eq, U> Scope<'_, T, U> {
    pub fn register(&mut self, fd: RawFd, token: U) {
        self.events.register(fd, (self.wrap)(token));
    }

    pub fn unregister(&mut self, token: U) {
        self.events.unregister((self.wrap)(token));
    }
}

impl<T: Copy + Eq> EventLoop<T> {
    /// The loop as a device registering tokens of type `U` sees it.
    pub fn scope<U>(&mut self, wrap: fn(U) -> T) -> Scope<'_, T, U> {
        Scope { events: self, wrap }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn reports_only_ready_and_wanted_tokens() {
        let (mut a, b) = UnixStream::pair().unwrap();
        let (_c, d) = UnixStream::pair().unwrap();
        let mut ev = EventLoop::new();
        ev.register(b.as_raw_fd(), 1);
        ev.register(d.as_raw_fd(), 2);
        assert!(ev
            .wait(Some(Duration::from_millis(10)), |_| true)
            .unwrap()
            .is_empty());
        a.write_all(b"x").unwrap();
        assert_eq!(ev.wait(None, |_| true).unwrap(), vec![1]);
        assert!(ev
            .wait(Some(Duration::from_millis(10)), |t| t == 2)
            .unwrap()
            .is_empty());
        ev.unregister(1);
        assert!(!ev.is_registered(1));
        assert!(ev
            .wait(Some(Duration::from_millis(10)), |_| true)
            .unwrap()
            .is_empty());
    }
}
