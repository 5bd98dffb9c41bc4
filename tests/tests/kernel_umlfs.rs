//! umlfs end to end: uml-kernel serves its own filesystem to the host over FUSE. Our
//! uml_mount mounts a running uml-kernel's tree (an ext2 root disk, or the tmpfs root)
//! in a private mount namespace; the host reads what the guest's shell wrote, writes,
//! makes, moves, links, removes and chmods/chowns files that the guest's shell then
//! sees; `ls -ln` on the host and the guest's `ls -l` agree on modes, owners and sizes.
//! A halt (the guest's own, or mconsole's) ends the connection: the host's mount then
//! answers ENOTCONN and unmounts, nothing hangs. `umlfs` without a descriptor, with
//! one that is not /dev/fuse, or with an unmounted one, answers ERR. Host users other
//! than root (through `-o allow_other`) get the guest's permissions.
#![allow(clippy::unwrap_used)] // a test that unwraps fails with the error shown

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tests::ext2tree::e2fsck_clean;
use tests::{our_bin, require_root, run, scratch, GuestImage, KernelRun, MountNs, Output};
use uml_proto::mconsole::{Client, Timeouts};

const LIMIT: Duration = Duration::from_secs(20);

/// A guest kernel with a shell on its console, and a mount namespace for the host side.
struct Setup {
    k: KernelRun,
    ns: MountNs,
    mnt: PathBuf,
    home: PathBuf,
    /// End marks typed so far.
    marks: u32,
}

/// PATH with our binaries first (uml_mount runs our uml_mconsole).
fn our_path() -> String {
    format!(
        "{}:{}",
        our_bin("uml_mconsole").parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

impl Setup {
    /// Boots uml-kernel `umid` with `args` in `dir` (its built-in shell on the console),
    /// and makes the mount point.
    fn boot(dir: &Path, umid: &str, args: &[String]) -> Setup {
        let mut s = Self::start(dir, umid, args);
        // (the boot messages may still be on their way)
        assert!(s.guest("echo booted").ends_with("booted\n"));
        s
    }

    /// Starts uml-kernel `umid` with `args` in `dir`, and makes the mount point.
    fn start(dir: &Path, umid: &str, args: &[String]) -> Setup {
        let home = dir.join("home");
        let cmd = KernelRun::command(&our_bin("uml-kernel"), umid, args);
        let k = KernelRun::start(cmd, &home, umid);
        k.wait_socket(LIMIT);
        let mnt = dir.join("mnt");
        fs::create_dir_all(&mnt).unwrap();
        Setup {
            k,
            ns: MountNs::new(),
            mnt,
            home,
            marks: 0,
        }
    }

    /// `uml_mount UMID MNT [extra...]` in the namespace.
    fn mount(&self, extra: &[&str]) -> Output {
        let mut cmd = self.ns.command(our_bin("uml_mount"));
        cmd.arg(&self.k.umid)
            .arg(&self.mnt)
            .args(extra)
            .env("HOME", &self.home)
            .env("PATH", our_path());
        run(&mut cmd, LIMIT)
    }

    fn mount_ok(&self, extra: &[&str]) {
        let start = Instant::now();
        let out = self.mount(extra);
        assert!(
            out.success(),
            "uml_mount failed: {out:?}\n{}",
            self.k.output()
        );
        assert!(
            out.stdout.starts_with("OK umlfs: serving / over FUSE 7."),
            "{out:?}"
        );
        assert!(out.stderr.is_empty(), "{out:?}");
        // uml_mount is done once the kernel holds the connection.
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{:?}",
            start.elapsed()
        );
        assert!(self.ns.is_mounted(&self.mnt), "not mounted: {out:?}");
    }

    /// A host shell script in the namespace, with MNT set; panics unless it succeeds.
    fn host(&self, script: &str) -> String {
        let out = self.host_run(script);
        assert!(
            out.success(),
            "host: {script}\n{out:?}\nguest console:\n{}",
            self.k.output()
        );
        out.stdout
    }

    fn host_run(&self, script: &str) -> Output {
        let full = format!("export LC_ALL=C MNT='{}'; {script}", self.mnt.display());
        self.ns.sh(&full, LIMIT)
    }

    /// A guest shell command's output, without prompts and the end mark.
    fn guest(&mut self, cmd: &str) -> String {
        self.marks += 1;
        let mark = format!("umlfs-end-{}\n", self.marks);
        let from = self.k.output().len();
        self.k
            .type_line(&format!("{cmd}\necho {}", mark.trim_end()));
        let Some(raw) = self.k.wait_from(from, &mark, LIMIT) else {
            panic!("`{cmd}` did not finish:\n{}", self.k.output());
        };
        let raw = &raw[..raw.find(&mark).unwrap()];
        let mut out = String::new();
        for line in raw.split_inclusive('\n') {
            let mut line = line;
            while let Some(rest) = line.strip_prefix("# ") {
                line = rest;
            }
            out.push_str(line);
        }
        out
    }

    /// Halts the guest from its console; returns how long it took to exit.
    fn halt_from_console(&mut self) -> Duration {
        let start = Instant::now();
        self.k.type_line("halt");
        let status = self.k.wait_exit(LIMIT);
        assert!(
            status.is_some_and(|s| s.success()),
            "no clean halt: {status:?}\n{}",
            self.k.output()
        );
        start.elapsed()
    }

    /// After the guest went down: the host's mount answers ENOTCONN at once, and
    /// unmounts.
    fn assert_disconnected(&self) {
        let start = Instant::now();
        let out = self.host_run("ls \"$MNT\"; stat \"$MNT/tmp\"");
        assert!(!out.success(), "the mount still answers: {out:?}");
        assert!(
            out.stderr.contains("Transport endpoint is not connected"),
            "{out:?}"
        );
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
        self.host("umount \"$MNT\"");
        assert!(!self.ns.is_mounted(&self.mnt), "still mounted after umount");
    }
}

/// `ls -l` lines as (mode, uid, gid, size) by name, from the host's `ls -ln` or the
/// guest's `ls -l` (which shows numbers): the columns they share.
fn listing(text: &str) -> BTreeMap<String, (String, String, String, String)> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 9 || f[0] == "total" {
            continue;
        }
        let mode = f[0].trim_end_matches(['.', '+']).to_string();
        // Device nodes show "major, minor" where the size is.
        let (size, name_at) = if f[4].ends_with(',') {
            (format!("{} {}", f[4], f[5]), 9)
        } else {
            (f[4].to_string(), 8)
        };
        let name = f[name_at..].join(" ");
        let name = name.split(" -> ").next().unwrap().to_string();
        out.insert(name, (mode, f[2].to_string(), f[3].to_string(), size));
    }
    out
}

fn image(dir: &Path) -> PathBuf {
    let path = dir.join("root.img");
    GuestImage::build_with(
        &path,
        "#!/bin/sh\nexec sh\n",
        32,
        &[
            ("etc/motd", b"guest motd\n", 0o644),
            ("etc/secret", b"root only\n", 0o600),
        ],
    );
    path
}

#[test]
fn the_hosts_view_of_an_ext2_root_is_the_guests() {
    require_root("the umlfs tests (FUSE mounts)");
    let dir = scratch();
    let img = image(dir.path());
    let mut s = Setup::boot(dir.path(), "fs", &[format!("ubd0={}", img.display())]);
    assert_eq!(s.guest("echo written by the guest > /tmp/g.txt"), "");
    s.mount_ok(&[]);

    // The host reads what the guest wrote and what the disk held.
    assert_eq!(s.host("cat \"$MNT/tmp/g.txt\""), "written by the guest\n");
    assert_eq!(s.host("cat \"$MNT/etc/motd\""), "guest motd\n");
    // (an absolute symlink like /bin/sh points into the host's tree, as on any mount)
    assert_eq!(
        s.host("head -c 4 \"$MNT/bin/busybox\" | od -An -tx1"),
        " 7f 45 4c 46\n"
    );

    // The host writes, makes, moves, links, changes modes and owners, removes ...
    s.host(
        "set -e; cd \"$MNT/tmp\"; echo written by the host > h.txt; mkdir newdir; \
         mv h.txt newdir/moved.txt; ln -s newdir/moved.txt link; ln newdir/moved.txt hard; \
         chmod 640 newdir/moved.txt; chown 1000:100 newdir/moved.txt; chmod 710 newdir; \
         rm g.txt; mkdir gone; rmdir gone; printf 'appended\\n' >> hard",
    );
    // ... and the guest's shell sees it all.
    assert_eq!(
        s.guest("cat /tmp/link"),
        "written by the host\nappended\n",
        "guest console:\n{}",
        s.k.output()
    );
    assert_eq!(
        s.guest("cat /tmp/g.txt"),
        "cat: /tmp/g.txt: No such file or directory\n"
    );
    let guest_tmp = s.guest("ls -l /tmp");
    assert!(
        guest_tmp.contains(" link -> newdir/moved.txt\n"),
        "{guest_tmp}"
    );
    assert!(!guest_tmp.contains("gone"), "{guest_tmp}");
    let moved = s.guest("ls -l /tmp/newdir");
    assert!(
        moved.starts_with("-rw-r-----    2 1000     100              29 "),
        "{moved}"
    );

    // Modes, owners and sizes: the host's `ls -ln` and the guest's `ls -l` agree.
    for d in ["/", "/tmp", "/tmp/newdir", "/etc", "/bin", "/dev"] {
        let theirs = listing(&s.guest(&format!("ls -l {d}")));
        let ours = listing(&s.host(&format!("ls -ln \"$MNT{d}\"")));
        assert!(theirs.len() > 1 || d == "/tmp/newdir", "{d}: {theirs:?}");
        assert_eq!(ours, theirs, "{d}: host (left) and guest (right) disagree");
    }
    // The guest's root-only file is root's on the host too.
    assert_eq!(
        listing(&s.host("ls -ln \"$MNT/etc/secret\""))
            .values()
            .next()
            .unwrap()
            .0,
        "-rw-------"
    );

    // The guest changes a file the host has open: the host reads the new bytes.
    let reader =
        s.ns.command("sh")
            .args([
                "-c",
                "exec 3<\"$1\"; read first <&3; echo \"$first\"; sleep 2; cat <&3",
                "sh",
            ])
            .arg(s.mnt.join("tmp/newdir/moved.txt"))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(s.guest("echo rewritten by the guest >> /tmp/hard"), "");
    let out = reader.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "written by the host\nappended\nrewritten by the guest\n"
    );

    // Halt with the mount in place: the host's mount is cut off, nothing hangs.
    let took = s.halt_from_console();
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(
        s.k.output()
            .contains("umlfs: connection 0 closed: the guest is going down"),
        "{}",
        s.k.output()
    );
    s.assert_disconnected();

    // What the host wrote is on the disk, which is clean.
    e2fsck_clean(&img, "the root disk after umlfs writes");
    let cat = run(
        Command::new("debugfs")
            .args(["-R", "cat /tmp/newdir/moved.txt"])
            .arg(&img),
        LIMIT,
    );
    assert_eq!(
        cat.stdout,
        "written by the host\nappended\nrewritten by the guest\n"
    );
}

#[test]
fn mconsole_halt_ends_a_busy_connection() {
    require_root("the umlfs tests (FUSE mounts)");
    let dir = scratch();
    let mut s = Setup::boot(dir.path(), "busy", &[]);
    s.mount_ok(&[]);
    s.host("echo data > \"$MNT/tmp/busy\"");
    // A host process holds a file open on the mount while the guest goes down.
    let mut holder =
        s.ns.command("sh")
            .args(["-c", "exec 3<\"$1\"; exec sleep 60", "sh"])
            .arg(s.mnt.join("tmp/busy"))
            .spawn()
            .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(s.guest("cat /tmp/busy"), "data\n");
    let start = Instant::now();
    let out = run(
        Command::new(our_bin("uml_mconsole"))
            .args([&s.k.umid, "halt"])
            .env("HOME", &s.home),
        LIMIT,
    );
    assert!(out.success(), "{out:?}");
    let status = s.k.wait_exit(LIMIT);
    assert!(status.is_some_and(|st| st.success()), "{status:?}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    let gone = s.host_run("cat \"$MNT/tmp/busy\"");
    assert!(
        gone.stderr.contains("Transport endpoint is not connected"),
        "{gone:?}"
    );
    let _ = holder.kill();
    let _ = holder.wait();
    s.assert_disconnected();
}

#[test]
fn umlfs_without_a_fuse_descriptor_answers_err() {
    require_root("the umlfs tests (FUSE mounts)");
    let dir = scratch();
    let mut s = Setup::boot(dir.path(), "err", &[]);
    // No descriptor at all.
    let mut client = Client::new(&s.k.socket(), Timeouts::new(Duration::from_secs(5))).unwrap();
    let r = client.request(b"umlfs 5").unwrap();
    assert_eq!(r.err, 1);
    assert_eq!(
        String::from_utf8_lossy(&r.text),
        "umlfs: no file descriptor came with the request (uml_mount sends /dev/fuse with it)"
    );
    // A descriptor that is not /dev/fuse, and a /dev/fuse that is not mounted.
    let with_fd = |open: &str| {
        run(
            Command::new("sh")
                .args(["-c", &format!("{open}; exec \"$@\""), "sh"])
                .arg(our_bin("uml_mconsole"))
                .args([&s.k.umid, "umlfs", "7"])
                .env("HOME", &s.home),
            LIMIT,
        )
    };
    let null = with_fd("exec 7</dev/null");
    assert_eq!(
        null.stdout,
        "ERR umlfs: the descriptor is not a FUSE device (/dev/fuse) but character device 1:3\n",
        "{null:?}"
    );
    assert_eq!(null.code, Some(1));
    let file = with_fd("exec 7</etc/hostname");
    assert!(
        file.stdout
            .starts_with("ERR umlfs: the descriptor is not a FUSE device"),
        "{file:?}"
    );
    let unmounted = with_fd("exec 7<>/dev/fuse");
    assert_eq!(
        unmounted.stdout, "ERR umlfs: the FUSE descriptor is not mounted\n",
        "{unmounted:?}"
    );
    // The kernel carries on, and a real hand-over still works afterwards.
    assert_eq!(s.guest("echo still here"), "still here\n");
    s.mount_ok(&[]);
    assert!(s.host("ls \"$MNT\"").contains("tmp\n"));
    // A second mount of the same guest is served too, and sees the same files.
    let second = dir.path().join("mnt2");
    fs::create_dir_all(&second).unwrap();
    let mut cmd = s.ns.command(our_bin("uml_mount"));
    cmd.arg(&s.k.umid)
        .arg(&second)
        .env("HOME", &s.home)
        .env("PATH", our_path());
    let out = run(&mut cmd, LIMIT);
    assert!(out.stdout.contains("(connection 1)"), "{out:?}");
    s.host(&format!(
        "echo both > \"$MNT/tmp/both\"; cat '{}/tmp/both'",
        second.display()
    ));
    // Unmounting one on the host ends that connection only.
    s.host(&format!("umount '{}'", second.display()));
    assert!(
        s.k.wait_from(0, "umlfs: connection 1 ended", LIMIT)
            .is_some(),
        "{}",
        s.k.output()
    );
    assert_eq!(s.host("cat \"$MNT/tmp/both\""), "both\n");
    s.halt_from_console();
    s.assert_disconnected();
}

/// The attack: host users other than root, let in with `-o allow_other`, try to read
/// the guest's root-only file and to write into its root-owned directories. They get
/// the guest's answer (EACCES) and the guest's files are unchanged.
#[test]
fn other_host_users_get_the_guests_permissions() {
    require_root("the umlfs tests (FUSE mounts)");
    let dir = scratch();
    let img = image(dir.path());
    let mut s = Setup::boot(dir.path(), "perm", &[format!("ubd0={}", img.display())]);
    s.mount_ok(&["-o", "allow_other"]);
    let nobody = "setpriv --reuid=65534 --regid=65534 --clear-groups";
    let read = s.host_run(&format!("{nobody} cat \"$MNT/etc/secret\""));
    assert!(
        !read.success() && read.stderr.contains("Permission denied"),
        "{read:?}"
    );
    let write = s.host_run(&format!("{nobody} sh -c 'echo evil > \"$MNT/etc/evil\"'"));
    assert!(write.stderr.contains("Permission denied"), "{write:?}");
    let clobber = s.host_run(&format!("{nobody} sh -c 'echo evil > \"$MNT/etc/motd\"'"));
    assert!(clobber.stderr.contains("Permission denied"), "{clobber:?}");
    let rm = s.host_run(&format!("{nobody} rm -f \"$MNT/etc/motd\""));
    assert!(rm.stderr.contains("Permission denied"), "{rm:?}");
    let chmod = s.host_run(&format!("{nobody} chmod 666 \"$MNT/etc/secret\""));
    assert!(
        chmod.stderr.contains("Operation not permitted"),
        "{chmod:?}"
    );
    // Where the guest lets anyone write (its /tmp, made so by root from the host), the
    // file is nobody's in the guest; root's file there stays out of nobody's reach.
    s.host("chmod 1777 \"$MNT/tmp\"; echo root > \"$MNT/tmp/roots\"");
    let sticky = s.host_run(&format!("{nobody} rm -f \"$MNT/tmp/roots\""));
    assert!(
        sticky.stderr.contains("Operation not permitted"),
        "{sticky:?}"
    );
    s.host(&format!(
        "{nobody} sh -c 'echo mine > \"$MNT/tmp/nobodys\"'"
    ));
    let tmp = s.guest("ls -l /tmp");
    let l = listing(&tmp);
    assert_eq!(
        l.get("nobodys").map(|e| e.1.as_str()),
        Some("65534"),
        "{tmp}"
    );
    // The guest's files are as they were.
    assert_eq!(s.guest("cat /etc/motd /tmp/roots"), "guest motd\nroot\n");
    assert_eq!(
        s.guest("cat /etc/evil"),
        "cat: /etc/evil: No such file or directory\n"
    );
    let etc = listing(&s.guest("ls -l /etc"));
    assert_eq!(etc["secret"].0, "-rw-------");
    s.halt_from_console();
    s.assert_disconnected();
}

/// `stop` pauses the guest, umlfs included: a host `ls` on the mount waits until `go`,
/// while mconsole keeps answering. A reboot cuts the mount off like a halt, and the
/// rebooted guest can be mounted again.
#[test]
fn stop_pauses_umlfs_and_reboot_ends_it() {
    require_root("the umlfs tests (FUSE mounts)");
    let dir = scratch();
    let mut s = Setup::boot(dir.path(), "stop", &[]);
    s.mount_ok(&[]);
    s.host("echo before > \"$MNT/tmp/f\"");
    let mconsole = |s: &Setup, cmd: &str| {
        run(
            Command::new(our_bin("uml_mconsole"))
                .args([&s.k.umid, cmd])
                .env("HOME", &s.home),
            LIMIT,
        )
    };
    assert!(mconsole(&s, "stop").success());
    let mut waiting =
        s.ns.command("cat")
            .arg(s.mnt.join("tmp/f"))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        waiting.try_wait().unwrap().is_none(),
        "the host read went through while the guest was stopped"
    );
    let start = Instant::now();
    let v = mconsole(&s, "version");
    assert!(v.success(), "{v:?}");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert!(mconsole(&s, "go").success());
    let (status, timed_out) = tests::command::wait_bounded(&mut waiting, LIMIT);
    assert!(!timed_out && status.success(), "{status:?}");
    let mut out = String::new();
    std::io::Read::read_to_string(&mut waiting.stdout.take().unwrap(), &mut out).unwrap();
    assert_eq!(out, "before\n");

    // Reboot: the old mount is cut off; the new guest serves a new one.
    assert!(mconsole(&s, "reboot").success());
    let start = Instant::now();
    while s.k.output().matches("Run the built-in shell").count() < 2 {
        assert!(start.elapsed() < LIMIT, "no reboot:\n{}", s.k.output());
        std::thread::sleep(Duration::from_millis(5));
    }
    s.k.wait_socket(LIMIT);
    s.assert_disconnected();
    s.mount_ok(&[]);
    s.host("echo after > \"$MNT/tmp/f2\"");
    assert_eq!(s.guest("cat /tmp/f2"), "after\n");
    s.halt_from_console();
    s.assert_disconnected();
}

/// The root disk's own programs (busybox under the sentry, `init=/sbin/init`) and the
/// host share the files: the host reads what a guest program wrote, a guest program
/// waits for the host's file and shows its contents, owner and mode, then powers the
/// guest off with the mount in place.
#[test]
fn guest_programs_and_the_host_share_files() {
    require_root("the umlfs tests (FUSE mounts)");
    let dir = scratch();
    let path = dir.path().join("root.img");
    let init = "#!/bin/sh\n\
        echo 'written by busybox' > /tmp/prog.txt\n\
        echo UMLFS-READY\n\
        i=0\n\
        while [ ! -f /tmp/from-host ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done\n\
        echo \"GOT: $(cat /tmp/from-host)\"\n\
        ls -ln /tmp/from-host | awk '{print \"OWNER:\", $1, $3, $4}'\n\
        poweroff -f\n";
    GuestImage::build(&path, init);
    let args: Vec<String> = [
        format!("ubd0={}", path.display()),
        "root=/dev/ubda".into(),
        "rw".into(),
        "init=/sbin/init".into(),
        "con0=fd:0,fd:1".into(),
        "con=null".into(),
    ]
    .into();
    let mut s = Setup::start(dir.path(), "prog", &args);
    assert!(
        s.k.wait_from(0, "UMLFS-READY", LIMIT).is_some(),
        "{}",
        s.k.output()
    );
    s.mount_ok(&[]);
    assert_eq!(s.host("cat \"$MNT/tmp/prog.txt\""), "written by busybox\n");
    // Made under another name and moved into place, so the guest sees it whole.
    s.host(
        "set -e; cd \"$MNT/tmp\"; echo from the host > .new; chown 1000:100 .new; \
         chmod 640 .new; mv .new from-host",
    );
    let status = s.k.wait_exit(LIMIT);
    assert!(
        status.is_some_and(|st| st.success()),
        "{status:?}\n{}",
        s.k.output()
    );
    // The guest tty ends lines with CR LF (ONLCR).
    let console = s.k.output().replace('\r', "");
    assert!(console.contains("GOT: from the host\n"), "{console}");
    assert!(
        console.contains("OWNER: -rw-r----- 1000 100\n"),
        "{console}"
    );
    s.assert_disconnected();
    e2fsck_clean(&path, "the root disk after busybox and umlfs");
}
