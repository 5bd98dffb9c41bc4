//! uml-kernel's hostfs end to end, through the built-in shell on the console: a host
//! directory read and written from the guest (the files appear on the host with the
//! right contents and owner), the `hostfs=DIR` confinement attacked with `..`, host
//! symlinks planted outside it and symlinks swapped in by a racing host thread (a marker
//! outside is never read or changed), `hostfs=DIR,append`, a root on hostfs
//! (`rootfstype=hostfs rootflags=DIR`) and `rootflags=` refused when bad.
#![allow(clippy::unwrap_used)] // a test that unwraps fails with the error shown

use std::fs;
use std::os::fd::AsFd;
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use nix::fcntl::{renameat2, RenameFlags};
use tests::{fingerprint, our_bin, require_root, scratch, Fingerprint, GuestImage, KernelRun};

const LIMIT: Duration = Duration::from_secs(20);

/// uml-kernel with its console on a pipe and a file.
struct Kern(KernelRun);

impl Kern {
    fn spawn(home: &Path, umid: &str, args: &[&str]) -> Kern {
        let mut cmd = KernelRun::command(&our_bin("uml-kernel"), umid, args);
        cmd.current_dir(home);
        Kern::start(cmd, home, umid)
    }

    fn start(cmd: Command, home: &Path, umid: &str) -> Kern {
        let k = Kern(KernelRun::start(cmd, home, umid));
        assert!(
            k.0.wait_from(0, "Run the built-in shell", LIMIT).is_some(),
            "no shell:\n{}",
            k.0.output()
        );
        k
    }

    fn output(&self) -> String {
        self.0.output()
    }

    /// Types `lines` and an end mark; returns what they printed, prompts removed.
    fn shell(&mut self, lines: &str) -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        let mark = format!("end-of-{}", N.fetch_add(1, Ordering::Relaxed));
        let from = self.output().len();
        self.0.type_line(&format!("{lines}\necho {mark}"));
        let Some(out) = self.0.wait_from(from, &format!("{mark}\n"), LIMIT) else {
            panic!("`{lines}` did not finish:\n{}", self.output());
        };
        let text = &out[..out.find(&format!("{mark}\n")).unwrap()];
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

    fn halt(&mut self) {
        self.0.type_line("halt");
        let status = self.0.wait_exit(LIMIT);
        assert!(
            status.is_some_and(|s| s.success()),
            "no clean halt ({status:?}):\n{}",
            self.output()
        );
    }
}

/// What a directory outside the confinement holds: every file's fingerprint by name.
fn snapshot(dir: &Path) -> Vec<(String, Fingerprint)> {
    let mut out: Vec<(String, Fingerprint)> = fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                fingerprint(&e.path()),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// A scratch tree: `outside/` with marker files, `jail/` for `hostfs=`.
struct Tree {
    _dir: tempfile::TempDir,
    home: PathBuf,
    outside: PathBuf,
    jail: PathBuf,
}

const MARKER: &str = "MARKER-OUTSIDE";

fn tree() -> Tree {
    let dir = scratch();
    let home = dir.path().join("home");
    let outside = dir.path().join("outside");
    let jail = dir.path().join("jail");
    for d in [&home, &outside, &jail] {
        fs::create_dir(d).unwrap();
    }
    for f in ["marker", "secret", "f"] {
        fs::write(outside.join(f), format!("{MARKER} {f}\n")).unwrap();
    }
    Tree {
        _dir: dir,
        home,
        outside,
        jail,
    }
}

#[test]
fn the_guest_reads_and_writes_a_host_directory() {
    let t = tree();
    let host = &t.jail;
    fs::create_dir(host.join("from-host")).unwrap();
    fs::write(host.join("from-host/note"), "written on the host\n").unwrap();
    let mut k = Kern::spawn(&t.home, "rw", &[&format!("hostfs={}", host.display())]);
    assert!(k.shell("cat /proc/filesystems").contains("nodev\thostfs\n"));
    assert_eq!(k.shell("mount none /mnt -t hostfs"), "");
    assert!(
        k.shell("cat /proc/mounts")
            .contains("none /mnt hostfs rw 0 0\n"),
        "{}",
        k.output()
    );
    assert_eq!(k.shell("cat /mnt/from-host/note"), "written on the host\n");
    assert_eq!(k.shell("mkdir /mnt/made"), "");
    assert_eq!(k.shell("echo from the guest > /mnt/made/file"), "");
    assert_eq!(k.shell("echo second line >> /mnt/made/file"), "");
    assert_eq!(k.shell("ln -s file /mnt/made/link"), "");
    assert_eq!(k.shell("mv /mnt/from-host/note /mnt/made/moved"), "");
    assert_eq!(k.shell("echo doomed > /mnt/made/doomed"), "");
    assert_eq!(k.shell("rm /mnt/made/doomed"), "");
    assert_eq!(
        fs::read_to_string(host.join("made/file")).unwrap(),
        "from the guest\nsecond line\n"
    );
    assert_eq!(
        fs::read_link(host.join("made/link")).unwrap(),
        Path::new("file")
    );
    assert_eq!(
        fs::read_to_string(host.join("made/moved")).unwrap(),
        "written on the host\n"
    );
    assert!(!host.join("from-host/note").exists());
    assert!(!host.join("made/doomed").exists());
    // Files the guest made belong to the user running the kernel.
    let me = nix::unistd::geteuid().as_raw();
    assert_eq!(fs::metadata(host.join("made/file")).unwrap().uid(), me);
    let ls = k.shell("ls -l /mnt/made");
    let lines: Vec<&str> = ls.lines().collect();
    assert_eq!(lines.len(), 3, "{ls}");
    assert!(
        lines[0].starts_with("-rw-r--r--") && lines[0].ends_with(" file"),
        "{ls}"
    );
    assert!(lines[0].contains(&format!(" {me} ")), "{ls}");
    assert!(lines[0].contains(" 27 "), "size of file: {ls}");
    assert!(
        lines[1].starts_with("lrwxrwxrwx") && lines[1].ends_with(" link -> file"),
        "{ls}"
    );
    assert!(lines[2].ends_with(" moved"), "{ls}");
    assert_eq!(
        k.shell("cat /mnt/made/link"),
        "from the guest\nsecond line\n"
    );
    // A file the host writes meanwhile is seen at once.
    fs::write(host.join("made/late"), "late\n").unwrap();
    assert_eq!(k.shell("cat /mnt/made/late"), "late\n");
    // df reports the host filesystem's size.
    let df = k.shell("df");
    let line = df
        .lines()
        .find(|l| l.ends_with(" /mnt"))
        .unwrap_or_else(|| panic!("no /mnt in df:\n{df}"));
    let total: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    let st = nix::sys::statvfs::statvfs(host.as_path()).unwrap();
    let want = st.blocks() * st.fragment_size() / 1024;
    assert_eq!(total, want, "df: {line}");
    assert_eq!(k.shell("umount /mnt"), "");
    // Without the switch, -o names any host directory.
    k.halt();
    let mut k = Kern::spawn(&t.home, "rw2", &[]);
    assert_eq!(
        k.shell(&format!("mount none /mnt -t hostfs -o {}", host.display())),
        ""
    );
    assert_eq!(k.shell("cat /mnt/made/moved"), "written on the host\n");
    k.halt();
}

#[test]
fn the_confinement_holds_against_dotdot_and_planted_symlinks() {
    let t = tree();
    let before = snapshot(&t.outside);
    let abs = t.outside.join("marker");
    symlink(&abs, t.jail.join("abs")).unwrap();
    symlink("../outside/marker", t.jail.join("rel")).unwrap();
    symlink(&t.outside, t.jail.join("dirlink")).unwrap();
    fs::create_dir(t.jail.join("sub")).unwrap();
    symlink("../../outside", t.jail.join("sub/up")).unwrap();
    let mut k = Kern::spawn(&t.home, "conf", &[&format!("hostfs={}", t.jail.display())]);
    for o in ["/../outside", "../outside", "sub/up", "dirlink"] {
        let out = k.shell(&format!("mount none /mnt -t hostfs -o {o}"));
        assert!(
            out.starts_with("mount: mounting none on /mnt failed: hostfs: "),
            "-o {o} mounted: {out}"
        );
    }
    assert_eq!(k.shell("mount none /mnt -t hostfs -o /sub"), "");
    assert_eq!(k.shell("umount /mnt"), "");
    assert_eq!(k.shell("mount none /mnt -t hostfs"), "");
    // The planted links are symlinks to their host targets, shown as such.
    let ls = k.shell("ls -l /mnt");
    assert!(ls.contains(&format!("abs -> {}", abs.display())), "{ls}");
    let mut seen = ls;
    for p in [
        "/mnt/abs",
        "/mnt/rel",
        "/mnt/dirlink/marker",
        "/mnt/sub/up/marker",
        "/mnt/../outside/marker",
        "/mnt/sub/../../outside/marker",
    ] {
        seen += &k.shell(&format!("cat {p}"));
        seen += &k.shell(&format!("echo pwned > {p}"));
        seen += &k.shell(&format!("echo pwned >> {p}"));
        seen += &k.shell(&format!("rm {p}"));
    }
    // Links the guest makes mean guest paths too.
    seen += &k.shell("ln -s ../outside /mnt/mine");
    seen += &k.shell("cat /mnt/mine/marker");
    seen += &k.shell("ls -l /mnt /mnt/sub /mnt/dirlink/");
    assert!(!seen.contains(MARKER), "the guest read outside:\n{seen}");
    // rm took the links themselves, not what they point at.
    assert!(fs::symlink_metadata(t.jail.join("abs")).is_err());
    assert!(fs::symlink_metadata(t.jail.join("rel")).is_err());
    assert_eq!(snapshot(&t.outside), before, "outside was changed");
    k.halt();
    assert!(!k.output().contains(MARKER), "{}", k.output());
}

/// A host thread exchanges a directory the guest walks with a symlink to outside, and a
/// file in it with a symlink to a marker outside, as fast as it can while the guest
/// reads, appends and lists through them.
#[test]
fn symlinks_swapped_in_by_the_host_during_walks_never_let_the_guest_out() {
    let t = tree();
    let before = snapshot(&t.outside);
    let d = t.jail.join("d");
    fs::create_dir(&d).unwrap();
    fs::write(d.join("secret"), "inside\n").unwrap();
    fs::write(d.join("f"), "inside-f\n").unwrap();
    symlink(t.outside.join("f"), d.join("flink")).unwrap();
    symlink(&t.outside, t.jail.join("swap")).unwrap();
    let mut k = Kern::spawn(&t.home, "race", &[&format!("hostfs={}", t.jail.display())]);
    assert_eq!(k.shell("mount none /mnt -t hostfs"), "");

    let stop = Arc::new(AtomicBool::new(false));
    let swaps = Arc::new(AtomicU32::new(0));
    let flipper = {
        let (stop, swaps, jail) = (stop.clone(), swaps.clone(), t.jail.clone());
        thread::spawn(move || {
            let jfd = fs::File::open(&jail).unwrap();
            // The real directory, wherever its name is: never through the symlink.
            let dfd = fs::File::open(jail.join("d")).unwrap();
            while !stop.load(Ordering::Relaxed) {
                let a = renameat2(
                    jfd.as_fd(),
                    "d",
                    jfd.as_fd(),
                    "swap",
                    RenameFlags::RENAME_EXCHANGE,
                );
                let b = renameat2(
                    dfd.as_fd(),
                    "f",
                    dfd.as_fd(),
                    "flink",
                    RenameFlags::RENAME_EXCHANGE,
                );
                if a.is_ok() && b.is_ok() {
                    swaps.fetch_add(1, Ordering::Relaxed);
                }
                // Each state lasts about as long as a guest walk, so walks see both and
                // many are cut by a swap.
                thread::sleep(Duration::from_micros(100));
            }
        })
    };
    let round = "cat /mnt/d/secret\ncat /mnt/d/f\necho guest >> /mnt/d/f\n\
                 echo guest >> /mnt/d/secret\nls /mnt/d\nls -l /mnt/d/f";
    let mut seen = String::new();
    for _ in 0..20 {
        let batch = vec![round; 25].join("\n");
        seen += &k.shell(&batch);
    }
    stop.store(true, Ordering::Relaxed);
    flipper.join().unwrap();

    assert!(!seen.contains(MARKER), "the guest read outside:\n{seen}");
    assert_eq!(snapshot(&t.outside), before, "outside was changed");
    // The race was run: the host swapped many times, and the guest saw both the real
    // directory and the swapped-in link.
    let swaps = swaps.load(Ordering::Relaxed);
    assert!(swaps > 100, "only {swaps} swaps");
    let inside = seen
        .lines()
        .filter(|l| *l == "inside" || *l == "inside-f")
        .count();
    let refused = seen
        .lines()
        .filter(|l| l.starts_with("cat: /mnt/d/"))
        .count();
    eprintln!("{swaps} swaps, {inside} reads inside, {refused} refused");
    assert!(
        inside > 0 && refused > 0,
        "{inside} reads inside, {refused} refused: the race did not happen\n{seen}"
    );
    k.halt();
}

#[test]
fn append_mode_refuses_truncation_and_unlink_and_allows_appends() {
    let t = tree();
    let h = &t.jail;
    fs::write(h.join("log"), "first\n").unwrap();
    fs::write(h.join("other"), "other\n").unwrap();
    fs::create_dir(h.join("dir")).unwrap();
    let mut k = Kern::spawn(&t.home, "app", &[&format!("hostfs={},append", h.display())]);
    assert_eq!(k.shell("mount none /mnt -t hostfs"), "");
    assert_eq!(k.shell("echo appended >> /mnt/log"), "");
    assert_eq!(
        fs::read_to_string(h.join("log")).unwrap(),
        "first\nappended\n"
    );
    for (cmd, want) in [
        (
            "echo truncated > /mnt/log",
            "sh: can't create /mnt/log: Operation not permitted\n",
        ),
        (
            "rm /mnt/log",
            "rm: can't remove '/mnt/log': Operation not permitted\n",
        ),
        (
            "mv /mnt/other /mnt/log",
            "mv: can't rename '/mnt/other': Operation not permitted\n",
        ),
        (
            "rmdir /mnt/dir",
            "rmdir: /mnt/dir: Operation not permitted\n",
        ),
    ] {
        assert_eq!(k.shell(cmd), want, "{cmd}");
    }
    assert_eq!(
        fs::read_to_string(h.join("log")).unwrap(),
        "first\nappended\n"
    );
    assert_eq!(fs::read_to_string(h.join("other")).unwrap(), "other\n");
    assert!(h.join("dir").is_dir());
    // New files may be made, and appended to.
    assert_eq!(k.shell("echo new > /mnt/new"), "");
    assert_eq!(k.shell("echo more >> /mnt/new"), "");
    assert_eq!(fs::read_to_string(h.join("new")).unwrap(), "new\nmore\n");
    k.halt();
}

#[test]
fn the_root_on_hostfs_boots_the_built_in_shell_on_the_host_directory() {
    let t = tree();
    let root = t.jail.join("root");
    for d in ["dev", "proc", "tmp", "etc"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    fs::write(root.join("etc/motd"), "a root on the host\n").unwrap();
    let flags = format!("rootflags={}", root.display());
    let mut k = Kern::spawn(
        &t.home,
        "hroot",
        &["root=/dev/root", "rootfstype=hostfs", &flags],
    );
    assert!(
        k.output()
            .contains("VFS: Mounted root (hostfs filesystem)."),
        "{}",
        k.output()
    );
    assert!(
        !k.output().contains("Unknown kernel command line"),
        "{}",
        k.output()
    );
    assert_eq!(k.shell("ls /"), "dev\netc\nproc\ntmp\n");
    assert_eq!(k.shell("cat /etc/motd"), "a root on the host\n");
    assert!(k
        .shell("cat /proc/mounts")
        .starts_with("/dev/root / hostfs rw 0 0\n"));
    assert_eq!(k.shell("echo made in the guest > /tmp/new"), "");
    assert_eq!(
        fs::read_to_string(root.join("tmp/new")).unwrap(),
        "made in the guest\n"
    );
    // /dev is the kernel's, mounted over the host directory's (which stays empty).
    assert!(k.shell("ls /dev").contains("null\n"));
    k.halt();
    assert_eq!(fs::read_dir(root.join("dev")).unwrap().count(), 0);

    // Under hostfs=DIR, rootflags= is relative to DIR, and cannot leave it.
    let confine = format!("hostfs={}", t.jail.display());
    let mut k = Kern::spawn(
        &t.home,
        "hroot2",
        &["rootfstype=hostfs", "rootflags=/root", "ro", &confine],
    );
    assert!(
        k.output()
            .contains("VFS: Mounted root (hostfs filesystem) readonly."),
        "{}",
        k.output()
    );
    assert_eq!(k.shell("cat /etc/motd"), "a root on the host\n");
    assert!(k
        .shell("echo x > /tmp/ro")
        .contains("Read-only file system"));
    k.halt();
    let mut k = Kern::spawn(
        &t.home,
        "hroot3",
        &["rootfstype=hostfs", "rootflags=/../outside", &confine],
    );
    assert!(
        k.output().contains(&format!(
            "hostfs: '/../outside' is outside the hostfs={} directory",
            t.jail.display()
        )),
        "{}",
        k.output()
    );
    assert!(
        k.output()
            .contains("running the built-in shell on an empty tmpfs root"),
        "{}",
        k.output()
    );
    assert!(!k.shell("ls /").contains("marker"));
    k.halt();
}

#[test]
fn a_bad_rootflags_is_refused_with_a_clear_message() {
    let t = tree();
    let image = t.home.join("root.img");
    GuestImage::build(&image, "#!/bin/sh\npoweroff -f\n");
    let before = fingerprint(&image);
    let mut k = Kern::spawn(&t.home, "badflags", &["ubd0=root.img", "rootflags=bogus"]);
    let out = k.output();
    assert!(
        out.contains("EXT2-fs (ubda): error: unrecognized mount option \"bogus\" or missing value"),
        "{out}"
    );
    assert!(
        out.contains("VFS: Cannot open root device \"ubda\" or unknown-block(98:0): error -22"),
        "{out}"
    );
    assert_eq!(k.shell("ls /"), "dev\nmnt\nproc\ntmp\n");
    k.halt();
    assert_eq!(fingerprint(&image), before);

    // ro and rw are ext2's to take.
    let mut k = Kern::spawn(&t.home, "roflags", &["ubd0=root.img", "rootflags=ro"]);
    assert!(
        k.output()
            .contains("VFS: Mounted root (ext2 filesystem) readonly on device 98:0."),
        "{}",
        k.output()
    );
    k.halt();
    assert_eq!(fingerprint(&image), before);

    // A hostfs root whose directory is missing.
    let mut k = Kern::spawn(
        &t.home,
        "nohost",
        &["rootfstype=hostfs", "rootflags=/nonexistent/uml-root"],
    );
    let out = k.output();
    assert!(
        out.contains(
            "hostfs: cannot open host directory '/nonexistent/uml-root': No such file or directory"
        ),
        "{out}"
    );
    assert!(
        out.contains("VFS: Cannot open root device \"root\" or unknown-block(0,0): error -2"),
        "{out}"
    );
    k.halt();

    // A bad hostfs= switch stops the boot, naming it.
    let out = tests::run(
        KernelRun::command(&our_bin("uml-kernel"), "badsw", &["hostfs=/tmp,bogus"])
            .env("HOME", &t.home),
        LIMIT,
    );
    assert!(!out.success(), "{out:?}");
    assert!(
        (out.stdout.clone() + &out.stderr).contains("hostfs=/tmp,bogus: unknown option 'bogus'"),
        "{out:?}"
    );
}

#[test]
fn files_made_by_an_unprivileged_kernel_belong_to_its_user() {
    require_root("running the kernel as uid 65534 with setpriv");
    let t = tree();
    let nobody = nix::unistd::Uid::from_raw(65534);
    let nogroup = nix::unistd::Gid::from_raw(65534);
    nix::unistd::chown(t.jail.as_path(), Some(nobody), Some(nogroup)).unwrap();
    nix::unistd::chown(t.home.as_path(), Some(nobody), Some(nogroup)).unwrap();
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(our_bin("uml-kernel"))
        .arg("umid=nobody")
        .arg(format!("hostfs={}", t.jail.display()))
        .current_dir(&t.home);
    let mut k = Kern::start(cmd, &t.home, "nobody");
    assert_eq!(k.shell("mount none /mnt -t hostfs"), "");
    assert_eq!(k.shell("mkdir /mnt/d"), "");
    assert_eq!(k.shell("echo mine > /mnt/d/f"), "");
    for p in ["d", "d/f"] {
        let m = fs::metadata(t.jail.join(p)).unwrap();
        assert_eq!((m.uid(), m.gid()), (65534, 65534), "{p}");
    }
    // The outside files are root's and stay so.
    assert!(k
        .shell("echo x > /mnt/../outside/marker")
        .contains("can't create"));
    k.halt();
}
