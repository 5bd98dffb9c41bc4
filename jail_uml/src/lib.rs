//! jail_uml's logic: check the jail directory by descriptor, resolve the user, enter
//! the jail (chroot, drop groups, set ids, no_new_privs) and execute the UML, directly
//! or, with namespaces, as pid 1 of a new PID namespace under a supervisor.

pub mod cli;
mod sys;

use std::convert::Infallible;
use std::ffi::{CString, OsString};
use std::fmt;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, OFlag, AT_FDCWD};
use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::stat::{fstat, Mode};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{Gid, Pid, Uid, User};

/// The group the C tool gives a numeric uid that names no user.
pub const C_TOOL_GID: u32 = 99;

/// Why jail_uml refused or failed; each names what it is about.
#[derive(Debug)]
pub enum Error {
    NotRoot,
    /// USER is neither a user name nor a number.
    BadUser(String),
    /// Running the UML as root would confine nothing.
    RootUser(String),
    /// A component of JAIL-DIR could not be opened.
    Open(PathBuf, Errno),
    /// A component of JAIL-DIR is a symbolic link.
    Symlink(PathBuf),
    /// The jail is owned by someone other than root.
    NotRootOwned(PathBuf, u32),
    /// The jail is writable by group or others.
    Writable(PathBuf, u32),
    /// A step of entering the jail failed.
    Enter(&'static str, Errno),
    /// The UML program could not be executed.
    Exec(PathBuf, OsString, Errno),
    /// The command line holds a NUL byte.
    Nul,
    /// Supervising the namespaced UML failed.
    Supervise(&'static str, Errno),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotRoot => write!(f, "jail_uml must be run as root"),
            Error::BadUser(u) => write!(f, "{u}: no such user, and not a numeric uid"),
            Error::RootUser(u) => write!(f, "{u}: refusing to run the UML as root"),
            Error::Open(p, e) => write!(f, "{}: {}", p.display(), e.desc()),
            Error::Symlink(p) => write!(
                f,
                "{}: is a symbolic link (give the jail's real path)",
                p.display()
            ),
            Error::NotRootOwned(p, uid) => {
                write!(f, "{}: owned by uid {uid}, not root", p.display())
            }
            Error::Writable(p, mode) => write!(
                f,
                "{}: writable by group or others (mode {:04o}): refusing it as a jail",
                p.display(),
                mode & 0o7777
            ),
            Error::Enter(step, e) => write!(f, "{step}: {}", e.desc()),
            Error::Exec(jail, prog, e) => write!(
                f,
                "execve of {} in {} failed: {}",
                Path::new(prog).display(),
                jail.display(),
                e.desc()
            ),
            Error::Nul => write!(f, "the UML command line holds a NUL byte"),
            Error::Supervise(step, e) => write!(f, "{step}: {}", e.desc()),
        }
    }
}

impl std::error::Error for Error {}

/// Who the UML runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub uid: Uid,
    pub gid: Gid,
}

/// USER as a name, else as a numeric uid (the C tool's rule); uid 0 is refused.
pub fn resolve_user(spec: &str) -> Result<Identity, Error> {
    let lookup = |r: nix::Result<Option<User>>| r.ok().flatten();
    let who = if let Some(u) = lookup(User::from_name(spec)) {
        Identity {
            uid: u.uid,
            gid: u.gid,
        }
    } else if !spec.is_empty() && spec.bytes().all(|b| b.is_ascii_digit()) {
        let uid: u32 = spec.parse().map_err(|_| Error::BadUser(spec.to_owned()))?;
        let gid = lookup(User::from_uid(Uid::from_raw(uid)))
            .map(|u| u.gid)
            .unwrap_or(Gid::from_raw(C_TOOL_GID));
        Identity {
            uid: Uid::from_raw(uid),
            gid,
        }
    } else {
        return Err(Error::BadUser(spec.to_owned()));
    };
    if who.uid.is_root() {
        return Err(Error::RootUser(spec.to_owned()));
    }
    Ok(who)
}

/// Opens the jail directory by walking `path` one component at a time without following
/// symbolic links, and checks what it reached: a directory owned by root, writable by
/// nobody else. The descriptor returned is the checked directory.
pub fn open_jail(path: &Path) -> Result<OwnedFd, Error> {
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let start = if path.is_absolute() { "/" } else { "." };
    let mut dir = openat(AT_FDCWD, start, flags, Mode::empty())
        .map_err(|e| Error::Open(PathBuf::from(start), e))?;
    let mut walked = PathBuf::from(start);
    for c in path.components() {
        let name = match c {
            Component::RootDir | Component::CurDir => continue,
            Component::ParentDir => Path::new(".."),
            Component::Normal(n) => Path::new(n),
            Component::Prefix(_) => continue,
        };
        walked.push(name);
        dir = match openat(&dir, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOTDIR) | Err(Errno::ELOOP) => {
                let link =
                    nix::sys::stat::fstatat(&dir, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW);
                return Err(match link {
                    Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFLNK => Error::Symlink(walked),
                    _ => Error::Open(walked, Errno::ENOTDIR),
                });
            }
            Err(e) => return Err(Error::Open(walked, e)),
        };
    }
    let st = fstat(&dir).map_err(|e| Error::Open(path.to_owned(), e))?;
    if st.st_uid != 0 {
        return Err(Error::NotRootOwned(path.to_owned(), st.st_uid));
    }
    if st.st_mode & 0o022 != 0 {
        return Err(Error::Writable(path.to_owned(), st.st_mode));
    }
    Ok(dir)
}

/// Everything needed to start the UML, checked before anything changes.
pub struct Plan {
    pub jail: OwnedFd,
    pub jail_path: PathBuf,
    pub who: Identity,
    pub command: Vec<CString>,
    pub namespaces: bool,
}

impl Plan {
    /// Checks the arguments (in the C tool's order: root, user, then the jail).
    pub fn new(
        jail_path: &Path,
        user: &str,
        command: &[OsString],
        namespaces: bool,
    ) -> Result<Plan, Error> {
        if !nix::unistd::geteuid().is_root() {
            return Err(Error::NotRoot);
        }
        let who = resolve_user(user)?;
        let jail = open_jail(jail_path)?;
        let command = command
            .iter()
            .map(|a| CString::new(a.as_bytes()).map_err(|_| Error::Nul))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Plan {
            jail,
            jail_path: jail_path.to_owned(),
            who,
            command,
            namespaces,
        })
    }
}

/// The signals the supervisor passes on to the UML (and SIGCHLD, which it waits for).
fn supervised_signals() -> SigSet {
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGWINCH,
        Signal::SIGCHLD,
    ] {
        set.add(s);
    }
    set
}

/// Enters the jail and executes the UML: drop supplementary groups, chroot into the
/// checked directory, set gid then uid (all three of each), check that root cannot be
/// regained, set no_new_privs, exec. Returns only on failure.
pub fn enter_and_exec(plan: &Plan) -> Result<Infallible, Error> {
    let Identity { uid, gid } = plan.who.clone();
    nix::unistd::setgroups(&[]).map_err(|e| Error::Enter("setgroups", e))?;
    nix::unistd::fchdir(plan.jail.as_fd()).map_err(|e| Error::Enter("chdir", e))?;
    nix::unistd::chroot(".").map_err(|e| Error::Enter("chroot", e))?;
    nix::unistd::setresgid(gid, gid, gid).map_err(|e| Error::Enter("setgid", e))?;
    nix::unistd::setresuid(uid, uid, uid).map_err(|e| Error::Enter("setuid", e))?;
    if nix::unistd::setuid(Uid::from_raw(0)).is_ok() {
        return Err(Error::Enter("setuid", Errno::EPERM));
    }
    if plan.namespaces {
        // The supervisor's death takes the UML down (set after the id change, which
        // would clear it).
        nix::sys::prctl::set_pdeathsig(Signal::SIGTERM)
            .map_err(|e| Error::Enter("PR_SET_PDEATHSIG", e))?;
    }
    nix::sys::prctl::set_no_new_privs().map_err(|e| Error::Enter("no_new_privs", e))?;
    let program = &plan.command[0];
    match nix::unistd::execv(program, &plan.command) {
        Err(e) => Err(Error::Exec(
            plan.jail_path.clone(),
            OsString::from(std::ffi::OsStr::from_bytes(program.as_bytes())),
            e,
        )),
        Ok(never) => match never {},
    }
}

/// How the UML ended, as an exit status (128 + signal when killed).
fn exit_code(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, sig, _) => Some(128 + sig as i32),
        _ => None,
    }
}

/// Runs the plan: without namespaces, becomes the UML (returns only on failure); with
/// them, unshares, forks the UML as pid 1 of the new PID namespace and supervises it,
/// returning its exit status. `report` is called with the child's error, if any, before
/// it exits 1.
pub fn run(plan: &Plan, report: impl Fn(&Error)) -> Result<i32, Error> {
    if !plan.namespaces {
        return enter_and_exec(plan).map(|never| match never {});
    }
    use nix::sched::CloneFlags;
    nix::sched::unshare(
        CloneFlags::CLONE_NEWNS
            | CloneFlags::CLONE_NEWPID
            | CloneFlags::CLONE_NEWIPC
            | CloneFlags::CLONE_NEWUTS,
    )
    .map_err(|e| Error::Enter("unshare", e))?;
    // Mounts made in the jail stay in it.
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| Error::Enter("mount --make-rprivate /", e))?;
    let signals = supervised_signals();
    let mut old = SigSet::empty();
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&signals), Some(&mut old))
        .map_err(|e| Error::Supervise("sigprocmask", e))?;
    let child = match sys::fork().map_err(|e| Error::Supervise("fork", e))? {
        nix::unistd::ForkResult::Child => {
            let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
            let err = match enter_and_exec(plan) {
                Err(e) => e,
                Ok(never) => match never {},
            };
            report(&err);
            std::process::exit(1);
        }
        nix::unistd::ForkResult::Parent { child } => child,
    };
    supervise(child, &signals)
}

/// Passes every supervised signal on to `child` until it exits; returns its status.
fn supervise(child: Pid, signals: &SigSet) -> Result<i32, Error> {
    loop {
        let sig = signals.wait().map_err(|e| Error::Supervise("sigwait", e))?;
        if sig != Signal::SIGCHLD {
            let _ = kill(child, sig);
            continue;
        }
        loop {
            match waitpid(child, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => break,
                Ok(status) => {
                    if let Some(code) = exit_code(status) {
                        return Ok(code);
                    }
                }
                Err(Errno::EINTR) => {}
                Err(e) => return Err(Error::Supervise("waitpid", e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn users_by_name_or_number_never_root() {
        let nobody = resolve_user("nobody").unwrap();
        assert_eq!(nobody.uid.as_raw(), 65534);
        assert_eq!(resolve_user("54321").unwrap().gid.as_raw(), C_TOOL_GID);
        assert_eq!(resolve_user("65534").unwrap(), nobody);
        assert!(matches!(resolve_user("root"), Err(Error::RootUser(_))));
        assert!(matches!(resolve_user("0"), Err(Error::RootUser(_))));
        for bad in ["12abc", "", "-1", "no-such-user-x"] {
            assert!(matches!(resolve_user(bad), Err(Error::BadUser(_))), "{bad}");
        }
    }

    #[test]
    fn jails_must_be_real_directories_writable_only_by_their_owner() {
        let dir = tempfile::tempdir().unwrap();
        let jail = dir.path().join("jail");
        std::fs::create_dir(&jail).unwrap();
        std::fs::set_permissions(&jail, std::fs::Permissions::from_mode(0o755)).unwrap();
        let root = nix::unistd::geteuid().is_root();
        match open_jail(&jail) {
            Ok(_) => assert!(root),
            Err(e) => assert!(!root && matches!(e, Error::NotRootOwned(..)), "{e}"),
        }
        std::fs::set_permissions(&jail, std::fs::Permissions::from_mode(0o775)).unwrap();
        if root {
            let e = open_jail(&jail).unwrap_err();
            assert!(
                e.to_string()
                    .ends_with("writable by group or others (mode 0775): refusing it as a jail"),
                "{e}"
            );
        }
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&jail, &link).unwrap();
        assert!(matches!(open_jail(&link), Err(Error::Symlink(_))));
        assert!(matches!(open_jail(&link.join("x")), Err(Error::Symlink(_))));
        let e = open_jail(&dir.path().join("missing")).unwrap_err();
        assert!(
            e.to_string()
                .ends_with("missing: No such file or directory"),
            "{e}"
        );
    }
}
