//! uml-kernel's filesystems end to end: the busybox guest image as the root filesystem
//! through a COW (`ubd0=COW,IMAGE`), read and written with the built-in shell's file
//! commands; the COW merged by our uml_moo is a clean ext2 image holding the guest's
//! file, which linux.uml then reads, and the backing image is untouched. Without a usable root disk the shell runs
//! on an empty tmpfs root and the console says why.
#![allow(clippy::unwrap_used)] // a test that unwraps fails with the error shown

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tests::{fingerprint, our_bin, run, scratch, GuestImage, Output, Uml};

const LIMIT: Duration = Duration::from_secs(10);

/// A uml-kernel with its console in a file and its stdin held open; killed by pid when
/// dropped.
struct Kern {
    child: Child,
    stdin: ChildStdin,
    console: PathBuf,
    home: PathBuf,
    umid: String,
}

impl Kern {
    fn spawn(home: &Path, umid: &str, args: &[&str]) -> Kern {
        let console = home.join(format!("{umid}.console"));
        let out = fs::File::create(&console).unwrap();
        let mut child = Command::new(our_bin("uml-kernel"))
            .arg(format!("umid={umid}"))
            .args(args)
            .env("HOME", home)
            .current_dir(home)
            .stdin(Stdio::piped())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("spawn uml-kernel");
        let stdin = child.stdin.take().unwrap();
        Kern {
            child,
            stdin,
            console,
            home: home.to_owned(),
            umid: umid.to_owned(),
        }
    }

    fn output(&self) -> String {
        fs::read_to_string(&self.console).unwrap_or_default()
    }

    fn wait_output(&self, text: &str) -> bool {
        let start = Instant::now();
        while start.elapsed() < LIMIT {
            if self.output().contains(text) {
                return true;
            }
            thread::sleep(Duration::from_millis(5));
        }
        false
    }

    /// Types `line`, then an echo of a marker, and returns what the line printed.
    fn shell(&mut self, line: &str) -> String {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let marker = format!(
            "end-of-{}",
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let before = self.output().len();
        write!(self.stdin, "{line}\necho {marker}\n").unwrap();
        self.stdin.flush().unwrap();
        assert!(
            self.wait_output(&format!("{marker}\n")),
            "`{line}` did not finish:\n{}",
            self.output()
        );
        let out = self.output();
        let text = &out[before..];
        let text = &text[..text.find(&format!("{marker}\n")).unwrap()];
        // The shell's prompts ("# ") start the lines; they are not the command's output.
        let mut clean = String::new();
        for line in text.split_inclusive('\n') {
            let mut line = line;
            while let Some(rest) = line.strip_prefix("# ") {
                line = rest;
            }
            clean.push_str(line);
        }
        clean
    }

    fn mconsole(&self, cmd: &str) -> Output {
        run(
            Command::new(our_bin("uml_mconsole"))
                .arg(&self.umid)
                .args(cmd.split(' '))
                .env("HOME", &self.home)
                .current_dir(&self.home),
            LIMIT,
        )
    }

    fn halt(&mut self) {
        writeln!(self.stdin, "halt").unwrap();
        let start = Instant::now();
        while start.elapsed() < LIMIT {
            if let Some(s) = self.child.try_wait().unwrap() {
                assert!(s.success(), "halt: {s}\n{}", self.output());
                return;
            }
            thread::sleep(Duration::from_millis(2));
        }
        panic!("no halt within {LIMIT:?}:\n{}", self.output());
    }
}

impl Drop for Kern {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn busybox_image_through_a_cow_is_read_and_written_by_the_shell() {
    let dir = scratch();
    let home = dir.path();
    let image = home.join("root.img");
    // linux.uml boots the merged image at the end: its init shows what we wrote.
    GuestImage::build_with(
        &image,
        "#!/bin/sh\nmount -t proc proc /proc\necho \"guest-saw: $(cat /tmp2/f)\"\npoweroff -f\n",
        32,
        &[("etc/motd", b"welcome to the guest image\n", 0o644)],
    );
    let before = fingerprint(&image);

    let mut k = Kern::spawn(home, "fs", &["ubd0=k.cow,root.img"]);
    assert!(
        k.wait_output("VFS: Mounted root (ext2 filesystem) on device 98:0."),
        "no root mount line:\n{}",
        k.output()
    );
    let ls = k.shell("ls /bin");
    assert!(
        ls.lines().any(|l| l == "busybox") && ls.lines().any(|l| l == "sh"),
        "ls /bin:\n{ls}"
    );
    let ls = k.shell("ls /");
    for d in ["bin", "dev", "etc", "proc", "sbin", "tmp", "usr"] {
        assert!(ls.lines().any(|l| l == d), "no {d} in ls /:\n{ls}");
    }
    assert_eq!(
        k.shell("cat /etc/motd").trim_end(),
        "welcome to the guest image"
    );
    let mounts = k.shell("cat /proc/mounts");
    assert!(
        mounts.contains("/dev/ubda / ext2 rw 0 0"),
        "/proc/mounts:\n{mounts}"
    );
    let out = k.mconsole("proc mounts");
    assert!(out.success(), "{out:?}");
    assert!(
        out.stdout.contains("/dev/ubda / ext2 rw"),
        "mconsole proc mounts: {out:?}"
    );

    assert_eq!(k.shell("mkdir /tmp2"), "");
    assert_eq!(k.shell("echo hello > /tmp2/f"), "");
    assert_eq!(k.shell("cat /tmp2/f"), "hello\n");
    assert_eq!(k.shell("sync"), "");
    k.halt();

    assert_eq!(fingerprint(&image), before, "the backing image was written");
    let merged = home.join("merged.img");
    let out = run(
        Command::new(our_bin("uml_moo"))
            .arg(home.join("k.cow"))
            .arg(&merged),
        LIMIT,
    );
    assert!(out.success(), "uml_moo: {out:?}");
    let out = run(Command::new("e2fsck").arg("-fn").arg(&merged), LIMIT);
    assert_eq!(out.code, Some(0), "e2fsck -fn of the merged image: {out:?}");
    let out = run(
        Command::new("debugfs")
            .args(["-R", "cat /tmp2/f"])
            .arg(&merged),
        LIMIT,
    );
    assert_eq!(out.stdout, "hello\n", "debugfs cat /tmp2/f: {out:?}");

    // linux.uml mounts the image we wrote and reads the file.
    let Some(uml) = Uml::new(home, "lxfs") else {
        return;
    };
    let out = uml
        .root("merged.img")
        .boot_to_poweroff(Duration::from_secs(60));
    assert!(
        out.stdout.contains("guest-saw: hello"),
        "linux.uml on the merged image:\n{}",
        out.stdout
    );
}

#[test]
fn sync_then_kill_9_leaves_a_clean_image() {
    let dir = scratch();
    let home = dir.path();
    let image = home.join("root.img");
    GuestImage::build(&image, "#!/bin/sh\npoweroff -f\n");
    let mut k = Kern::spawn(home, "k9", &["ubd0=root.img"]);
    assert!(
        k.wait_output("VFS: Mounted root (ext2 filesystem) on device 98:0."),
        "{}",
        k.output()
    );
    assert_eq!(k.shell("mkdir -p /var/data"), "");
    assert_eq!(k.shell("echo synced > /var/data/f"), "");
    assert_eq!(k.shell("ln -s /var/data/f /link"), "");
    assert_eq!(k.shell("sync"), "");
    k.child.kill().unwrap(); // SIGKILL: nothing more is written
    k.child.wait().unwrap();
    let out = run(Command::new("e2fsck").arg("-fn").arg(&image), LIMIT);
    assert_eq!(
        out.code,
        Some(0),
        "e2fsck -fn after sync and kill -9: {out:?}"
    );
    let out = run(
        Command::new("debugfs")
            .args(["-R", "cat /var/data/f"])
            .arg(&image),
        LIMIT,
    );
    assert_eq!(out.stdout, "synced\n", "{out:?}");
}

#[test]
fn a_second_disk_mounts_and_is_busy_until_unmounted() {
    let dir = scratch();
    let home = dir.path();
    GuestImage::build(&home.join("root.img"), "#!/bin/sh\npoweroff -f\n");
    let data = home.join("data.img");
    let out = run(
        Command::new("mkfs.ext2")
            .args(["-q", "-F"])
            .arg(&data)
            .arg("4M"),
        LIMIT,
    );
    assert!(out.success(), "{out:?}");
    let mut k = Kern::spawn(home, "two", &["ubd0=root.img", "ubd1=data.img"]);
    assert!(k.wait_output("VFS: Mounted root"), "{}", k.output());
    assert_eq!(k.shell("mount -t ext2 /dev/ubdb /mnt"), "");
    assert!(k
        .shell("cat /proc/mounts")
        .contains("/dev/ubdb /mnt ext2 rw 0 0"));
    assert_eq!(k.shell("echo on-b > /mnt/note"), "");
    let out = k.mconsole("remove ubd1");
    assert!(
        out.stdout.contains("Device is currently open"),
        "a mounted disk was removed: {out:?}"
    );
    assert_eq!(k.shell("umount /mnt"), "");
    let out = k.mconsole("remove ubd1");
    assert!(out.success(), "{out:?}");
    k.halt();
    let out = run(Command::new("e2fsck").arg("-fn").arg(&data), LIMIT);
    assert_eq!(out.code, Some(0), "{out:?}");
    let out = run(
        Command::new("debugfs").args(["-R", "cat /note"]).arg(&data),
        LIMIT,
    );
    assert_eq!(out.stdout, "on-b\n", "{out:?}");
}

#[test]
fn ro_mounts_the_root_read_only_and_leaves_the_image_alone() {
    let dir = scratch();
    let home = dir.path();
    let image = home.join("root.img");
    GuestImage::build(&image, "#!/bin/sh\npoweroff -f\n");
    let before = fingerprint(&image);
    let mut k = Kern::spawn(home, "ro", &["ubd0=root.img", "ro", "rootfstype=ext2"]);
    assert!(
        k.wait_output("VFS: Mounted root (ext2 filesystem) readonly on device 98:0."),
        "{}",
        k.output()
    );
    let out = k.shell("echo x > /f");
    assert!(out.contains("Read-only file system"), "{out}");
    assert!(k
        .shell("cat /proc/mounts")
        .contains("/dev/ubda / ext2 ro 0 0"));
    assert!(k.shell("ls /sbin").contains("init\n"));
    k.halt();
    assert!(
        !k.output().contains("Unknown kernel command line"),
        "root switches reported as unknown:\n{}",
        k.output()
    );
    assert_eq!(fingerprint(&image), before, "a read-only root was written");
}

#[test]
fn without_a_root_disk_the_shell_runs_on_an_empty_tmpfs() {
    let dir = scratch();
    let mut k = Kern::spawn(dir.path(), "nofs", &[]);
    assert!(
        k.wait_output("VFS: no root disk: running the built-in shell on an empty tmpfs root"),
        "{}",
        k.output()
    );
    assert_eq!(k.shell("ls /"), "dev\nmnt\nproc\ntmp\n");
    assert_eq!(k.shell("echo kept > /tmp/a"), "");
    assert_eq!(k.shell("cat /tmp/a"), "kept\n");
    assert!(k
        .shell("cat /proc/mounts")
        .contains("rootfs / tmpfs rw 0 0"));
    k.halt();
}

#[test]
fn a_root_disk_without_a_filesystem_falls_back_and_says_why() {
    let dir = scratch();
    let home = dir.path();
    let f = fs::File::create(home.join("blank.img")).unwrap();
    f.set_len(4 << 20).unwrap();
    drop(f);
    let mut k = Kern::spawn(home, "blank", &["ubd0=blank.img"]);
    assert!(
        k.wait_output("VFS: Cannot open root device \"ubda\""),
        "{}",
        k.output()
    );
    assert!(k.output().contains("EXT2-fs (ubda): "), "{}", k.output());
    assert_eq!(k.shell("ls /"), "dev\nmnt\nproc\ntmp\n");
    // The disk is still there for sector access.
    assert!(k.shell("ubd list").contains("ubda blank.img"));
    k.halt();
    // A disk that holds no filesystem is not written by the fallback.
    assert!(fs::read(home.join("blank.img"))
        .unwrap()
        .iter()
        .all(|&b| b == 0));
}
