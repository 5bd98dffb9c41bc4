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

/// e2fsck -fn passes on `image` and debugfs reads `path` in it as `content`.
fn assert_clean_with(image: &Path, path: &str, content: &str, what: &str) {
    let out = run(Command::new("e2fsck").arg("-fn").arg(image), LIMIT);
    assert_eq!(out.code, Some(0), "{what}: e2fsck -fn: {out:?}");
    let out = run(
        Command::new("debugfs")
            .args(["-R", &format!("cat {path}")])
            .arg(image),
        LIMIT,
    );
    assert_eq!(out.stdout, content, "{what}: debugfs cat {path}: {out:?}");
}

fn kill_9(k: &mut Kern) {
    k.child.kill().unwrap(); // SIGKILL: nothing more is written
    k.child.wait().unwrap();
}

fn data_disk(home: &Path, mib: u32) -> PathBuf {
    let data = home.join("data.img");
    let out = run(
        Command::new("mkfs.ext2")
            .args(["-q", "-F"])
            .arg(&data)
            .arg(format!("{mib}M")),
        LIMIT,
    );
    assert!(out.success(), "{out:?}");
    data
}

#[test]
fn umount_writes_back_before_a_kill_9() {
    let dir = scratch();
    let home = dir.path();
    let data = data_disk(home, 4);
    let mut k = Kern::spawn(home, "um9", &["ubd1=data.img"]);
    assert!(k.wait_output("VFS: no root disk"), "{}", k.output());
    assert_eq!(k.shell("mount -t ext2 /dev/ubdb /mnt"), "");
    assert_eq!(k.shell("mkdir /mnt/d"), "");
    assert_eq!(k.shell("echo unmounted > /mnt/d/f"), "");
    assert_eq!(k.shell("umount /mnt"), "");
    kill_9(&mut k);
    assert_clean_with(&data, "/d/f", "unmounted\n", "umount then kill -9");
}

#[test]
fn halt_writes_back_and_marks_clean() {
    let dir = scratch();
    let home = dir.path();
    let image = home.join("root.img");
    GuestImage::build(&image, "#!/bin/sh\npoweroff -f\n");
    let mut k = Kern::spawn(home, "hwb", &["ubd0=root.img"]);
    assert!(k.wait_output("VFS: Mounted root"), "{}", k.output());
    assert_eq!(k.shell("echo halted > /f"), "");
    k.halt();
    assert_clean_with(&image, "/f", "halted\n", "halt");
    let out = run(Command::new("dumpe2fs").arg("-h").arg(&image), LIMIT);
    assert!(
        out.stdout.contains("Filesystem state:         clean"),
        "not marked clean at halt: {out:?}"
    );
}

#[test]
fn reboot_writes_back_before_the_new_boot() {
    let dir = scratch();
    let home = dir.path();
    let image = home.join("root.img");
    GuestImage::build(&image, "#!/bin/sh\npoweroff -f\n");
    let mut k = Kern::spawn(home, "rwb", &["ubd0=root.img"]);
    assert!(k.wait_output("VFS: Mounted root"), "{}", k.output());
    assert_eq!(k.shell("echo rebooted > /f"), "");
    writeln!(k.stdin, "reboot").unwrap();
    k.stdin.flush().unwrap();
    let start = Instant::now();
    while k.output().matches("VFS: Mounted root").count() < 2 {
        assert!(start.elapsed() < LIMIT, "no second boot:\n{}", k.output());
        thread::sleep(Duration::from_millis(5));
    }
    // The new boot sees the file, and the image holds it even if the kernel dies now.
    assert_eq!(k.shell("cat /f"), "rebooted\n");
    kill_9(&mut k);
    assert_clean_with(&image, "/f", "rebooted\n", "reboot then kill -9");
}

#[test]
fn dirty_blocks_are_written_back_periodically() {
    let dir = scratch();
    let home = dir.path();
    // Without a sync, a kill -9 within the default 30 s loses the file: what the
    // periodic write-back below has to prevent.
    let data = data_disk(home, 4);
    let mut k = Kern::spawn(home, "nowb", &["ubd1=data.img"]);
    assert!(k.wait_output("Run the built-in shell"), "{}", k.output());
    assert_eq!(k.shell("mount -t ext2 /dev/ubdb /mnt"), "");
    assert_eq!(k.shell("echo lost > /mnt/f"), "");
    kill_9(&mut k);
    let out = run(
        Command::new("debugfs").args(["-R", "cat /f"]).arg(&data),
        LIMIT,
    );
    assert_eq!(
        out.stdout, "",
        "written back without a sync or a timer: {out:?}"
    );

    let data = data_disk(home, 4);
    let mut k = Kern::spawn(home, "wb", &["ubd1=data.img", "fs_writeback=1"]);
    assert!(k.wait_output("Run the built-in shell"), "{}", k.output());
    assert_eq!(k.shell("mount -t ext2 /dev/ubdb /mnt"), "");
    assert_eq!(k.shell("mkdir /mnt/d"), "");
    assert_eq!(k.shell("echo periodic > /mnt/d/f"), "");
    // Nothing happens in the guest meanwhile: the loop's timer alone writes back.
    thread::sleep(Duration::from_millis(2500));
    kill_9(&mut k);
    assert_clean_with(&data, "/d/f", "periodic\n", "fs_writeback=1 then kill -9");
}

/// The kernel's peak resident memory (VmHWM) in KiB.
fn peak_kib(k: &Kern) -> u64 {
    // Found through NSpid: under scripts/test's pid namespace /proc is the outer one.
    let dir = tests::proc_dir(k.child.id() as i32).expect("the kernel in /proc");
    let status = fs::read_to_string(dir.join("status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmHWM")
}

#[test]
fn the_block_cache_stays_within_mem_and_the_data_survives_a_remount() {
    let dir = scratch();
    let home = dir.path();
    // 24 MiB of noise on the root disk, copied to a second disk by a kernel with
    // mem=8M: the cache (a quarter of mem=, shared by both mounts) may hold 2 MiB.
    let mut noise = vec![0u8; 24 << 20];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for chunk in noise.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes());
    }
    let image = home.join("root.img");
    GuestImage::build_with(
        &image,
        "#!/bin/sh\npoweroff -f\n",
        64,
        &[("noise", &noise, 0o644)],
    );
    let data = data_disk(home, 80);
    let mut k = Kern::spawn(home, "bound", &["mem=8M", "ubd0=root.img", "ubd1=data.img"]);
    assert!(k.wait_output("VFS: Mounted root"), "{}", k.output());
    assert_eq!(k.shell("mount -t ext2 /dev/ubdb /mnt"), "");
    let before = peak_kib(&k);
    let out = k.shell("dd if=/noise of=/mnt/big bs=1M");
    assert!(out.contains("25165824 bytes"), "{out}");
    let meminfo = k.shell("cat /proc/meminfo");
    let buffers: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("Buffers:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no Buffers in /proc/meminfo:\n{meminfo}"));
    assert!(
        buffers <= 2048,
        "cache of {buffers} kB over mem=8M/4:\n{meminfo}"
    );
    // Remounted: what is read back comes from the disk, not the cache.
    assert_eq!(k.shell("umount /mnt"), "");
    assert_eq!(k.shell("mount -t ext2 /dev/ubdb /mnt"), "");
    let out = k.shell("dd if=/mnt/big of=/mnt/again bs=64k");
    assert!(out.contains("25165824 bytes"), "{out}");
    let grown = peak_kib(&k).saturating_sub(before);
    // The cache's 2 MiB, dd's buffer, one write-back run and allocator slack: far
    // below the 48 MiB copied.
    assert!(
        grown <= 6 << 10,
        "peak memory grew by {grown} KiB copying 24 MiB twice with mem=8M"
    );
    assert_eq!(k.shell("umount /mnt"), "");
    k.halt();
    let out = run(Command::new("e2fsck").arg("-fn").arg(&data), LIMIT);
    assert_eq!(out.code, Some(0), "{out:?}");
    for name in ["big", "again"] {
        let dump = home.join(format!("{name}.out"));
        let out = run(
            Command::new("debugfs")
                .args(["-R", &format!("dump /{name} {}", dump.display())])
                .arg(&data),
            LIMIT,
        );
        assert!(out.success(), "{out:?}");
        assert!(
            fs::read(&dump).unwrap() == noise,
            "/{name} differs from the noise it was copied from"
        );
    }
}

#[test]
fn mconsole_answers_while_dd_and_fsbench_run() {
    let dir = scratch();
    let home = dir.path();
    let data = data_disk(home, 64);
    let mut k = Kern::spawn(home, "busy", &["ubd1=data.img"]);
    assert!(k.wait_output("Run the built-in shell"), "{}", k.output());
    assert_eq!(k.shell("mount -t ext2 /dev/ubdb /mnt"), "");
    assert_eq!(k.shell("mkdir /mnt/d"), "");
    for (cmd, done) in [
        ("fsbench files /mnt/d 8000", "created 8000 files"),
        (
            "dd if=/dev/zero of=/mnt/big bs=4k count=10000",
            "40960000 bytes",
        ),
    ] {
        let before = k.output().len();
        writeln!(k.stdin, "{cmd}").unwrap();
        k.stdin.flush().unwrap();
        thread::sleep(Duration::from_millis(50));
        let start = Instant::now();
        let out = k.mconsole("version");
        let took = start.elapsed();
        assert!(out.success(), "{out:?}");
        assert!(
            !k.output()[before..].contains(done),
            "`{cmd}` was over before mconsole answered: too short to show anything"
        );
        // The uml_mconsole process itself takes most of this; a blocked loop would
        // answer only when the command is over.
        assert!(took < Duration::from_secs(2), "mconsole took {took:?}");
        let start = Instant::now();
        while !k.output()[before..].contains(done) {
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "`{cmd}` did not finish:\n{}",
                k.output()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
    assert_eq!(k.shell("umount /mnt"), "");
    k.halt();
    let out = run(Command::new("e2fsck").arg("-fn").arg(&data), LIMIT);
    assert_eq!(out.code, Some(0), "{out:?}");
}
