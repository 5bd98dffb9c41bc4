//! Filesystem benchmark, in the guest, uml-kernel against linux.uml in the same run:
//! sequential write of a 64 MiB file (then `sync`), sequential read of it after a
//! remount (cold cache), and creation of 10,000 small files (then `sync`), each on a
//! fresh copy of the same blank ext2 image (same size, same block size) attached as
//! ubdb and mounted on /mnt; both kernels get the same `mem=` and boot the same busybox
//! root image through a COW. Also boot time: uml-kernel's exec to root mounted (host
//! clock, and the kernel's own log stamp) and linux.uml's exec to its init's first line.
//!
//! In linux.uml the work is busybox: `dd if=/dev/zero of=/mnt/big bs=1M count=64; sync`,
//! `dd if=/mnt/big of=/dev/null bs=1M`, and the shell loop `while [ $i -lt 10000 ]; do
//! echo x > /mnt/d/f$i; ...; done; sync`. In uml-kernel it is the built-in shell's `dd`
//! (the same arguments, through the VFS) and its benchmark-only `fsbench files /mnt/d
//! 10000` (open with O_CREAT|O_TRUNC, write "x\n", close, for f0..f9999), then `sync`.
//! Times are host wall clock from typing the line to the end marker on the console, so
//! write-back (the `sync`) is inside them; both data images must pass `e2fsck -fn`
//! afterwards and hold the file and the 10,000 names.
//!
//! Build first: `cargo build --release -p kernel -p bench`, then
//! `target/release/fs_bench [--mem SIZE] [--boots N]` (defaults 128M and 20).

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use tests::{linux_uml, run, scratch, GuestImage, KernelRun, Uml, UmlBoot};

const INIT: &str = "#!/bin/sh\necho FSBENCH-INIT\nmount -t proc proc /proc\nexec /bin/sh\n";
const LIMIT: Duration = Duration::from_secs(300);
const FILE_MIB: u64 = 64;
const FILES: u32 = 10_000;
/// The data disk: size and block size, the same for both kernels.
const DATA_MIB: u32 = 256;
const DATA_BLOCK: u32 = 4096;

/// One kernel's figures.
#[derive(Debug, Default, Clone, Copy)]
struct Figures {
    write: Duration,
    read: Duration,
    files: Duration,
}

impl Figures {
    fn print(&self, name: &str) {
        let mb = (FILE_MIB << 20) as f64 / 1e6;
        println!(
            "{name:<11} write+sync {:>8.1} MB/s ({:>8.3} s)  read {:>8.1} MB/s ({:>8.3} s)  \
             {FILES} files+sync {:>9.0} files/s ({:>8.3} s)",
            mb / self.write.as_secs_f64(),
            self.write.as_secs_f64(),
            mb / self.read.as_secs_f64(),
            self.read.as_secs_f64(),
            f64::from(FILES) / self.files.as_secs_f64(),
            self.files.as_secs_f64(),
        );
    }
}

fn cp_sparse(from: &Path, to: &Path) {
    let out = run(
        Command::new("cp").arg("--sparse=always").arg(from).arg(to),
        LIMIT,
    );
    assert!(out.success(), "cp {}: {out:?}", from.display());
}

/// e2fsck -fn must pass and the tree must hold the big file and every small one.
fn check_image(image: &Path, who: &str) {
    let out = run(Command::new("e2fsck").arg("-fn").arg(image), LIMIT);
    assert_eq!(out.code, Some(0), "{who}: e2fsck -fn: {out:?}");
    let out = run(
        Command::new("debugfs").args(["-R", "stat /big"]).arg(image),
        LIMIT,
    );
    let size = format!("Size: {}", FILE_MIB << 20);
    assert!(out.stdout.contains(&size), "{who}: /big: {out:?}");
    let out = run(
        Command::new("debugfs").args(["-R", "ls -p /d"]).arg(image),
        LIMIT,
    );
    let n = out
        .stdout
        .lines()
        .filter(|l| l.contains("/f") && l.ends_with("/2/"))
        .count();
    assert_eq!(n, FILES as usize, "{who}: files of 2 bytes in /d");
}

/// Runs `cmd` (lines) in our guest shell, then `echo` of a marker; the wall time to the
/// marker's line on the console (polled every 100 µs) and what came before it.
fn ours_timed(k: &mut KernelRun, n: &mut u32, cmd: &str) -> (Duration, String) {
    *n += 1;
    let marker = format!("OURS-DONE-{n}\n");
    let before = k.output().len();
    let start = Instant::now();
    k.type_line(&format!("{cmd}\necho OURS-DONE-{n}"));
    loop {
        let all = k.output();
        let new = &all[before.min(all.len())..];
        // The marker as printed, not as typed (a console that echoes shows `echo ` first).
        let found = new
            .match_indices(&marker)
            .find(|(at, _)| !new[..*at].ends_with("echo "));
        if let Some((at, _)) = found {
            return (start.elapsed(), new[..at].to_string());
        }
        assert!(
            start.elapsed() < LIMIT,
            "`{cmd}` did not finish in uml-kernel:\n{new}"
        );
        std::thread::sleep(Duration::from_micros(100));
    }
}

/// Runs `cmd` in linux.uml's console shell, polling the console every millisecond;
/// the wall time to its end marker (split in the command, so the echo never matches).
fn linux_timed(b: &mut UmlBoot, n: &mut u32, cmd: &str) -> (Duration, String) {
    *n += 1;
    let marker = format!("FSB-DONE-{n} ");
    let before = b.console().len();
    let line = format!("{cmd}; echo \"FSB-DO\"\"NE-{n} $?\"\n");
    let start = Instant::now();
    let stdin = b.console_in.as_mut().expect("console input");
    stdin
        .write_all(line.as_bytes())
        .and_then(|()| stdin.flush())
        .expect("write to linux.uml's console");
    loop {
        let all = b.console();
        let new = &all[before.min(all.len())..];
        if let Some(at) = new.find(&marker) {
            let status = new[at + marker.len()..].split_whitespace().next();
            assert_eq!(status, Some("0"), "`{cmd}` failed in linux.uml:\n{new}");
            return (start.elapsed(), new[..at].to_string());
        }
        assert!(
            start.elapsed() < LIMIT,
            "`{cmd}` did not finish in linux.uml:\n{new}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn expect_no_error(out: &str, what: &str) {
    for bad in ["dd:", "fsbench:", "mount:", "umount:", "sh:", "sync:"] {
        assert!(!out.contains(bad), "{what}:\n{out}");
    }
}

fn run_ours(kernel: &Path, home: &Path, root: &Path, data: &Path, mem: &str) -> Figures {
    let args = [
        format!("mem={mem}"),
        format!(
            "ubd0={},{}",
            home.join("ours.cow").display(),
            root.display()
        ),
        format!("ubd1={}", data.display()),
    ];
    let mut k = KernelRun::start(KernelRun::command(kernel, "fsb", &args), home, "fsb");
    k.wait_socket(Duration::from_secs(10));
    let mut n = 0;
    let (_, out) = ours_timed(&mut k, &mut n, "mount -t ext2 /dev/ubdb /mnt");
    expect_no_error(&out, "mount");
    let mut f = Figures::default();
    let (t, out) = ours_timed(
        &mut k,
        &mut n,
        &format!("dd if=/dev/zero of=/mnt/big bs=1M count={FILE_MIB}\nsync"),
    );
    expect_no_error(&out, "dd write");
    assert!(out.contains(&format!("{} bytes", FILE_MIB << 20)), "{out}");
    f.write = t;
    let (_, out) = ours_timed(&mut k, &mut n, "umount /mnt\nmount -t ext2 /dev/ubdb /mnt");
    expect_no_error(&out, "remount");
    let (t, out) = ours_timed(&mut k, &mut n, "dd if=/mnt/big of=/dev/null bs=1M");
    expect_no_error(&out, "dd read");
    assert!(out.contains(&format!("{} bytes", FILE_MIB << 20)), "{out}");
    f.read = t;
    let (_, out) = ours_timed(&mut k, &mut n, "mkdir /mnt/d");
    expect_no_error(&out, "mkdir");
    let (t, out) = ours_timed(
        &mut k,
        &mut n,
        &format!("fsbench files /mnt/d {FILES}\nsync"),
    );
    expect_no_error(&out, "fsbench files");
    f.files = t;
    let (_, out) = ours_timed(&mut k, &mut n, "umount /mnt");
    expect_no_error(&out, "umount");
    k.type_line("halt");
    assert!(
        k.wait_exit(Duration::from_secs(30)).is_some(),
        "uml-kernel did not halt:\n{}",
        k.output()
    );
    f
}

fn run_linux(linux: &Path, home: &Path, root: &Path, data: &Path, mem: &str) -> Figures {
    let mut uml = Uml::new(home, "fsl").expect("linux.uml");
    uml.args.retain(|a| !a.starts_with("mem="));
    let uml = uml
        .arg(format!("mem={mem}"))
        .root(&format!(
            "{},{}",
            home.join("linux.cow").display(),
            root.display()
        ))
        .arg(format!("ubd1={}", data.display()));
    assert_eq!(uml.kernel, linux);
    let mut b = uml.boot_until("FSBENCH-INIT", Duration::from_secs(60));
    let mut n = 0;
    // Wait for the shell to read the console.
    linux_timed(&mut b, &mut n, "true");
    linux_timed(&mut b, &mut n, "mount -t ext2 /dev/ubdb /mnt");
    let mut f = Figures::default();
    let (t, out) = linux_timed(
        &mut b,
        &mut n,
        &format!("dd if=/dev/zero of=/mnt/big bs=1M count={FILE_MIB}; sync"),
    );
    assert!(out.contains(&format!("{FILE_MIB}+0 records out")), "{out}");
    f.write = t;
    linux_timed(
        &mut b,
        &mut n,
        "umount /mnt; echo 3 > /proc/sys/vm/drop_caches; mount -t ext2 /dev/ubdb /mnt",
    );
    let (t, out) = linux_timed(&mut b, &mut n, "dd if=/mnt/big of=/dev/null bs=1M");
    assert!(out.contains(&format!("{FILE_MIB}+0 records in")), "{out}");
    f.read = t;
    linux_timed(&mut b, &mut n, "mkdir /mnt/d");
    let (t, _) = linux_timed(
        &mut b,
        &mut n,
        &format!("i=0; while [ $i -lt {FILES} ]; do echo x > /mnt/d/f$i; i=$((i+1)); done; sync"),
    );
    f.files = t;
    linux_timed(&mut b, &mut n, "umount /mnt");
    let stdin = b.console_in.as_mut().expect("console input");
    let _ = stdin
        .write_all(b"poweroff -f\n")
        .and_then(|()| stdin.flush());
    assert!(
        b.wait_exit(Duration::from_secs(60)).is_some(),
        "linux.uml did not power off:\n{}",
        b.console()
    );
    f
}

/// The kernel's own stamp on its root-mounted log line, e.g. `[    0.001234] VFS: ...`.
fn log_stamp(console: &str) -> Option<Duration> {
    let line = console.lines().find(|l| l.contains("VFS: Mounted root"))?;
    let stamp = line.strip_prefix('[')?.split(']').next()?.trim();
    Some(Duration::from_secs_f64(stamp.parse().ok()?))
}

/// uml-kernel boots on a fresh COW over the root image: exec to the root-mounted line
/// on the console (host clock), and the kernel's own stamp on that line.
fn our_boot(kernel: &Path, home: &Path, root: &Path, i: usize) -> (Duration, Duration) {
    let umid = format!("fsboot{i}");
    let cow = home.join(format!("{umid}.cow"));
    let args = [format!("ubd0={},{}", cow.display(), root.display())];
    let start = Instant::now();
    let mut k = KernelRun::start(KernelRun::command(kernel, &umid, &args), home, &umid);
    let seen = loop {
        if k.output().contains("VFS: Mounted root") {
            break start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no root mounted:\n{}",
            k.output()
        );
        std::thread::sleep(Duration::from_micros(100));
    };
    let mut n = 0;
    let (_, dmesg) = ours_timed(&mut k, &mut n, "dmesg");
    let stamp = log_stamp(&dmesg).expect("stamped root-mounted line in dmesg");
    k.type_line("halt");
    assert!(k.wait_exit(Duration::from_secs(10)).is_some(), "no halt");
    let _ = std::fs::remove_file(cow);
    (seen, stamp)
}

fn linux_boot(home: &Path, root: &Path, mem: &str, i: usize) -> Duration {
    let umid = format!("lxboot{i}");
    let cow = home.join(format!("{umid}.cow"));
    let mut uml = Uml::new(home, &umid).expect("linux.uml");
    uml.args.retain(|a| !a.starts_with("mem="));
    let uml = uml
        .arg(format!("mem={mem}"))
        .root(&format!("{},{}", cow.display(), root.display()));
    let start = Instant::now();
    let mut b = uml.boot_until("FSBENCH-INIT", Duration::from_secs(60));
    let t = start.elapsed();
    let stdin = b.console_in.as_mut().expect("console input");
    let _ = stdin
        .write_all(b"poweroff -f\n")
        .and_then(|()| stdin.flush());
    let _ = b.wait_exit(Duration::from_secs(30));
    let _ = std::fs::remove_file(cow);
    t
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let mut mem = "128M".to_string();
    let mut boots = 20usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--mem" => mem = args.next().expect("--mem SIZE"),
            "--boots" => boots = args.next().and_then(|n| n.parse().ok()).expect("--boots N"),
            _ => panic!("usage: fs_bench [--mem SIZE] [--boots N]"),
        }
    }
    let kernel = bench::our_bin("uml-kernel");
    let linux = linux_uml().expect("linux.uml is needed for the comparison");
    let dir = scratch();
    let home = dir.path();
    let root = GuestImage::build(&home.join("root.img"), INIT).path;
    let blank = home.join("blank.img");
    let out = run(
        Command::new("mkfs.ext2")
            .args(["-q", "-F", "-b", &DATA_BLOCK.to_string()])
            .arg(&blank)
            .arg(format!("{DATA_MIB}M")),
        LIMIT,
    );
    assert!(out.success(), "mkfs.ext2: {out:?}");
    println!(
        "fs_bench: {FILE_MIB} MiB file, {FILES} files; data disk ext2 {DATA_MIB} MiB, \
         {DATA_BLOCK}-byte blocks; mem={mem} for both"
    );

    let ours_img = home.join("ours-data.img");
    let linux_img = home.join("linux-data.img");
    cp_sparse(&blank, &ours_img);
    cp_sparse(&blank, &linux_img);
    let ours = run_ours(&kernel, home, &root, &ours_img, &mem);
    let theirs = run_linux(&linux, home, &root, &linux_img, &mem);
    check_image(&ours_img, "uml-kernel");
    check_image(&linux_img, "linux.uml");
    ours.print("uml-kernel");
    theirs.print("linux.uml");
    let ratio = |a: Duration, b: Duration| b.as_secs_f64() / a.as_secs_f64();
    println!(
        "ratio (uml-kernel speed / linux.uml speed): write {:.2}x, read {:.2}x, files {:.2}x",
        ratio(ours.write, theirs.write),
        ratio(ours.read, theirs.read),
        ratio(ours.files, theirs.files),
    );

    let (seen, stamps): (Vec<_>, Vec<_>) = (0..boots)
        .map(|i| our_boot(&kernel, home, &root, i))
        .unzip();
    let lx: Vec<Duration> = (0..3).map(|i| linux_boot(home, &root, &mem, i)).collect();
    let (seen, stamp, lx) = (median(seen), median(stamps), median(lx));
    println!(
        "boot: uml-kernel exec to root mounted {:.2} ms median of {boots} (its log stamp \
         {:.2} ms); linux.uml exec to first init line {:.0} ms median of 3; ratio {:.0}x",
        ms(seen),
        ms(stamp),
        ms(lx),
        lx.as_secs_f64() / seen.as_secs_f64()
    );
    let met = |ok: bool| if ok { "met" } else { "MISSED" };
    println!(
        "targets: write {}, read {}, files {} (>= linux.uml); boot to root mounted <= 10 ms {}",
        met(ours.write <= theirs.write),
        met(ours.read <= theirs.read),
        met(ours.files <= theirs.files),
        met(seen <= Duration::from_millis(10)),
    );
}
