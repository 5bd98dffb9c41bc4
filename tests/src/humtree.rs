//! Humfs trees for the humfsify and kernel humfs tests: a fixture tree of varied
//! nodes (files, directories, a symlink, a hard-link pair, a fifo, devices, several
//! owners and modes), a snapshot that compares trees node by node, and a humfsify run.
#![allow(clippy::unwrap_used)] // test support: an unwrap fails the test with the error shown

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::os::unix::fs::{chown, symlink, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::{run, Output};

/// One node as a comparison sees it: type, permission bits, owner, content or link
/// target or device numbers, and which hard-link group it belongs to.
pub type Snapshot = BTreeMap<String, String>;

pub fn snapshot(top: &Path) -> Snapshot {
    let mut groups: HashMap<(u64, u64), String> = HashMap::new();
    let mut out = Snapshot::new();
    let mut stack = vec![top.to_owned()];
    while let Some(p) = stack.pop() {
        let m = fs::symlink_metadata(&p).unwrap();
        let rel = p.strip_prefix(top).unwrap().to_string_lossy().into_owned();
        let ft = m.file_type();
        let what = if ft.is_dir() {
            for e in fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
            "dir".to_string()
        } else if ft.is_symlink() {
            format!("link -> {}", fs::read_link(&p).unwrap().display())
        } else if ft.is_char_device() || ft.is_block_device() {
            let kind = if ft.is_char_device() { 'c' } else { 'b' };
            format!("{kind} {}:{}", libc::major(m.rdev()), libc::minor(m.rdev()))
        } else if ft.is_fifo() {
            "fifo".to_string()
        } else {
            format!("file {:?}", String::from_utf8_lossy(&fs::read(&p).unwrap()))
        };
        let group = if !ft.is_dir() && m.nlink() > 1 {
            let g = groups
                .entry((m.dev(), m.ino()))
                .or_insert_with(|| rel.clone());
            format!(" linked-with {g}")
        } else {
            String::new()
        };
        // Directory sizes and inode numbers may differ between equal trees; the rest
        // must not.
        let mode = if ft.is_symlink() {
            0
        } else {
            m.mode() & 0o7777
        };
        out.insert(
            rel.clone(),
            format!("{what} {mode:o} {}:{}{group}", m.uid(), m.gid()),
        );
    }
    out
}

pub fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

pub fn mknod(p: &Path, kind: libc::mode_t, major: u32, minor: u32) {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid C string path; mknod only reads it.
    let r = unsafe { libc::mknod(c.as_ptr(), kind | 0o640, libc::makedev(major, minor)) };
    assert_eq!(
        r,
        0,
        "mknod {}: {}",
        p.display(),
        std::io::Error::last_os_error()
    );
}

/// The fixture: files, directories, a symlink, a hard-link pair, a fifo, a char and a
/// block device, varied modes and owners. Only what the Perl tool handles right
/// (modes within 0777, device numbers below 256).
pub fn fixture(top: &Path) {
    let data = top.join("data");
    fs::create_dir_all(data.join("etc/conf.d")).unwrap();
    fs::create_dir_all(data.join("home/user")).unwrap();
    fs::create_dir_all(data.join("dev")).unwrap();
    let files: [(&str, &str, u32, u32, u32); 5] = [
        ("etc/passwd", "root:x:0:0\n", 0o644, 0, 0),
        ("etc/shadow", "secret\n", 0o640, 0, 42),
        ("etc/conf.d/net", "eth0\n", 0o600, 0, 0),
        ("home/user/notes", "hello\n", 0o664, 1000, 1000),
        ("home/user/run.sh", "#!/bin/sh\n", 0o755, 1000, 100),
    ];
    for (name, content, mode, uid, gid) in files {
        let p = data.join(name);
        fs::write(&p, content).unwrap();
        chown(&p, Some(uid), Some(gid)).unwrap();
        chmod(&p, mode);
    }
    chown(data.join("home/user"), Some(1000), Some(1000)).unwrap();
    chmod(&data.join("home/user"), 0o700);
    chmod(&data.join("etc/conf.d"), 0o750);
    fs::hard_link(data.join("home/user/notes"), data.join("home/notes-link")).unwrap();
    symlink("../etc/passwd", data.join("home/passwd-link")).unwrap();
    chown(data.join("home/passwd-link"), Some(7), Some(8)).ok();
    std::os::unix::fs::lchown(data.join("home/passwd-link"), Some(7), Some(8)).unwrap();
    let fifo = data.join("dev/initctl");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid C string path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    mknod(&data.join("dev/null"), libc::S_IFCHR, 1, 3);
    mknod(&data.join("dev/ubda"), libc::S_IFBLK, 98, 0);
    chown(data.join("dev/ubda"), Some(0), Some(6)).unwrap();
}

pub fn humfsify(tool: &Path, top: &Path, args: &[&str]) -> Output {
    run(
        Command::new(tool).args(args).current_dir(top),
        Duration::from_secs(60),
    )
}
