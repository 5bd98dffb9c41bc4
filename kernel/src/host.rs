//! The kernel's files on the host: the uml_dir, the umid directory with its pid file,
//! as linux.uml lays them out (reference mconsole.md §7). A stale directory left by a
//! dead kernel is cleaned and reused; one whose kernel still runs is refused. The
//! directory is removed when the [`UmidHome`] is dropped (halt, reboot, signals, boot
//! errors), unless the kernel panicked.
//!
//! A uml_dir may be shared with other users (`uml_dir=/tmp/uml`): the umid directory is
//! claimed, cleaned and removed by descriptor (uml_proto's `UmidFd`), so a symlink or
//! another user's directory planted at the umid's name is refused, never followed.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use uml_proto::umid::{open_uml_dir, Liveness, UmidDir, UmidError, UmidFd};

/// Length of a random umid, as linux.uml makes them.
const RANDOM_UMID_LEN: usize = 6;

/// The umid directory this kernel owns.
#[derive(Debug)]
pub struct UmidHome {
    pub umid: String,
    pub dir: UmidDir,
    fd: UmidFd,
    /// Leave the directory behind on drop (a panic does, as in linux.uml).
    pub keep: bool,
}

/// Where the umid directories live: `uml_dir=` (a `/` appended when missing) or
/// `$HOME/.uml/`.
pub fn uml_dir(uml_dir: Option<&Path>, home: Option<&Path>) -> Result<PathBuf, String> {
    match (uml_dir, home) {
        (Some(d), _) => Ok(d.to_path_buf()),
        (None, Some(h)) if !h.as_os_str().is_empty() => Ok(uml_proto::umid::default_uml_dir(h)),
        _ => Err("no value in environment for $HOME and no uml_dir= given".into()),
    }
}

impl UmidHome {
    /// Makes `<uml_dir>/<umid>/` with the pid file; a random umid when none is given.
    pub fn create(uml_dir: &Path, umid: Option<&str>) -> Result<UmidHome, String> {
        match fs::DirBuilder::new().mode(0o777).create(uml_dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(format!("uml_dir={}: cannot create: {e}", uml_dir.display())),
        }
        let (umid, fd) = match umid {
            Some(u) => (u.to_owned(), claim_named(uml_dir, u)?),
            None => claim_random(uml_dir)?,
        };
        let home = UmidHome {
            dir: UmidDir::new(uml_dir, &umid),
            umid,
            fd,
            keep: false,
        };
        home.write_pid()?;
        Ok(home)
    }

    fn write_pid(&self) -> Result<(), String> {
        let path = self.dir.pid_file();
        let mut f = self
            .fd
            .create_file(uml_proto::umid::PID_FILE, 0o644)
            .map_err(|e| format!("{}: cannot create pid file: {e}", path.display()))?;
        writeln!(f, "{}", std::process::id()).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn socket_path(&self) -> PathBuf {
        self.dir.mconsole()
    }

    /// Removes the directory and everything in it (by descriptor).
    pub fn remove(&self) {
        let _ = self.fd.remove();
    }
}

impl Drop for UmidHome {
    fn drop(&mut self) {
        if !self.keep {
            self.remove();
        }
    }
}

fn shown(e: UmidError) -> String {
    e.to_string()
}

/// Takes `<uml_dir>/<umid>`: refused while its kernel runs, cleaned when stale,
/// refused when it is a symlink or another user's.
fn claim_named(uml_dir: &Path, umid: &str) -> Result<UmidFd, String> {
    let parent = open_uml_dir(uml_dir).map_err(shown)?;
    let keep = parent
        .try_clone()
        .map_err(|e| format!("{}: {e}", uml_dir.display()))?;
    match UmidFd::open(parent, uml_dir, umid).map_err(shown)? {
        Some(d) => {
            match d.liveness() {
                Liveness::Running(pid) if pid as u32 != std::process::id() => {
                    return Err(format!("umid=\"{umid}\" is already in use by pid {pid}"))
                }
                _ => d
                    .clean()
                    .map_err(|e| format!("{}: cannot clean: {e}", d.path.display()))?,
            }
            Ok(d)
        }
        None => UmidFd::create(keep, uml_dir, umid).map_err(|e| {
            format!(
                "{}: cannot create umid directory: {}",
                uml_dir.join(umid).display(),
                match e {
                    UmidError::Io { source, .. } => source.to_string(),
                    e => e.to_string(),
                }
            )
        }),
    }
}

/// A fresh directory with a random 6-character name.
fn claim_random(uml_dir: &Path) -> Result<(String, UmidFd), String> {
    let parent = open_uml_dir(uml_dir).map_err(shown)?;
    for _ in 0..100 {
        let umid = random_name()?;
        let p = parent
            .try_clone()
            .map_err(|e| format!("{}: {e}", uml_dir.display()))?;
        match UmidFd::create(p, uml_dir, &umid) {
            Ok(d) => return Ok((umid, d)),
            Err(UmidError::Io { source, .. }) if source.kind() == io::ErrorKind::AlreadyExists => {
                continue
            }
            Err(e) => {
                return Err(format!(
                    "{}: cannot create umid directory: {e}",
                    uml_dir.join(&umid).display()
                ))
            }
        }
    }
    Err(format!("{}: no free random umid", uml_dir.display()))
}

fn random_name() -> Result<String, String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = [0u8; RANDOM_UMID_LEN];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| format!("/dev/urandom: {e}"))?;
    Ok(bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_random_stale_and_live() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("uml");
        let a = UmidHome::create(&base, Some("box")).unwrap();
        let pid = fs::read_to_string(a.dir.pid_file()).unwrap();
        assert_eq!(pid, format!("{}\n", std::process::id()));
        // A live owner (pid 1 always exists) is refused.
        drop(a);
        let d = base.join("busy");
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("pid"), "1\n").unwrap();
        let e = UmidHome::create(&base, Some("busy")).unwrap_err();
        assert!(e.contains("already in use by pid 1"), "{e}");
        // A dead owner's directory is cleaned and reused.
        fs::write(d.join("pid"), "999999999\n").unwrap();
        fs::write(d.join("junk"), "x").unwrap();
        let b = UmidHome::create(&base, Some("busy")).unwrap();
        assert!(!d.join("junk").exists());
        drop(b);
        assert!(!d.exists());
        let r = UmidHome::create(&base, None).unwrap();
        assert_eq!(r.umid.len(), RANDOM_UMID_LEN);
        assert!(r.dir.dir.is_dir());
    }

    #[test]
    fn a_symlinked_umid_is_refused_and_its_target_untouched() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("shared");
        fs::create_dir(&base).unwrap();
        let victim = tmp.path().join("victim");
        fs::create_dir(&victim).unwrap();
        fs::write(victim.join("mconsole"), "precious").unwrap();
        fs::write(victim.join("pid"), "999999999\n").unwrap();
        std::os::unix::fs::symlink(&victim, base.join("box")).unwrap();
        let e = UmidHome::create(&base, Some("box")).unwrap_err();
        assert!(e.contains("symbolic link: refused"), "{e}");
        assert_eq!(
            fs::read_to_string(victim.join("mconsole")).unwrap(),
            "precious"
        );
        assert!(victim.join("pid").exists());
        // A file there is refused too; a symlink inside our own stale directory is
        // removed itself, not what it points to.
        fs::write(base.join("file"), "x").unwrap();
        assert!(UmidHome::create(&base, Some("file")).is_err());
        let own = base.join("own");
        fs::create_dir(&own).unwrap();
        std::os::unix::fs::symlink(victim.join("mconsole"), own.join("mconsole")).unwrap();
        let h = UmidHome::create(&base, Some("own")).unwrap();
        drop(h);
        assert!(!own.exists());
        assert_eq!(
            fs::read_to_string(victim.join("mconsole")).unwrap(),
            "precious"
        );
    }
}
