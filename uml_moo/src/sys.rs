//! The calls uml_moo needs that nix does not wrap (sync_file_range) or that need an
//! `unsafe` block (fork).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// Starts writing `len` bytes of `file` from `offset` out to the disk without waiting
/// for it (`sync_file_range(SYNC_FILE_RANGE_WRITE)`); a later fdatasync then has less
/// to wait for.
pub fn start_writeback(file: &File, offset: u64, len: u64) -> io::Result<()> {
    // SAFETY: sync_file_range takes integers only and touches no memory of ours; the fd
    // is open for the duration of the call.
    let rc = unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            offset as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// What the child of [`fork_open_as`] does: become `uid`/`gid`/`groups`, open `path`.
pub struct OpenAs {
    pub uid: nix::unistd::Uid,
    pub gid: nix::unistd::Gid,
    pub groups: Vec<nix::unistd::Gid>,
    pub path: std::ffi::CString,
    pub flags: nix::fcntl::OFlag,
}

/// Forks a child that takes on `job`'s ids, opens its path and sends the descriptor over
/// `sock` (or, when a step fails, the errno as 4 bytes), then exits. Returns the child.
pub fn fork_open_as(
    job: &OpenAs,
    sock: std::os::fd::BorrowedFd<'_>,
) -> io::Result<nix::unistd::Pid> {
    // SAFETY: everything the child needs (ids, path, flags) was built before the fork;
    // the child makes only system calls (setgroups, setgid, setuid, open, sendmsg) and
    // leaves with _exit, running no destructors or atexit handlers, so state another
    // thread might have held in the parent is never touched. uml_moo is single-threaded
    // here (the progress bar's thread starts later).
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Parent { child } => Ok(child),
        nix::unistd::ForkResult::Child => {
            let sent = child_open(job, sock);
            // SAFETY: _exit ends the child at once; nothing of the parent's runs.
            unsafe { libc::_exit(i32::from(!sent)) }
        }
    }
}

fn child_open(job: &OpenAs, sock: std::os::fd::BorrowedFd<'_>) -> bool {
    use nix::unistd::{setgid, setgroups, setuid};
    use std::os::fd::AsFd;
    let opened = setgroups(&job.groups)
        .and_then(|()| setgid(job.gid))
        .and_then(|()| setuid(job.uid))
        .and_then(|()| {
            nix::fcntl::open(
                job.path.as_c_str(),
                job.flags,
                nix::sys::stat::Mode::empty(),
            )
        });
    match opened {
        Ok(fd) => uml_proto::fdpass::send_fd(sock, &[0; 4], fd.as_fd()).is_ok(),
        Err(e) => {
            let errno = (e as i32).to_ne_bytes();
            nix::sys::socket::send(
                sock.as_raw_fd(),
                &errno,
                nix::sys::socket::MsgFlags::empty(),
            )
            .is_ok()
        }
    }
}
