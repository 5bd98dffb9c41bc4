//! Acceptance tests for uml-kernel: the mconsole server against our uml_mconsole and the
//! C client, stop/go freezing the guest shell, halt timing, COW files shared with
//! linux.uml, uml_mkcow and the C uml_moo, image locking between two kernels, consoles
//! (pipe, pty, pseudo-terminal), notifications, reboot, and a table of bad command lines.
#![allow(clippy::unwrap_used)] // a test that unwraps fails with the error shown

use std::fs;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tests::pty::PtySession;
use tests::{c_tool, fingerprint, our_bin, run, scratch, GuestImage, KernelRun, Output, Uml};
use uml_proto::cow::{CowFile, CowHeader};
use uml_proto::mconsole::{Notification, NotifyKind};

const LIMIT: Duration = Duration::from_secs(10);

/// A uml-kernel running in the background with its stdin held open (the harness's
/// KernelRun); killed by pid when dropped.
struct Kern(KernelRun);

impl std::ops::Deref for Kern {
    type Target = KernelRun;
    fn deref(&self) -> &KernelRun {
        &self.0
    }
}

impl std::ops::DerefMut for Kern {
    fn deref_mut(&mut self) -> &mut KernelRun {
        &mut self.0
    }
}

impl Kern {
    fn spawn(home: &Path, umid: &str, args: &[&str]) -> Kern {
        Kern::spawn_env(home, umid, args, &[])
    }

    /// Like `spawn`, with extra environment.
    fn spawn_env(
        home: &Path,
        umid: &str,
        args: &[&str],
        env: &[(&str, std::ffi::OsString)],
    ) -> Kern {
        fs::create_dir_all(home).unwrap();
        let mut cmd = KernelRun::command(&our_bin("uml-kernel"), umid, args);
        cmd.current_dir(home).envs(env.iter().map(|(k, v)| (k, v)));
        let k = Kern(KernelRun::start(cmd, home, umid));
        k.wait_socket(LIMIT);
        k
    }

    fn wait_output(&self, text: &str, limit: Duration) -> bool {
        self.wait_from(0, text, limit).is_some()
    }

    /// Our client, one shot.
    fn ours(&self, cmd: &str) -> Output {
        mconsole(&our_bin("uml_mconsole"), &self.home, &self.umid, cmd)
    }
}

fn mconsole(client: &Path, home: &Path, umid: &str, cmd: &str) -> Output {
    run(
        Command::new(client)
            .arg(umid)
            .args(cmd.split(' '))
            .env("HOME", home)
            .current_dir(home),
        LIMIT,
    )
}

fn powered_off(out: &Output) -> bool {
    out.stdout.contains("reboot: System halted") || out.stdout.contains("reboot: Power down")
}

fn sparse_image(path: &Path, mib: u64) {
    let f = fs::File::create(path).unwrap();
    f.set_len(mib << 20).unwrap();
    // Recognisable backing content in sector 2.
    f.write_all_at(b"backing-sector-two", 1024).unwrap();
}

#[test]
fn mconsole_commands_answer_both_clients_like_linux_uml() {
    let Some(c_client) = c_tool("uml_mconsole") else {
        return;
    };
    let dir = scratch();
    let home = dir.path().join("home");
    fs::create_dir_all(&home).unwrap();
    sparse_image(&home.join("disk.img"), 1);
    let k = Kern::spawn(&home, "mc", &["ubd0=disk.img", "con0=fd:0,fd:1"]);
    // (command, OK?, expected C-client exit status, text the output must contain)
    let cases: &[(&str, bool, i32, &str)] = &[
        ("version", true, 0, "OK Linux (none) 6.1.0-uml-kernel"),
        ("versionXYZ", true, 0, "OK Linux"),
        ("config ubd0", true, 0, "OK disk.img"),
        ("config ubd1", true, 0, "OK \n"),
        (
            "config ubd",
            false,
            1,
            "ERR ubd_get_config : device number out of range",
        ),
        ("config ubd16=x", false, 1, "ERR Device number out of range"),
        (
            "config ubd1x=f",
            false,
            234,
            "ERR Expected '=' or flag letter (r, s, c, t or d)",
        ),
        (
            "config ubd1rrrrrrr=f",
            false,
            234,
            "ERR Too many flags specified",
        ),
        (
            "config ubd1d=a,b",
            false,
            234,
            "ERR Can't specify both 'd' and a cow file",
        ),
        (
            "config ubd0=x",
            false,
            240,
            "ERR Device is already configured",
        ),
        (
            "config ubd1=/nonexistent",
            false,
            254,
            "ERR Couldn't determine size of device's file",
        ),
        ("config con0", true, 0, "OK fd:0,fd:1"),
        ("config ssl0", true, 0, "OK none"),
        ("config foo", false, 1, "ERR Bad configuration option"),
        ("remove ubd5", false, 237, "ERR Device doesn't exist"),
        (
            "remove ubd99",
            false,
            1,
            "ERR Invalid device number - must be between 0 and 15",
        ),
        ("remove ubd0", false, 240, "ERR Device is currently open"),
        ("remove foo", false, 1, "ERR Bad remove option"),
        ("proc version", true, 0, "uml-kernel"),
        ("proc meminfo", true, 0, "MemTotal:"),
        ("proc partitions", true, 0, "ubda"),
        ("proc nosuch", false, 1, "ERR Failed to open file"),
        ("proc", false, 1, "ERR Read of file failed"),
        ("sysrq h", true, 0, "OK sysrq: HELP :"),
        ("sysrq m", true, 0, "sysrq: Show Memory"),
        ("sysrq t", true, 0, "sh (con0)"),
        ("sysrq s", true, 0, "Emergency Sync complete"),
        ("sysrq u", true, 0, "Emergency Remount complete"),
        ("stack 1", true, 0, "pid:1"),
        ("stack abc", false, 1, "ERR Please specify a pid"),
        ("stack 999", false, 1, "ERR Couldn't find that pid"),
        ("go", false, 1, "ERR Not stopped"),
        ("frobnicate", false, 1, "ERR Unknown command"),
    ];
    for &(cmd, ok, status, want) in cases {
        let ours = k.ours(cmd);
        let c = mconsole(&c_client, &home, "mc", cmd);
        for (who, out) in [("ours", &ours), ("C", &c)] {
            assert!(
                out.stdout.contains(want),
                "{who} `{cmd}`: want {want:?}, got {out:?}"
            );
            assert_eq!(out.stdout.starts_with("OK"), ok, "{who} `{cmd}`: {out:?}");
        }
        assert_eq!(c.code, Some(status), "C client exit for `{cmd}`: {c:?}");
        // Our client exits 0 on OK and 1 on ERR (its own convention, not the C one).
        assert_eq!(
            ours.code == Some(0),
            ok,
            "our client exit for `{cmd}`: {ours:?}"
        );
        if !cmd.starts_with("proc") && !cmd.starts_with("sysrq") {
            assert_eq!(ours.stdout, c.stdout, "`{cmd}`: the clients disagree");
        }
    }
    // help: the kernel's exact 722-byte text, as both clients print it.
    let help = mconsole(&c_client, &home, "mc", "help");
    assert!(help
        .stdout
        .starts_with("OK Commands: \n    version - Get kernel version \n"));
    assert!(help
        .stdout
        .contains("    stack <pid> - returns the stack of the specified pid\n"));
    let log = k.ours("log hello-from-the-host");
    assert!(log.success() && log.stdout.starts_with("OK"), "{log:?}");
    assert!(k.ours("proc uptime").stdout.starts_with("OK \n"));
    // halt: OK, exit 0 within 100 ms, umid directory gone.
    let mut k = k;
    let sent = Instant::now();
    let h = mconsole(&c_client, &home, "mc", "halt");
    assert_eq!(h.stdout, "OK \n");
    let status = k
        .wait_exit(Duration::from_millis(100) + sent.elapsed())
        .expect("halt within 100 ms");
    assert!(status.success(), "{status:?}");
    assert!(!home.join(".uml/mc").exists(), "umid directory left behind");
    assert!(
        k.output().contains("hello-from-the-host"),
        "log text not in the kernel log"
    );
}

#[test]
fn stop_freezes_the_guest_shell_until_go() {
    let dir = scratch();
    let home = dir.path().to_owned();
    let mut k = Kern::spawn(&home, "sg", &[]);
    k.type_line("echo before-stop");
    assert!(k.wait_output("before-stop\n", LIMIT), "{}", k.output());
    assert_eq!(k.ours("stop").stdout, "OK stopped\n");
    assert_eq!(k.ours("stop").stdout, "ERR Already stopped\n");
    k.type_line("echo while-stopped");
    assert!(
        !k.wait_output("while-stopped\n", Duration::from_millis(300)),
        "the guest ran while stopped"
    );
    assert!(
        k.ours("version").success(),
        "mconsole must answer while stopped"
    );
    assert_eq!(k.ours("go").stdout, "OK \n");
    assert!(k.wait_output("while-stopped\n", LIMIT), "{}", k.output());
    k.type_line("poweroff");
    assert!(k.wait_exit(LIMIT).expect("poweroff").success());
}

#[test]
fn guest_shell_commands_and_proc() {
    let dir = scratch();
    let home = dir.path().to_owned();
    sparse_image(&home.join("d.img"), 1);
    let mut k = Kern::spawn(&home, "sh", &["ubd1=d.img", "mem=48M", "quiet"]);
    for (cmd, want) in [
        ("uname -a", "Linux (none) 6.1.0-uml-kernel"),
        ("cat /proc/meminfo", "49152 kB"),
        ("cat /proc/cmdline", "umid=sh ubd1=d.img mem=48M quiet"),
        ("cat /proc/partitions", "ubdb"),
        ("ls /proc", "partitions"),
        ("free", "Mem:"),
        ("ps", "sh (con0)"),
        ("uptime", "load average"),
        ("ubd read ubdb 2", "|backing-sector-t|"),
        (
            "ubd write ubdb 3 written-by-guest",
            "wrote 1 sector(s) at 3",
        ),
        ("ubd read /dev/ubdb 3", "|written-by-guest|"),
        ("dmesg", "Kernel command line: umid=sh"),
        ("nosuchcmd", "sh: nosuchcmd: not found"),
    ] {
        k.type_line(cmd);
        assert!(
            k.wait_output(want, LIMIT),
            "`{cmd}`: no {want:?} in\n{}",
            k.output()
        );
    }
    k.type_line("sync");
    k.type_line("halt");
    assert!(k.wait_exit(LIMIT).expect("halt").success());
    let mut buf = [0u8; 16];
    fs::File::open(home.join("d.img"))
        .unwrap()
        .read_exact_at(&mut buf, 1536)
        .unwrap();
    assert_eq!(&buf, b"written-by-guest");
}

/// Sector `n` of a plain image.
fn sector(path: &Path, n: u64) -> Vec<u8> {
    let mut buf = vec![0u8; 512];
    fs::File::open(path)
        .unwrap()
        .read_exact_at(&mut buf, n * 512)
        .unwrap();
    buf
}

fn padded(text: &[u8]) -> Vec<u8> {
    let mut v = text.to_vec();
    v.resize(512, 0);
    v
}

#[test]
fn cow_files_move_between_uml_kernel_linux_uml_uml_mkcow_and_c_uml_moo() {
    let Some(moo) = c_tool("uml_moo") else { return };
    let dir = scratch();
    let home = dir.path().to_owned();
    let root = home.join("root.img");
    GuestImage::build(
        &root,
        "#!/bin/sh\nmount -t proc proc /proc\nsync\npoweroff -f\n",
    );
    let before = fingerprint(&root);

    // 1. uml-kernel creates the COW and writes sector 1 (unused by ext2) from the guest.
    // The root filesystem mounts read-only (`ro`), so that write is all the COW gets.
    let mut k = Kern::spawn(&home, "cw", &["ubd0=k.cow,root.img", "ro"]);
    assert!(
        k.wait_output("Creating \"k.cow\" as COW file for \"root.img\"", LIMIT),
        "{}",
        k.output()
    );
    k.type_line("ubd write ubda 1 from-uml-kernel");
    assert!(
        k.wait_output("wrote 1 sector(s) at 1", LIMIT),
        "{}",
        k.output()
    );
    k.type_line("halt");
    assert!(k.wait_exit(LIMIT).expect("halt").success());
    assert_eq!(fingerprint(&root), before, "the backing file was written");
    let cow = CowFile::open(&home.join("k.cow")).unwrap();
    let bitmap = cow.read_bitmap().unwrap();
    assert_eq!(bitmap.count_set(), 1);
    assert!(bitmap.is_set(1));
    assert_eq!(cow.header.backing_path(), fs::canonicalize(&root).unwrap());
    drop(cow);

    // 2. The C uml_moo merges it: the write lands at offset 512, nothing else changes.
    assert!(run(
        Command::new(&moo)
            .arg(home.join("k.cow"))
            .arg(home.join("merged.img")),
        LIMIT
    )
    .success());
    assert_eq!(
        sector(&home.join("merged.img"), 1),
        padded(b"from-uml-kernel")
    );
    assert_eq!(sector(&home.join("merged.img"), 0), sector(&root, 0));
    assert_eq!(
        fs::metadata(home.join("merged.img")).unwrap().len(),
        fs::metadata(&root).unwrap().len()
    );

    // 3. linux.uml accepts uml-kernel's COW and boots through it (a COW alone: backing
    //    from the header); and makes its own COW, which uml-kernel then uses.
    let Some(uml) = Uml::new(&home, "lx") else {
        return;
    };
    let out = uml
        .clone()
        .root("k.cow")
        .boot_to_poweroff(Duration::from_secs(60));
    assert!(
        powered_off(&out),
        "linux.uml on uml-kernel's COW:\n{}",
        out.stdout
    );
    let out = Uml::new(&home, "lx")
        .unwrap()
        .root("l.cow,root.img")
        .boot_to_poweroff(Duration::from_secs(60));
    assert!(powered_off(&out), "{}", out.stdout);
    let mut k = Kern::spawn(&home, "cw2", &["ubd0=l.cow", "ro"]);
    k.type_line("ubd write ubda 1 second-writer");
    assert!(
        k.wait_output("wrote 1 sector(s) at 1", LIMIT),
        "{}",
        k.output()
    );
    k.type_line("halt");
    assert!(k.wait_exit(LIMIT).expect("halt").success());
    assert!(run(
        Command::new(&moo)
            .arg(home.join("l.cow"))
            .arg(home.join("merged2.img")),
        LIMIT
    )
    .success());
    assert_eq!(
        sector(&home.join("merged2.img"), 1),
        padded(b"second-writer")
    );

    // 4. A COW from our uml_mkcow works the same way.
    assert!(run(
        Command::new(our_bin("uml_mkcow"))
            .arg(home.join("m.cow"))
            .arg(&root),
        LIMIT
    )
    .success());
    let mut k = Kern::spawn(&home, "cw3", &["ubd0=m.cow,root.img", "ro"]);
    k.type_line("ubd write ubda 5 via-mkcow");
    assert!(
        k.wait_output("wrote 1 sector(s) at 5", LIMIT),
        "{}",
        k.output()
    );
    k.type_line("halt");
    assert!(k.wait_exit(LIMIT).expect("halt").success());
    assert!(
        !k.output().contains("Creating"),
        "an existing COW was recreated"
    );
    assert!(run(Command::new(&moo).arg("-d").arg(home.join("m.cow")), LIMIT).success());
    // -d merged into the backing file itself: the very thing that must not happen while
    // booted, and proof the COW held the sector.
    assert_eq!(sector(&root, 5), padded(b"via-mkcow"));
}

#[test]
fn moved_backing_file_is_accepted_and_mismatches_refused() {
    let dir = scratch();
    let home = dir.path().to_owned();
    sparse_image(&home.join("orig.img"), 1);
    let mut k = Kern::spawn(&home, "mv", &["ubd1=c.cow,orig.img"]);
    k.type_line("halt");
    assert!(k.wait_exit(LIMIT).expect("halt").success());
    fs::create_dir(home.join("moved")).unwrap();
    fs::rename(home.join("orig.img"), home.join("moved/orig.img")).unwrap();
    let mut k = Kern::spawn(&home, "mv", &["ubd1=c.cow,moved/orig.img"]);
    assert!(
        k.wait_output("Switching backing file to 'moved/orig.img'", LIMIT),
        "{}",
        k.output()
    );
    k.type_line("halt");
    assert!(k.wait_exit(LIMIT).expect("halt").success());
    let h: CowHeader = CowFile::open(&home.join("c.cow")).unwrap().header;
    assert_eq!(
        h.backing_path(),
        fs::canonicalize(home.join("moved/orig.img")).unwrap()
    );
    // A changed backing file (mtime) is refused for the root device: the boot stops.
    let f = fs::OpenOptions::new()
        .write(true)
        .open(home.join("moved/orig.img"))
        .unwrap();
    f.set_modified(std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000))
        .unwrap();
    drop(f);
    let out = run(
        Command::new(our_bin("uml-kernel"))
            .args(["umid=mv", "ubd0=c.cow"])
            .env("HOME", &home)
            .current_dir(&home)
            .stdin(Stdio::null()),
        LIMIT,
    );
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("mtime mismatch"), "{out:?}");
    assert!(!home.join(".uml/mv").exists());
}

#[test]
fn two_kernels_on_one_image_the_second_refuses() {
    let dir = scratch();
    let home = dir.path().to_owned();
    sparse_image(&home.join("shared.img"), 1);
    let first = Kern::spawn(&home, "one", &["ubd0=shared.img"]);
    let out = run(
        Command::new(our_bin("uml-kernel"))
            .args(["umid=two", "ubd0=shared.img"])
            .env("HOME", &home)
            .current_dir(&home)
            .stdin(Stdio::null()),
        LIMIT,
    );
    assert_eq!(out.code, Some(1), "{out:?}");
    let pid = first.child.id();
    assert!(
        out.stderr
            .contains(&format!("file already locked by pid {pid}")),
        "no clear refusal: {out:?}"
    );
    assert!(
        !home.join(".uml/two").exists(),
        "the refused kernel left its umid directory"
    );
    // The same umid twice is refused too, naming the running kernel.
    let out = run(
        Command::new(our_bin("uml-kernel"))
            .args(["umid=one"])
            .env("HOME", &home)
            .current_dir(&home)
            .stdin(Stdio::null()),
        LIMIT,
    );
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains(&format!("already in use by pid {pid}")),
        "{out:?}"
    );
    assert!(
        first.ours("version").success(),
        "the first kernel was disturbed"
    );
    // With `c` (shared) the second kernel takes no lock and boots.
    let shared = Kern::spawn(&home, "three", &["ubd0c=shared.img"]);
    assert!(
        shared.wait_output("Not locking \"shared.img\" on the host", LIMIT),
        "{}",
        shared.output()
    );
}

#[test]
fn notify_socket_gets_boot_and_user_messages_and_reboot_restarts_in_place() {
    let dir = scratch();
    let home = dir.path().to_owned();
    let sock_path = home.join("notify.sock");
    let listener = UnixDatagram::bind(&sock_path).unwrap();
    listener.set_read_timeout(Some(LIMIT)).unwrap();
    let notify = format!("mconsole=notify:{}", sock_path.display());
    let mut k = Kern::spawn(&home, "nt", &[&notify]);
    let mut buf = [0u8; 600];
    let recv = |buf: &mut [u8]| {
        let n = listener.recv(buf).expect("notification");
        Notification::parse(&buf[..n]).unwrap()
    };
    let n = recv(&mut buf);
    assert_eq!(n.kind, NotifyKind::Socket);
    assert_eq!(n.text(), k.socket().display().to_string());
    assert!(n.data.ends_with(&[0]));
    k.type_line("echo hello from guest > /proc/mconsole");
    let n = recv(&mut buf);
    assert_eq!(
        (n.kind, n.data.as_slice()),
        (NotifyKind::User, &b"hello from guest\n"[..])
    );
    let pid = k.child.id();
    let before = fs::read_to_string(home.join(".uml/nt/pid")).unwrap();
    assert_eq!(k.ours("reboot").stdout, "OK \n");
    let n = recv(&mut buf);
    assert_eq!(n.kind, NotifyKind::Socket, "no socket message after reboot");
    assert!(k.ours("version").success());
    assert_eq!(
        before,
        fs::read_to_string(home.join(".uml/nt/pid")).unwrap()
    );
    assert_eq!(
        before.trim(),
        pid.to_string(),
        "reboot must keep the process"
    );
    assert!(k.child.try_wait().unwrap().is_none());
    assert_eq!(k.ours("cad").stdout, "OK \n");
    assert_eq!(recv(&mut buf).kind, NotifyKind::Socket);
    assert_eq!(k.ours("halt").stdout, "OK \n");
    assert!(k.wait_exit(LIMIT).expect("halt").success());
}

#[test]
fn consoles_on_a_pty_line_and_on_a_pseudo_terminal() {
    let dir = scratch();
    let home = dir.path().to_owned();
    let k = Kern::spawn(&home, "pt", &["ssl1=pty"]);
    let start = Instant::now();
    let dev = loop {
        let out = k.output();
        if let Some(l) = out
            .lines()
            .find(|l| l.starts_with("Serial line 1 assigned device "))
        {
            break PathBuf::from(l.rsplit(' ').next().unwrap());
        }
        assert!(start.elapsed() < LIMIT, "no pty announced:\n{out}");
        thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(k.ours("config ssl1").stdout, "OK pty\n");
    let mut tty = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&dev)
        .unwrap();
    tty.write_all(b"uname -r\r").unwrap();
    let got = read_until(&mut tty, "6.1.0-uml-kernel", LIMIT);
    assert!(got.contains("uname -r\r\n6.1.0-uml-kernel"), "{got:?}");
    drop(k);

    // con0=fd:0,fd:1 on a pseudo-terminal: raw-mode line editing with echo.
    let mut cmd = Command::new(our_bin("uml-kernel"));
    cmd.args(["umid=pty0", "con0=fd:0,fd:1"])
        .env("HOME", &home)
        .current_dir(&home);
    let mut s = PtySession::spawn(&mut cmd);
    assert!(s.expect("# ", LIMIT), "{}", s.screen());
    s.send(b"echo tyx\x7fped\r");
    assert!(s.expect("typed\r\n", LIMIT), "{:?}", s.screen());
    s.send(b"poweroff\r");
    let (status, timed_out) = s.wait(LIMIT);
    assert!(!timed_out && status.success(), "{status:?}");
}

fn read_until(f: &mut fs::File, want: &str, limit: Duration) -> String {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    let mut got = Vec::new();
    let start = Instant::now();
    while start.elapsed() < limit && !String::from_utf8_lossy(&got).contains(want) {
        let mut p = libc::pollfd {
            fd: f.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        if unsafe { libc::poll(&mut p, 1, 100) } == 1 {
            let mut buf = [0u8; 256];
            match f.read(&mut buf) {
                Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
                _ => break,
            }
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[test]
fn bad_command_lines_stop_the_boot_naming_the_switch() {
    let dir = scratch();
    let home = dir.path().to_owned();
    fs::write(home.join("plain.img"), vec![0u8; 4096]).unwrap();
    // (arguments, the switch the message must start with, a word it must contain)
    let table: &[(&[&str], &str, &str)] = &[
        (&["mem=lots"], "mem=lots", "size"),
        (&["mem=48Q"], "mem=48Q", "size"),
        (&["mem=100"], "mem=100", "1M"),
        (&["mem="], "mem=", "size"),
        (&["umid="], "umid=", "empty"),
        (&["umid=a/b"], "umid=a/b", "'/'"),
        (
            &["umid=0123456789012345678901234567890123456789012345678901234567890123"],
            "umid=",
            "63",
        ),
        (&["uml_dir="], "uml_dir=", "empty"),
        (
            &["ubd0x=f"],
            "ubd0x=f",
            "Expected '=' or flag letter (r, s, c, t or d)",
        ),
        (&["ubd16=f"], "ubd16=f", "Device number out of range"),
        (&["ubdq=f"], "ubdq=f", "Device number out of range"),
        (
            &["ubd1rrrrrrr=f"],
            "ubd1rrrrrrr=f",
            "Too many flags specified",
        ),
        (&["ubd1rrrrrrrx"], "ubd1rrrrrrrx", "Missing '='"),
        (
            &["ubd1d=a,b"],
            "ubd1d=a,b",
            "Can't specify both 'd' and a cow file",
        ),
        (&["ubd2="], "ubd2=", "Missing file name"),
        (&["ubd0"], "ubd0", "Expected '='"),
        (&["con0=bogus"], "con0=bogus", "unknown channel"),
        (&["con9=null"], "con9=null", "out of range"),
        (&["ssl0=fd:x"], "ssl0=fd:x", "not a file descriptor"),
        (&["ssl1=port:99999"], "ssl1=port:99999", "port"),
        (&["con1=tty:"], "con1=tty:", "unknown channel"),
        (&["con"], "con", "expected '='"),
        (&["mconsole=foo"], "mconsole=foo", "notify:"),
        (&["mconsole=notify:"], "mconsole=notify:", "socket path"),
        (&["root="], "root=", "empty"),
        (&["init="], "init=", "empty"),
        (&["--frobnicate"], "--frobnicate", "unknown option"),
        (&["con0=fd:77"], "con0=fd:77", "Bad file descriptor"),
        (&["ssl2=port:0"], "ssl2=port:0", "not a TCP port"),
        (&["ubd0=c.cow,missing.img"], "ubd0", "missing.img"),
        (
            &["ubd0=plain.img,plain.img"],
            "ubd0",
            "Failed to read COW header",
        ),
    ];
    assert!(table.len() >= 20);
    for (args, switch, word) in table {
        let out = run(
            Command::new(our_bin("uml-kernel"))
                .args(["umid=bad"])
                .args(*args)
                .env("HOME", &home)
                .current_dir(&home)
                .stdin(Stdio::null()),
            LIMIT,
        );
        assert_eq!(out.code, Some(1), "{args:?} booted: {out:?}");
        let line = out.stderr.lines().last().unwrap_or_default();
        assert!(
            line.starts_with(&format!("uml-kernel: {switch}")),
            "{args:?}: {line:?}"
        );
        assert!(line.contains(word), "{args:?}: {line:?} lacks {word:?}");
        assert!(
            !home.join(".uml/bad").exists(),
            "{args:?} left a umid directory"
        );
    }
    // The good ones: help, version, showconfig, and unknown switches only reported.
    for (arg, want) in [
        ("--help", "ubd<N><FLAGS>="),
        ("--version", "uml-kernel "),
        ("--showconfig", "CONFIG_BLK_DEV_UBD=y"),
    ] {
        let out = run(Command::new(our_bin("uml-kernel")).arg(arg), LIMIT);
        assert!(out.success() && out.stdout.contains(want), "{arg}: {out:?}");
    }
    let mut k = Kern::spawn(&home, "unk", &["foo=bar", "splash", "eth0=ethertap"]);
    assert!(k.wait_output("Unknown kernel command line parameters \"foo=bar splash\", will be passed to user space.", LIMIT), "{}", k.output());
    assert!(k
        .output()
        .contains("eth0=ethertap: the ethertap transport is not supported"));
    k.type_line("halt");
    assert!(k.wait_exit(LIMIT).is_some());
}

/// One reply packet as it came off the wire: (err, more, text) or, for a headerless
/// version-0 answer, (0, false, the raw bytes) flagged by `raw`.
#[derive(Debug, PartialEq, Eq)]
struct Packet {
    raw: bool,
    err: i32,
    more: bool,
    text: Vec<u8>,
}

/// Sends one raw datagram from a bound socket and collects the packets until one with
/// `more` clear (plus a short wait for a second reply, as a wrong version gets).
fn raw_exchange(sock: &UnixDatagram, to: &Path, datagram: &[u8]) -> Vec<Packet> {
    sock.send_to(datagram, to).expect("send");
    let mut packets = Vec::new();
    let mut buf = [0u8; 1024];
    let mut wait = Duration::from_secs(5);
    loop {
        sock.set_read_timeout(Some(wait)).unwrap();
        let Ok(n) = sock.recv(&mut buf) else { break };
        let d = &buf[..n];
        if n < 12 || u32::from_ne_bytes(d[8..12].try_into().unwrap()) as usize + 12 != n {
            packets.push(Packet {
                raw: true,
                err: 0,
                more: false,
                text: d.to_vec(),
            });
            wait = Duration::from_millis(50);
            continue;
        }
        let more = u32::from_ne_bytes(d[4..8].try_into().unwrap()) != 0;
        packets.push(Packet {
            raw: false,
            err: i32::from_ne_bytes(d[0..4].try_into().unwrap()),
            more,
            text: d[12..n - 1].to_vec(),
        });
        if !more {
            wait = Duration::from_millis(50);
        }
    }
    packets
}

fn request_bytes(text: &[u8], version: u32) -> Vec<u8> {
    let mut r = uml_proto::mconsole::Request::new(text).unwrap();
    r.version = version;
    let mut buf = [0u8; uml_proto::mconsole::REQUEST_LEN];
    let n = r.emit(&mut buf).unwrap();
    buf[..n].to_vec()
}

#[test]
fn raw_replies_match_linux_uml_packet_for_packet() {
    let dir = scratch();
    let home = dir.path().to_owned();
    let root = home.join("root.img");
    GuestImage::build(&root, "#!/bin/sh\nwhile true; do sleep 1; done\n");
    let Some(uml) = Uml::new(&home, "lxraw") else {
        return;
    };
    let linux = uml.root("lx.cow,root.img").spawn(Duration::from_secs(60));
    let ours = Kern::spawn(&home, "ourraw", &["ubd0=our.cow,root.img"]);
    let client = UnixDatagram::bind(home.join("client.sock")).unwrap();

    let mut too_large = request_bytes(b"help", 2);
    too_large[8..12].copy_from_slice(&600u32.to_ne_bytes());
    let mut version0 = request_bytes(b"help", 2);
    version0[0..4].copy_from_slice(&[0; 4]);
    // Replies whose every byte must agree.
    let mut exact: Vec<Vec<u8>> = [
        "help",
        "go",
        "config ubd",
        "config ubd16=x",
        "config ubdq=x",
        "config ubd1x=f",
        "config ubd1rrrrrrr=f",
        "config ubd1d=a,b",
        "config ubd1",
        "config ubd1r",
        "config foo",
        "config",
        "remove ubd5",
        "remove ubd99",
        "remove foo",
        "remove",
        "stack abc",
        "stack 0",
        "frobnicate",
        " version",
        "proc",
        "proc nosuchfile",
        "log from the test",
        "log",
        "stop",
        "stop",
        "go",
        "helpXYZ",
    ]
    .iter()
    .map(|c| request_bytes(c.as_bytes(), 2))
    .collect();
    exact.push(request_bytes(b"go", 3));
    exact.push(too_large);
    exact.push(version0);
    for req in &exact {
        let a = raw_exchange(&client, &linux.mconsole, req);
        let b = raw_exchange(&client, &ours.socket(), req);
        assert!(!a.is_empty(), "linux.uml did not answer {req:?}");
        assert_eq!(a, b, "request {:?}", String::from_utf8_lossy(&req[12..]));
    }
    // Replies whose text names the kernel: same packet structure.
    for cmd in ["version", "proc uptime", "proc meminfo", "sysrq h", "sysrq"] {
        let req = request_bytes(cmd.as_bytes(), 2);
        let a = raw_exchange(&client, &linux.mconsole, &req);
        let b = raw_exchange(&client, &ours.socket(), &req);
        let shape = |p: &[Packet]| {
            (
                p.first().map(|x| (x.err, x.raw)),
                p.last().map(|x| (x.more, x.text.is_empty())),
                p.len() > 1,
            )
        };
        assert_eq!(shape(&a), shape(&b), "`{cmd}`:\nlinux {a:?}\nours {b:?}");
        assert!(a[..a.len() - 1].iter().all(|p| p.more) && b[..b.len() - 1].iter().all(|p| p.more));
    }
    drop(linux);
}

#[test]
fn hot_add_disks_and_lines_sysrq_reset_and_interrupt() {
    let Some(c_client) = c_tool("uml_mconsole") else {
        return;
    };
    let dir = scratch();
    let home = dir.path().to_owned();
    sparse_image(&home.join("back.img"), 1);
    let mut k = Kern::spawn(&home, "hot", &[]);
    // A COW hot-added over mconsole is created and usable from the guest.
    let add = k.ours(&format!(
        "config ubd1={}/hot.cow,{}/back.img",
        home.display(),
        home.display()
    ));
    assert_eq!(add.stdout, "OK \n", "{add:?}");
    assert!(k.wait_output("as COW file for", LIMIT), "{}", k.output());
    let q = k.ours("config ubd1");
    assert_eq!(
        q.stdout,
        format!("OK {0}/hot.cow,{0}/back.img\n", home.display())
    );
    k.type_line("ubd write ubdb 7 hot-added");
    assert!(
        k.wait_output("wrote 1 sector(s) at 7", LIMIT),
        "{}",
        k.output()
    );
    assert_eq!(k.ours("remove ubd1").stdout, "OK \n");
    assert_eq!(k.ours("config ubd1").stdout, "OK \n");
    let cow = CowFile::open(&home.join("hot.cow")).unwrap();
    assert!(cow.read_bitmap().unwrap().is_set(7));
    // A serial line hot-added as a pty is announced.
    assert_eq!(k.ours("config ssl3=pty").stdout, "OK \n");
    assert!(k.wait_output("Serial line 3 assigned device /dev/pts/", LIMIT));
    assert_eq!(k.ours("config ssl3").stdout, "OK pty\n");
    assert_eq!(
        k.ours("config ssl3=null").stdout,
        "ERR Device is already configured\n"
    );
    assert_eq!(k.ours("remove ssl3").stdout, "OK \n");
    // SysRq b restarts at once in the same process; the socket answers again.
    let pid = k.child.id();
    let b = k.ours("sysrq b");
    assert!(b.success(), "{b:?}");
    let start = Instant::now();
    while !k.ours("version").success() {
        assert!(start.elapsed() < LIMIT, "no mconsole after sysrq b");
    }
    assert!(k.child.try_wait().unwrap().is_none());
    assert_eq!(
        fs::read_to_string(home.join(".uml/hot/pid"))
            .unwrap()
            .trim(),
        pid.to_string()
    );
    // The C client's `int` sends SIGINT: the kernel cleans up and exits 1.
    let out = mconsole(&c_client, &home, "hot", "int");
    assert!(out.success(), "{out:?}");
    let status = k.wait_exit(LIMIT).expect("exit after SIGINT");
    assert_eq!(status.code(), Some(1));
    assert!(!home.join(".uml/hot").exists());
}

/// PATH holding our in.telnetd (Cargo cannot name a binary with a dot) before the
/// system directories.
fn path_with_our_telnetd(dir: &Path) -> String {
    let bin = dir.join("telnetd-bin");
    fs::create_dir_all(&bin).unwrap();
    fs::copy(our_bin("in-telnetd"), bin.join("in.telnetd")).unwrap();
    format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", bin.display())
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Reads from a telnet connection until `want` shows up (option negotiation ignored).
fn telnet_read_until(s: &mut std::net::TcpStream, want: &str, limit: Duration) -> String {
    use std::io::Read;
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut got = Vec::new();
    let start = Instant::now();
    while start.elapsed() < limit && !String::from_utf8_lossy(&got).contains(want) {
        let mut buf = [0u8; 512];
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[test]
fn port_console_through_our_port_helper_and_in_telnetd() {
    let dir = scratch();
    let home = dir.path().to_owned();
    let port = free_tcp_port();
    fs::create_dir_all(&home).unwrap();
    let console = home.join("port.console");
    let out = fs::File::create(&console).unwrap();
    let mut child = Command::new(our_bin("uml-kernel"))
        .args([
            "umid=port",
            &format!("con1=port:{port}"),
            &format!("ssl2=port:{port}"),
        ])
        .env("HOME", &home)
        .env("UML_PORT_HELPER", our_bin("port-helper"))
        .env("PATH", path_with_our_telnetd(&home))
        .current_dir(&home)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let start = Instant::now();
    let mut first = loop {
        if let Ok(s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            break s;
        }
        assert!(
            start.elapsed() < LIMIT,
            "{}",
            fs::read_to_string(&console).unwrap()
        );
        thread::sleep(Duration::from_millis(5));
    };
    let got = telnet_read_until(&mut first, "# ", LIMIT);
    assert!(
        got.contains("# "),
        "no prompt over telnet: {got:?}\n{}",
        fs::read_to_string(&console).unwrap()
    );
    first.write_all(b"uname -r\r\n").unwrap();
    let got = telnet_read_until(&mut first, "6.1.0-uml-kernel", LIMIT);
    assert!(got.contains("6.1.0-uml-kernel"), "{got:?}");
    // A second connection on the shared port gets the next line (ssl2).
    let mut second = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    assert!(telnet_read_until(&mut second, "# ", LIMIT).contains("# "));
    second.write_all(b"ps\r\n").unwrap();
    let got = telnet_read_until(&mut second, "sh (ssl2)", LIMIT);
    assert!(
        got.contains("sh (con1)") && got.contains("sh (ssl2)"),
        "{got:?}"
    );
    second.write_all(b"halt\r\n").unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > LIMIT {
            let _ = child.kill();
            panic!("no halt:\n{}", fs::read_to_string(&console).unwrap());
        }
        thread::sleep(Duration::from_millis(5));
    };
    assert!(status.success());
}

#[test]
fn our_uml_mconsole_notify_receives_the_boot_message() {
    let dir = scratch();
    let home = dir.path().to_owned();
    let sock = home.join("n.sock");
    let mut listener = Command::new(our_bin("uml_mconsole"))
        .arg("--notify")
        .arg(&sock)
        .arg("--once")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !sock.exists() {
        assert!(
            start.elapsed() < LIMIT,
            "uml_mconsole --notify made no socket"
        );
        thread::sleep(Duration::from_millis(2));
    }
    let mut k = Kern::spawn(
        &home,
        "nb",
        &[&format!("mconsole=notify:{}", sock.display())],
    );
    let (status, timed_out) = tests::command::wait_bounded(&mut listener, LIMIT);
    assert!(!timed_out && status.success(), "{status:?}");
    let mut text = String::new();
    std::io::Read::read_to_string(&mut listener.stdout.take().unwrap(), &mut text).unwrap();
    assert_eq!(text.trim_end(), format!("socket {}", k.socket().display()));
    k.type_line("halt");
    assert!(k.wait_exit(LIMIT).is_some());
}

#[test]
fn xterm_console_through_the_emulator_and_our_port_helper() {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    let dir = scratch();
    let home = dir.path().to_owned();
    // A stand-in terminal emulator: records its title, runs the command it is given
    // on a pseudo-terminal the test holds the other side of.
    let emulator = home.join("fake-emulator");
    fs::write(
        &emulator,
        "#!/bin/sh\necho \"$1 $2 $3\" > \"$FAKE_TITLE\"\nshift 3\nexec \"$@\" 0<>\"$FAKE_TTY\"\n",
    )
    .unwrap();
    fs::set_permissions(
        &emulator,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let pty = nix::pty::openpty(None, None).unwrap();
    let slave = fs::read_link(format!("/proc/self/fd/{}", pty.slave.as_raw_fd())).unwrap();
    let mut master = fs::File::from(pty.master);
    let title = home.join("title");
    let mut k = Kern::spawn_env(
        &home,
        "xt",
        &["con1=xterm", &format!("xterm={},-T,-e", emulator.display())],
        &[
            ("DISPLAY", ":99".into()),
            ("UML_PORT_HELPER", our_bin("port-helper").into_os_string()),
            ("FAKE_TTY", slave.into_os_string()),
            ("FAKE_TITLE", title.clone().into_os_string()),
        ],
    );
    let got = read_until(&mut master, "# ", LIMIT);
    assert!(
        got.contains("# "),
        "no prompt in the xterm: {got:?}\n{}",
        k.output()
    );
    assert_eq!(
        fs::read_to_string(&title).unwrap(),
        "-T Virtual Console #1 (xt) -e\n"
    );
    master.write_all(b"uname -r\r").unwrap();
    let got = read_until(&mut master, "6.1.0-uml-kernel", LIMIT);
    assert!(got.contains("6.1.0-uml-kernel"), "{got:?}");
    drop(pty.slave);
    k.type_line("halt");
    assert!(k.wait_exit(LIMIT).expect("halt").success());
    let mut rest = Vec::new();
    let _ = master.read_to_end(&mut rest);
}

#[test]
fn sysrq_e_restarts_the_shells_sysrq_o_powers_off_and_a_failed_root_notifies_panic() {
    let dir = scratch();
    let home = dir.path().to_owned();
    let mut k = Kern::spawn(&home, "sq", &[]);
    k.type_line("echo half-typed-then");
    assert!(k.wait_output("half-typed-then\n", LIMIT));
    let e = k.ours("sysrq e");
    assert!(e.stdout.contains("sysrq: Terminate All Tasks"), "{e:?}");
    k.type_line("echo after-e");
    assert!(k.wait_output("after-e\n", LIMIT), "{}", k.output());
    let o = k.ours("sysrq o");
    assert!(o.stdout.contains("sysrq: Power Off"), "{o:?}");
    assert!(k.wait_exit(LIMIT).expect("power off").success());
    assert!(!home.join(".uml/sq").exists());

    // A root device that cannot be opened: PANIC notification, exit 1, message.
    let sock_path = home.join("panic.sock");
    let listener = UnixDatagram::bind(&sock_path).unwrap();
    listener.set_read_timeout(Some(LIMIT)).unwrap();
    let out = run(
        Command::new(our_bin("uml-kernel"))
            .args(["umid=pn", "ubd0=nothing.cow,nothing.img"])
            .arg(format!("mconsole=notify:{}", sock_path.display()))
            .env("HOME", &home)
            .current_dir(&home)
            .stdin(Stdio::null()),
        LIMIT,
    );
    assert_eq!(out.code, Some(1), "{out:?}");
    let mut buf = [0u8; 600];
    let kinds: Vec<Notification> = (0..2)
        .map(|_| {
            let n = listener.recv(&mut buf).expect("notification");
            Notification::parse(&buf[..n]).unwrap()
        })
        .collect();
    assert_eq!(kinds[0].kind, NotifyKind::Socket);
    assert_eq!(kinds[1].kind, NotifyKind::Panic);
    assert!(
        kinds[1].text().contains("Unable to mount root fs on ubd0"),
        "{:?}",
        kinds[1]
    );
    assert!(out.stdout.contains("Kernel panic - not syncing"), "{out:?}");
}

#[test]
fn tty_channel_and_read_only_disks() {
    use std::os::fd::AsRawFd;
    let dir = scratch();
    let home = dir.path().to_owned();
    sparse_image(&home.join("ro.img"), 1);
    let before = fingerprint(&home.join("ro.img"));
    let pty = nix::pty::openpty(None, None).unwrap();
    let slave = fs::read_link(format!("/proc/self/fd/{}", pty.slave.as_raw_fd())).unwrap();
    let mut master = fs::File::from(pty.master);
    let k = Kern::spawn(
        &home,
        "tt",
        &[&format!("ssl0=tty:{}", slave.display()), "ubd0r=ro.img"],
    );
    assert_eq!(
        k.ours("config ssl0").stdout,
        format!("OK tty:{}\n", slave.display())
    );
    master.write_all(b"ubd write ubda 0 nope\r").unwrap();
    let got = read_until(&mut master, "ubd: ubda:", LIMIT);
    assert!(got.contains("Read-only file system"), "{got:?}");
    master.write_all(b"ubd\r").unwrap();
    let got = read_until(&mut master, "read-only)", LIMIT);
    assert!(
        got.contains("ubda ro.img (2048 sectors, read-only)"),
        "{got:?}"
    );
    master.write_all(b"halt\r").unwrap();
    let mut k = k;
    assert!(k.wait_exit(LIMIT).expect("halt").success());
    assert_eq!(fingerprint(&home.join("ro.img")), before);
}

#[test]
fn cow_data_is_durable_before_its_bitmap_bit_is_written() {
    let dir = scratch();
    let home = dir.path().to_owned();
    sparse_image(&home.join("b.img"), 1);
    let trace = home.join("strace.log");
    let console = home.join("st.console");
    let out = fs::File::create(&console).unwrap();
    let mut child = Command::new("strace")
        .args(["-f", "-e", "trace=pwrite64,fdatasync,fsync", "-o"])
        .arg(&trace)
        .arg(our_bin("uml-kernel"))
        .args(["umid=st", "ubd0=c.cow,b.img"])
        .env("HOME", &home)
        .current_dir(&home)
        .stdin(Stdio::piped())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("strace (Debian package strace)");
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(b"ubd write ubda 9 durable\nhalt\n")
        .unwrap();
    drop(stdin);
    let (status, timed_out) = tests::command::wait_bounded(&mut child, LIMIT);
    assert!(
        !timed_out && status.success(),
        "{}",
        fs::read_to_string(&console).unwrap()
    );
    let cow = CowFile::open(&home.join("c.cow")).unwrap();
    let data_at = cow.geometry.data_offset + 9 * 512;
    let bitmap_at = cow.geometry.bitmap_offset;
    let log = fs::read_to_string(&trace).unwrap();
    let calls: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("pwrite64(") || l.contains("sync("))
        .collect();
    let pos = |pred: &dyn Fn(&str) -> bool| calls.iter().position(|l| pred(l));
    let data = pos(&|l: &str| l.contains("pwrite64(") && l.contains(&format!(", {data_at})")))
        .unwrap_or_else(|| panic!("no data write at {data_at}:\n{log}"));
    let bitmap = pos(&|l: &str| l.contains("pwrite64(") && l.contains(&format!(", {bitmap_at})")))
        .unwrap_or_else(|| panic!("no bitmap write at {bitmap_at}:\n{log}"));
    let sync = calls[data..]
        .iter()
        .position(|l| l.contains("fdatasync(") || l.contains("fsync("))
        .map(|i| i + data)
        .expect("no sync after the data write");
    assert!(
        data < sync && sync < bitmap,
        "order data {data}, sync {sync}, bitmap {bitmap}:\n{log}"
    );
}
