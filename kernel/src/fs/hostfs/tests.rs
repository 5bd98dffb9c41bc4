//! hostfs through the VFS and the shell's file commands, on scratch host directories:
//! the operations land on the host, confinement holds against `..` and host symlinks,
//! append mode refuses what would destroy data.

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;

use super::*;
use crate::fs::cmds::{FileShell, Mounter};
use crate::fs::tmpfs::Tmpfs;
use crate::fs::vfs::{Loc, Vfs};

struct Hostfs(HostfsSwitch);

impl Mounter for Hostfs {
    fn make(
        &mut self,
        fs_type: &str,
        _: &str,
        read_only: bool,
        options: &str,
    ) -> Result<Box<dyn FileSystem>, String> {
        assert_eq!(fs_type, "hostfs");
        HostFs::mount(&self.0, options, read_only)
            .map(|fs| Box::new(fs) as Box<dyn FileSystem>)
            .map_err(|e| e.to_string())
    }
}

struct Guest {
    vfs: Vfs,
    cwd: Loc,
    mounter: Hostfs,
}

impl Guest {
    fn new(switch: HostfsSwitch) -> Guest {
        let mut vfs = Vfs::new(Box::new(Tmpfs::new(0)), "rootfs");
        let cwd = vfs.root();
        vfs.mkdir(cwd, b"/mnt", 0o755, 0, 0).unwrap();
        Guest {
            vfs,
            cwd,
            mounter: Hostfs(switch),
        }
    }

    fn sh(&mut self, line: &str) -> String {
        let words: Vec<&str> = line.split_whitespace().collect();
        FileShell {
            vfs: &mut self.vfs,
            cwd: &mut self.cwd,
            mounter: &mut self.mounter,
        }
        .run(&words)
        .expect("a file command")
    }
}

fn confined(dir: &Path, append: bool) -> HostfsSwitch {
    HostfsSwitch {
        dir: Some(dir.to_owned()),
        append,
    }
}

#[test]
fn the_switch_parses_as_documented() {
    assert_eq!(
        HostfsSwitch::parse("/srv/uml,append").unwrap(),
        confined(Path::new("/srv/uml"), true)
    );
    assert_eq!(
        HostfsSwitch::parse(",append").unwrap(),
        HostfsSwitch {
            dir: None,
            append: true
        }
    );
    assert_eq!(
        HostfsSwitch::parse("/srv").unwrap(),
        confined(Path::new("/srv"), false)
    );
    assert_eq!(
        HostfsSwitch::parse("/srv,sync").unwrap_err().to_string(),
        "unknown option 'sync' (only 'append')"
    );
    assert_eq!(
        MountData::parse("ro,/a,b"),
        MountData {
            path: "/a,b".into(),
            read_only: true
        }
    );
}

#[test]
fn guest_file_commands_land_in_the_host_directory() {
    let host = tempfile::tempdir().unwrap();
    let h = host.path();
    fs::create_dir(h.join("sub")).unwrap();
    fs::write(h.join("sub/from-host"), "host text\n").unwrap();
    let mut g = Guest::new(confined(h, false));
    assert_eq!(g.sh("mount none /mnt -t hostfs"), "");
    assert_eq!(g.sh("cat /mnt/sub/from-host"), "host text\n");
    assert_eq!(g.sh("mkdir -p /mnt/a/b"), "");
    assert_eq!(g.sh("echo hello host > /mnt/a/b/f"), "");
    assert_eq!(g.sh("echo more >> /mnt/a/b/f"), "");
    assert_eq!(
        fs::read_to_string(h.join("a/b/f")).unwrap(),
        "hello host\nmore\n"
    );
    assert_eq!(g.sh("ln -s b/f /mnt/a/link"), "");
    assert_eq!(fs::read_link(h.join("a/link")).unwrap(), Path::new("b/f"));
    assert_eq!(g.sh("cat /mnt/a/link"), "hello host\nmore\n");
    assert_eq!(g.sh("ln /mnt/a/b/f /mnt/a/hard"), "");
    assert_eq!(fs::metadata(h.join("a/hard")).unwrap().nlink(), 2);
    assert_eq!(g.sh("mv /mnt/a /mnt/moved"), "");
    assert!(h.join("moved/b/f").exists() && !h.join("a").exists());
    // Names below a moved directory follow it.
    assert_eq!(g.sh("cat /mnt/moved/b/f"), "hello host\nmore\n");
    assert_eq!(g.sh("cd /mnt/moved/b"), "");
    assert_eq!(g.sh("pwd"), "/mnt/moved/b\n");
    assert_eq!(g.sh("cat ../../sub/from-host"), "host text\n");
    let ls = g.sh("ls -l /mnt/moved");
    assert!(ls.contains("link -> b/f\n"), "{ls}");
    assert!(ls.contains(" hard\n") && ls.starts_with("d"), "{ls}");
    assert_eq!(g.sh("ls /mnt"), "moved\nsub\n");
    assert_eq!(g.sh("rm /mnt/moved/hard"), "");
    assert!(!h.join("moved/hard").exists());
    assert_eq!(g.sh("cd /"), "");
    assert_eq!(g.sh("rm -r /mnt/moved"), "");
    assert!(!h.join("moved").exists());
    // The guest asks for a mode and gets it, the host's umask notwithstanding.
    assert_eq!(g.sh("mkdir /mnt/d"), "");
    assert_eq!(
        fs::metadata(h.join("d")).unwrap().permissions().mode() & 0o7777,
        0o755
    );
    // Made files belong to the user running the kernel.
    assert_eq!(g.sh("touch /mnt/owned"), "");
    assert_eq!(
        fs::metadata(h.join("owned")).unwrap().uid(),
        nix::unistd::geteuid().as_raw()
    );
    let set = SetAttr {
        perm: Some(0o600),
        ..SetAttr::default()
    };
    let root = g.vfs.root();
    g.vfs.setattr(root, b"/mnt/owned", true, &set).unwrap();
    assert_eq!(
        fs::metadata(h.join("owned")).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let df = g.sh("df");
    assert!(
        df.lines()
            .any(|l| l.starts_with("none") && l.ends_with(" /mnt")),
        "{df}"
    );
    assert_eq!(
        g.sh("mount").lines().last(),
        Some("none on /mnt type hostfs (rw)")
    );
    assert_eq!(g.sh("umount /mnt"), "");
}

#[test]
fn an_open_file_outlives_its_name() {
    let host = tempfile::tempdir().unwrap();
    let mut g = Guest::new(confined(host.path(), false));
    assert_eq!(g.sh("mount none /mnt -t hostfs"), "");
    assert_eq!(g.sh("echo kept > /mnt/f"), "");
    let root = g.vfs.root();
    let mut f = g.vfs.open(root, b"/mnt/f", oflag(), 0, 0, 0).unwrap();
    g.vfs.unlink(root, b"/mnt/f").unwrap();
    assert!(!host.path().join("f").exists());
    let mut buf = [0u8; 16];
    let n = g.vfs.read(&mut f, &mut buf).unwrap();
    assert_eq!(&buf[..n], b"kept\n");
    assert_eq!(g.vfs.getattr(f.loc).unwrap().nlink, 0);
    g.vfs.close(f).unwrap();
}

fn oflag() -> u32 {
    crate::fs::vfs::oflag::O_RDWR
}

#[test]
fn confinement_holds_against_dotdot_and_host_symlinks() {
    let top = tempfile::tempdir().unwrap();
    let outside = top.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("marker"), "MARKER\n").unwrap();
    let jail = top.path().join("jail");
    fs::create_dir_all(jail.join("inner")).unwrap();
    symlink(outside.join("marker"), jail.join("abs")).unwrap();
    symlink("../outside/marker", jail.join("rel")).unwrap();
    symlink(&outside, jail.join("dirlink")).unwrap();
    let mut g = Guest::new(confined(&jail, false));
    // -o paths are relative to the hostfs= directory and cannot leave it.
    let out = g.sh("mount none /mnt -t hostfs -o /../outside");
    assert!(out.contains("is outside the hostfs="), "{out}");
    let out = g.sh("mount none /mnt -t hostfs -o ../outside");
    assert!(out.contains("is outside the hostfs="), "{out}");
    assert_eq!(g.sh("mount none /mnt -t hostfs -o /inner"), "");
    assert_eq!(g.sh("umount /mnt"), "");
    assert_eq!(g.sh("mount none /mnt -t hostfs"), "");
    for p in [
        "/mnt/abs",
        "/mnt/rel",
        "/mnt/dirlink/marker",
        "/mnt/../outside/marker",
    ] {
        let out = g.sh(&format!("cat {p}"));
        assert!(!out.contains("MARKER"), "{p}: {out}");
        let _ = g.sh(&format!("echo pwned > {p}"));
    }
    // The links read as the host wrote them; they mean guest paths.
    let ls = g.sh("ls -l /mnt");
    assert!(
        ls.contains(&format!("abs -> {}", outside.join("marker").display())),
        "{ls}"
    );
    // A guest file at the link's target is what the link reaches.
    let guest_target = outside.join("marker");
    let guest_dir = guest_target.parent().unwrap().to_str().unwrap();
    assert_eq!(g.sh(&format!("mkdir -p {guest_dir}")), "");
    assert_eq!(
        g.sh(&format!("echo guest > {}", guest_target.display())),
        ""
    );
    assert_eq!(g.sh("cat /mnt/abs"), "guest\n");
    assert_eq!(
        fs::read_to_string(outside.join("marker")).unwrap(),
        "MARKER\n"
    );
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 1);
    // `..` at the mount's root is the guest's /.
    let root_ls = g.sh("ls /");
    assert_eq!(g.sh("cd /mnt/inner"), "");
    assert_eq!(g.sh("ls ../.."), root_ls);
}

#[test]
fn append_mode_refuses_truncation_and_removal_and_allows_appends() {
    let host = tempfile::tempdir().unwrap();
    let h = host.path();
    fs::write(h.join("log"), "first\n").unwrap();
    fs::create_dir(h.join("dir")).unwrap();
    fs::write(h.join("other"), "other\n").unwrap();
    let mut g = Guest::new(confined(h, true));
    assert_eq!(g.sh("mount none /mnt -t hostfs"), "");
    assert_eq!(g.sh("echo second >> /mnt/log"), "");
    assert_eq!(
        fs::read_to_string(h.join("log")).unwrap(),
        "first\nsecond\n"
    );
    let out = g.sh("echo over > /mnt/log");
    assert!(out.contains("Operation not permitted"), "{out}");
    assert_eq!(
        g.sh("rm /mnt/log"),
        "rm: can't remove '/mnt/log': Operation not permitted\n"
    );
    assert!(g.sh("rmdir /mnt/dir").contains("Operation not permitted"));
    assert!(g
        .sh("mv /mnt/other /mnt/log")
        .contains("Operation not permitted"));
    let root = g.vfs.root();
    let set = SetAttr {
        size: Some(2),
        ..SetAttr::default()
    };
    assert_eq!(
        g.vfs.setattr(root, b"/mnt/log", true, &set),
        Err(Errno::EPERM)
    );
    // A write anywhere but the end.
    let mut f = g.vfs.open(root, b"/mnt/log", oflag(), 0, 0, 0).unwrap();
    assert_eq!(g.vfs.write(&mut f, b"X"), Err(Errno::EPERM));
    g.vfs.close(f).unwrap();
    assert_eq!(
        fs::read_to_string(h.join("log")).unwrap(),
        "first\nsecond\n"
    );
    assert_eq!(fs::read_to_string(h.join("other")).unwrap(), "other\n");
    assert!(h.join("dir").is_dir());
    // New files can be made and renamed to free names.
    assert_eq!(g.sh("echo new > /mnt/new"), "");
    assert_eq!(g.sh("mv /mnt/new /mnt/newer"), "");
    assert_eq!(fs::read_to_string(h.join("newer")).unwrap(), "new\n");
}

#[test]
fn read_only_mounts_and_missing_directories() {
    let host = tempfile::tempdir().unwrap();
    let mut g = Guest::new(confined(host.path(), false));
    let out = g.sh("mount none /mnt -t hostfs -o /nope");
    assert!(
        out.contains("cannot open host directory '/nope': No such file or directory"),
        "{out}"
    );
    assert_eq!(g.sh("mount none /mnt -t hostfs -o ro"), "");
    assert!(g.sh("echo x > /mnt/f").contains("Read-only file system"));
    assert!(!host.path().join("f").exists());
    let err = HostFs::mount(&confined(&host.path().join("gone"), false), "", false)
        .err()
        .unwrap();
    assert!(
        err.to_string().starts_with("hostfs: cannot open hostfs="),
        "{err}"
    );
}

#[test]
fn fifos_times_links_and_statfs_reach_the_host_and_devices_are_refused() {
    use std::os::unix::fs::FileTypeExt;
    let host = tempfile::tempdir().unwrap();
    let h = host.path();
    let mut g = Guest::new(confined(h, false));
    assert_eq!(g.sh("mount none /mnt -t hostfs"), "");
    let root = g.vfs.root();
    let node = |kind, perm| NewNode {
        kind,
        perm,
        uid: 0,
        gid: 0,
        rdev: (1, 3),
    };
    g.vfs
        .mknod(root, b"/mnt/pipe", &node(FileKind::Fifo, 0o640))
        .unwrap();
    let m = fs::symlink_metadata(h.join("pipe")).unwrap();
    assert!(m.file_type().is_fifo() && m.permissions().mode() & 0o777 == 0o640);
    for kind in [FileKind::Char, FileKind::Block] {
        assert_eq!(
            g.vfs.mknod(root, b"/mnt/dev", &node(kind, 0o666)),
            Err(Errno::EPERM)
        );
    }
    assert!(fs::symlink_metadata(h.join("dev")).is_err());
    // Opening a host fifo from the guest does not hang the kernel; reading it fails.
    let f = g.vfs.open(root, b"/mnt/pipe", oflag(), 0, 0, 0).unwrap();
    let mut buf = [0u8; 4];
    assert!(g.vfs.pread(&f, 0, &mut buf).is_err());
    g.vfs.close(f).unwrap();
    // Times set by the guest land on the host.
    assert_eq!(g.sh("touch /mnt/t"), "");
    let set = SetAttr {
        atime: Some(1_000_000_000),
        mtime: Some(1_234_567_890),
        ..SetAttr::default()
    };
    let a = g.vfs.setattr(root, b"/mnt/t", true, &set).unwrap();
    assert_eq!((a.atime, a.mtime), (1_000_000_000, 1_234_567_890));
    assert_eq!(fs::metadata(h.join("t")).unwrap().mtime(), 1_234_567_890);
    // A chown to other ids needs a kernel running as root.
    let chown = SetAttr {
        uid: Some(4242),
        ..SetAttr::default()
    };
    let r = g.vfs.setattr(root, b"/mnt/t", true, &chown);
    if nix::unistd::geteuid().is_root() {
        assert_eq!(r.unwrap().uid, 4242);
        assert_eq!(fs::metadata(h.join("t")).unwrap().uid(), 4242);
    } else {
        assert_eq!(r, Err(Errno::EPERM));
    }
    // A host symlink reads as written, relative or absolute.
    symlink("/etc/passwd", h.join("abs")).unwrap();
    assert_eq!(g.vfs.readlink(root, b"/mnt/abs").unwrap(), b"/etc/passwd");
    let s = g.vfs.statfs(root, b"/mnt").unwrap();
    assert_eq!(s.fs_type, HOSTFS_SUPER_MAGIC);
    let host_st = nix::sys::statvfs::statvfs(h).unwrap();
    assert_eq!(
        s.blocks * u64::from(s.bsize),
        host_st.blocks() * host_st.fragment_size()
    );
}
