//! Where a running UML keeps its files: the uml_dir (`~/.uml/` or `uml_dir=`), one
//! directory per umid holding the `mconsole` socket and the `pid` file, and how the
//! tools find a UML by name (the C client's order: umid under ~/.uml, then under
//! /tmp/uml, then a path) and tell a live UML from one that left its files behind.
//!
//! The caller passes HOME in: this module never reads the environment.
//!
//! A kernel sharing a uml_dir with other users (`uml_dir=/tmp/uml`) claims, cleans and
//! removes its directory by descriptor ([`UmidFd`]): a symlink or a directory someone
//! else owns at the umid's name is refused, never followed, and files are removed with
//! unlinkat relative to the directory's descriptor.

use std::fmt;
use std::io;
use std::io::Read as _;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

/// The uml_dir under HOME when no `uml_dir=` is given.
pub const HOME_UML_DIR: &str = ".uml";
/// The second place the C client looks for a umid.
pub const TMP_UML_DIR: &str = "/tmp/uml";
/// The mconsole socket's name inside a umid directory.
pub const SOCKET_FILE: &str = "mconsole";
/// The pid file's name inside a umid directory.
pub const PID_FILE: &str = "pid";
/// Longest umid the kernel accepts (longer ones are ignored).
pub const MAX_UMID_LEN: usize = 63;

/// The default uml_dir for a user whose home is `home`.
pub fn default_uml_dir(home: &Path) -> PathBuf {
    home.join(HOME_UML_DIR)
}

/// True when the kernel would accept `umid` as a name.
pub fn valid_umid(umid: &str) -> bool {
    !umid.is_empty() && umid.len() <= MAX_UMID_LEN && !umid.contains('/')
}

/// One UML's directory: `<uml_dir>/<umid>/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UmidDir {
    pub dir: PathBuf,
}

/// Whether the UML that made a umid directory is still there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// The pid file names a running process.
    Running(i32),
    /// The pid file names a process that is gone (or is missing or unreadable while
    /// the directory exists): the kernel would clean it up and reuse it.
    Stale(Option<i32>),
    /// No such directory.
    Absent,
}

impl UmidDir {
    pub fn new(uml_dir: &Path, umid: &str) -> UmidDir {
        UmidDir {
            dir: uml_dir.join(umid),
        }
    }

    /// The directory holding a mconsole socket.
    pub fn of_socket(socket: &Path) -> UmidDir {
        UmidDir {
            dir: crate::fsutil::parent_dir(socket).to_owned(),
        }
    }

    pub fn mconsole(&self) -> PathBuf {
        self.dir.join(SOCKET_FILE)
    }

    pub fn pid_file(&self) -> PathBuf {
        self.dir.join(PID_FILE)
    }

    /// The pid the kernel wrote at boot.
    pub fn read_pid(&self) -> io::Result<i32> {
        let path = self.pid_file();
        let bytes = std::fs::read(&path)?;
        parse_pid(&bytes).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: not a process id", path.display()),
            )
        })
    }

    /// The kernel's own check: is the process in the pid file alive?
    pub fn liveness(&self) -> Liveness {
        if !self.dir.is_dir() {
            return Liveness::Absent;
        }
        match self.read_pid() {
            Ok(pid) if pid_alive(pid) => Liveness::Running(pid),
            Ok(pid) => Liveness::Stale(Some(pid)),
            Err(_) => Liveness::Stale(None),
        }
    }
}

/// Why a umid directory cannot be claimed safely.
#[derive(Debug)]
pub enum UmidError {
    /// The umid's name is a symbolic link (perhaps planted by another user).
    Symlink(PathBuf),
    /// Something other than a directory is there.
    NotADirectory(PathBuf),
    /// The directory belongs to another user.
    NotOurs {
        path: PathBuf,
        uid: u32,
    },
    Io {
        path: PathBuf,
        source: io::Error,
    },
}

impl fmt::Display for UmidError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UmidError::Symlink(p) => write!(
                f,
                "{}: the umid directory is a symbolic link: refused",
                p.display()
            ),
            UmidError::NotADirectory(p) => {
                write!(f, "{}: not a directory: refused", p.display())
            }
            UmidError::NotOurs { path, uid } => write!(
                f,
                "{}: the umid directory belongs to uid {uid}: refused",
                path.display()
            ),
            UmidError::Io { path, source } => write!(f, "{}: {source}", path.display()),
        }
    }
}

impl std::error::Error for UmidError {}

/// A umid directory held by descriptor, with the uml_dir it is in.
#[derive(Debug)]
pub struct UmidFd {
    pub parent: OwnedFd,
    pub dir: OwnedFd,
    pub name: String,
    /// `<uml_dir>/<umid>`, for messages and for the socket path.
    pub path: PathBuf,
}

fn io_at(path: &Path) -> impl Fn(nix::Error) -> UmidError + '_ {
    move |e| UmidError::Io {
        path: path.to_owned(),
        source: e.into(),
    }
}

/// Opens the uml_dir itself (following symlinks: it is the caller's choice).
pub fn open_uml_dir(uml_dir: &Path) -> Result<OwnedFd, UmidError> {
    use nix::fcntl::{open, OFlag};
    open(
        uml_dir,
        OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(io_at(uml_dir))
}

impl UmidFd {
    /// Opens `<parent>/<name>` if it is a directory of ours: None if nothing is there;
    /// refused when it is a symlink, not a directory, or another user's.
    pub fn open(parent: OwnedFd, uml_dir: &Path, name: &str) -> Result<Option<UmidFd>, UmidError> {
        use nix::fcntl::{openat, AtFlags, OFlag};
        use nix::sys::stat::{fstat, fstatat, Mode, SFlag};
        let path = uml_dir.join(name);
        let st = match fstatat(&parent, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(nix::errno::Errno::ENOENT) => return Ok(None),
            Err(e) => return Err(io_at(&path)(e)),
        };
        let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
        if kind == SFlag::S_IFLNK {
            return Err(UmidError::Symlink(path));
        }
        if kind != SFlag::S_IFDIR {
            return Err(UmidError::NotADirectory(path));
        }
        let dir = openat(
            &parent,
            name,
            OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            nix::errno::Errno::ELOOP => UmidError::Symlink(path.clone()),
            nix::errno::Errno::ENOTDIR => UmidError::NotADirectory(path.clone()),
            e => io_at(&path)(e),
        })?;
        let st = fstat(&dir).map_err(io_at(&path))?;
        let me = nix::unistd::geteuid().as_raw();
        if st.st_uid != me {
            return Err(UmidError::NotOurs {
                path,
                uid: st.st_uid,
            });
        }
        Ok(Some(UmidFd {
            parent,
            dir,
            name: name.to_owned(),
            path,
        }))
    }

    /// Makes `<parent>/<name>` (mode 0777 less the umask) and opens it. Fails with
    /// EEXIST (as `UmidError::Io`) when something is there already.
    pub fn create(parent: OwnedFd, uml_dir: &Path, name: &str) -> Result<UmidFd, UmidError> {
        use nix::sys::stat::{mkdirat, Mode};
        let path = uml_dir.join(name);
        mkdirat(&parent, name, Mode::from_bits_truncate(0o777)).map_err(io_at(&path))?;
        UmidFd::open(parent, uml_dir, name)?.ok_or_else(|| UmidError::Io {
            path,
            source: io::ErrorKind::NotFound.into(),
        })
    }

    /// The pid in the directory's pid file (not following a symlink there).
    pub fn read_pid(&self) -> io::Result<i32> {
        use nix::fcntl::{openat, OFlag};
        let fd = openat(
            &self.dir,
            PID_FILE,
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK,
            nix::sys::stat::Mode::empty(),
        )?;
        let mut bytes = Vec::new();
        io::Read::read_to_end(&mut std::fs::File::from(fd).take(64), &mut bytes)?;
        parse_pid(&bytes).ok_or_else(|| io::Error::from(io::ErrorKind::InvalidData))
    }

    /// As [`UmidDir::liveness`], through the descriptor.
    pub fn liveness(&self) -> Liveness {
        match self.read_pid() {
            Ok(pid) if pid_alive(pid) => Liveness::Running(pid),
            Ok(pid) => Liveness::Stale(Some(pid)),
            Err(_) => Liveness::Stale(None),
        }
    }

    /// Creates a new file in the directory (O_EXCL|O_NOFOLLOW) with `mode`.
    pub fn create_file(&self, name: &str, mode: u32) -> io::Result<std::fs::File> {
        use nix::fcntl::{openat, OFlag};
        let fd = openat(
            &self.dir,
            name,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::from_bits_truncate(mode),
        )?;
        Ok(std::fs::File::from(fd))
    }

    /// Unlinks every entry but subdirectories, relative to the directory's descriptor
    /// (a symlink inside is removed itself, never its target).
    pub fn clean(&self) -> io::Result<()> {
        use nix::dir::{Dir, Type};
        use nix::unistd::{unlinkat, UnlinkatFlags};
        let mut dir = Dir::from_fd(self.dir.try_clone()?)?;
        let names: Vec<std::ffi::CString> = dir
            .iter()
            .flatten()
            .filter(|e| e.file_type() != Some(Type::Directory))
            .map(|e| e.file_name().to_owned())
            .collect();
        for n in names {
            match unlinkat(&self.dir, n.as_c_str(), UnlinkatFlags::NoRemoveDir) {
                Ok(()) | Err(nix::errno::Errno::ENOENT) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Cleans the directory and removes it from the uml_dir, if the name there is
    /// still this directory.
    pub fn remove(&self) -> io::Result<()> {
        use nix::fcntl::AtFlags;
        use nix::sys::stat::{fstat, fstatat};
        use nix::unistd::{unlinkat, UnlinkatFlags};
        self.clean()?;
        let ours = fstat(&self.dir)?;
        let there = fstatat(
            &self.parent,
            self.name.as_str(),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )?;
        if (there.st_dev, there.st_ino) == (ours.st_dev, ours.st_ino) {
            unlinkat(&self.parent, self.name.as_str(), UnlinkatFlags::RemoveDir)?;
        }
        Ok(())
    }
}

/// A pid file's content: decimal digits, optional surrounding whitespace.
pub fn parse_pid(bytes: &[u8]) -> Option<i32> {
    let text = std::str::from_utf8(bytes).ok()?.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok().filter(|&p: &i32| p > 0)
}

/// `kill(pid, 0)`: the process exists (EPERM counts: it exists, it is not ours).
pub fn pid_alive(pid: i32) -> bool {
    use nix::errno::Errno;
    use nix::sys::signal::kill;
    use nix::unistd::Pid;
    !matches!(kill(Pid::from_raw(pid), None), Err(Errno::ESRCH))
}

/// What is at a mconsole socket path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketState {
    /// A socket with a process bound to it.
    Listening,
    /// A socket file nobody is bound to (the UML died without cleaning up).
    Stale,
    /// Nothing there.
    Missing,
    /// Something that is not a socket.
    NotASocket,
}

/// Looks at `path` without sending anything: a datagram `connect` succeeds only when
/// a process is bound there.
pub fn probe_socket(path: &Path) -> io::Result<SocketState> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(SocketState::Missing),
        Err(e) => return Err(e),
        Ok(m) if !m.file_type().is_socket() => return Ok(SocketState::NotASocket),
        Ok(_) => {}
    }
    let probe = UnixDatagram::unbound()?;
    match probe.connect(path) {
        Ok(()) => Ok(SocketState::Listening),
        Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => Ok(SocketState::Stale),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(SocketState::Missing),
        Err(e) => Err(e),
    }
}

/// Where a candidate socket path came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `<uml_dir>/<name>/mconsole` for an explicit uml_dir.
    UmlDir,
    /// `$HOME/.uml/<name>/mconsole`.
    HomeUml,
    /// `/tmp/uml/<name>/mconsole`.
    TmpUml,
    /// The name itself, as a path (a socket or a umid directory).
    Path,
}

/// A socket path to try for a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub socket: PathBuf,
    pub origin: Origin,
}

impl Candidate {
    /// The umid directory holding this socket (and its pid file).
    pub fn umid_dir(&self) -> UmidDir {
        UmidDir::of_socket(&self.socket)
    }
}

fn under(name: &str, dir: &Path) -> bool {
    name.starts_with(dir.to_string_lossy().as_ref())
}

/// The places to look for `name`, in order: an explicit uml_dir first, then (as the
/// C client) `$HOME/.uml/NAME/mconsole` unless the name already starts with that
/// directory, `/tmp/uml/NAME/mconsole` unless it starts with `/tmp/uml/`, then the
/// name as a path.
pub fn candidates(name: &str, home: Option<&Path>, uml_dir: Option<&Path>) -> Vec<Candidate> {
    let mut out = Vec::new();
    let mut umid_in = |dir: &Path, origin: Origin| {
        if !name.is_empty() && !under(name, dir) {
            out.push(Candidate {
                socket: UmidDir::new(dir, name).mconsole(),
                origin,
            });
        }
    };
    if let Some(d) = uml_dir {
        umid_in(d, Origin::UmlDir);
    }
    if let Some(h) = home {
        umid_in(&default_uml_dir(h), Origin::HomeUml);
    }
    if !name.starts_with("/tmp/uml/") {
        umid_in(Path::new(TMP_UML_DIR), Origin::TmpUml);
    }
    if !name.is_empty() {
        out.push(Candidate {
            socket: PathBuf::from(name),
            origin: Origin::Path,
        });
    }
    out
}

/// No candidate for a name exists; each tried path with why it failed.
#[derive(Debug)]
pub struct ResolveError {
    pub name: String,
    pub tried: Vec<(PathBuf, io::Error)>,
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no UML named '{}' (tried ", self.name)?;
        for (i, (p, _)) in self.tried.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{}", p.display())?;
        }
        write!(f, ")")
    }
}

impl std::error::Error for ResolveError {}

/// The first candidate that exists. A name that is a umid directory resolves to the
/// socket inside it.
pub fn resolve(
    name: &str,
    home: Option<&Path>,
    uml_dir: Option<&Path>,
) -> Result<Candidate, ResolveError> {
    let mut tried = Vec::new();
    for mut c in candidates(name, home, uml_dir) {
        if c.origin == Origin::Path && c.socket.is_dir() {
            c.socket = c.socket.join(SOCKET_FILE);
        }
        match std::fs::metadata(&c.socket) {
            Ok(_) => return Ok(c),
            Err(e) => tried.push((c.socket, e)),
        }
    }
    Err(ResolveError {
        name: name.to_owned(),
        tried,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_follow_the_c_client_order() {
        let home = Path::new("/home/u");
        let c = candidates("debian", Some(home), None);
        let paths: Vec<_> = c.iter().map(|c| c.socket.clone()).collect();
        assert_eq!(
            paths,
            vec![
                PathBuf::from("/home/u/.uml/debian/mconsole"),
                PathBuf::from("/tmp/uml/debian/mconsole"),
                PathBuf::from("debian"),
            ]
        );
        let with_dir = candidates("d", Some(home), Some(Path::new("/srv/umls")));
        assert_eq!(with_dir[0].socket, PathBuf::from("/srv/umls/d/mconsole"));
        assert_eq!(with_dir.len(), 4);
    }

    #[test]
    fn full_paths_skip_the_directories_they_already_name() {
        let home = Path::new("/home/u");
        let c = candidates("/home/u/.uml/x/mconsole", Some(home), None);
        assert_eq!(c[0].origin, Origin::TmpUml);
        let t = candidates("/tmp/uml/x/mconsole", None, None);
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].origin, Origin::Path);
    }

    #[test]
    fn resolve_finds_a_umid_a_path_and_a_directory() {
        let home = tempfile::tempdir().unwrap();
        let dir = UmidDir::new(&default_uml_dir(home.path()), "vm1");
        std::fs::create_dir_all(&dir.dir).unwrap();
        let _sock = UnixDatagram::bind(dir.mconsole()).unwrap();
        let by_name = resolve("vm1", Some(home.path()), None).unwrap();
        assert_eq!(
            (by_name.socket.clone(), by_name.origin),
            (dir.mconsole(), Origin::HomeUml)
        );
        let full = dir.mconsole().to_string_lossy().into_owned();
        assert_eq!(
            resolve(&full, Some(home.path()), None).unwrap().socket,
            dir.mconsole()
        );
        let d = dir.dir.to_string_lossy().into_owned();
        assert_eq!(resolve(&d, None, None).unwrap().socket, dir.mconsole());
        let e = resolve("nope-xyz", Some(home.path()), None).unwrap_err();
        assert_eq!(e.tried.len(), 3);
        assert!(e.to_string().contains("no UML named 'nope-xyz'"));
    }

    #[test]
    fn pid_files_and_liveness() {
        assert_eq!(parse_pid(b"1234\n"), Some(1234));
        assert_eq!(parse_pid(b"12a"), None);
        assert_eq!(parse_pid(b""), None);
        assert_eq!(parse_pid(b"0\n"), None);
        let root = tempfile::tempdir().unwrap();
        let d = UmidDir::new(root.path(), "u");
        assert_eq!(d.liveness(), Liveness::Absent);
        std::fs::create_dir(&d.dir).unwrap();
        assert_eq!(d.liveness(), Liveness::Stale(None));
        std::fs::write(d.pid_file(), format!("{}\n", std::process::id())).unwrap();
        assert_eq!(d.liveness(), Liveness::Running(std::process::id() as i32));
        // A child that has exited and been reaped is gone.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let gone = child.id() as i32;
        child.wait().unwrap();
        std::fs::write(d.pid_file(), format!("{gone}\n")).unwrap();
        assert_eq!(d.liveness(), Liveness::Stale(Some(gone)));
    }

    #[test]
    fn probe_tells_live_stale_and_missing_sockets_apart() {
        let root = tempfile::tempdir().unwrap();
        let live = root.path().join("live");
        let _l = UnixDatagram::bind(&live).unwrap();
        assert_eq!(probe_socket(&live).unwrap(), SocketState::Listening);
        let stale = root.path().join("stale");
        drop(UnixDatagram::bind(&stale).unwrap());
        assert_eq!(probe_socket(&stale).unwrap(), SocketState::Stale);
        assert_eq!(
            probe_socket(&root.path().join("none")).unwrap(),
            SocketState::Missing
        );
        let file = root.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        assert_eq!(probe_socket(&file).unwrap(), SocketState::NotASocket);
        assert!(valid_umid("debian") && !valid_umid("") && !valid_umid("a/b"));
    }
}
