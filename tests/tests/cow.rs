//! COW disks end to end: our uml_mkcow and uml_moo against linux.uml and the C tools.
//! (Acceptance 1-3 of the COW issue; bad input is in cow_bad_input.rs.)
#![allow(clippy::unwrap_used)] // a test that unwraps fails with the error shown

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tests::{allocated_bytes, c_tool, fingerprint, our_bin, run_ok, scratch, GuestImage, Uml};

/// The guest writes a 3.4 MB file of known content (`seq 1 500000`) and a small text.
const WRITER_INIT: &str = "#!/bin/sh
mount -t proc proc /proc
seq 1 500000 > /big.txt
echo 'hello from the guest' > /hello.txt
sync
poweroff -f
";

fn expected_big() -> String {
    (1..=500_000).map(|i| format!("{i}\n")).collect()
}

fn debugfs_cat(image: &Path, file: &str) -> String {
    run_ok(
        Command::new("debugfs")
            .arg("-R")
            .arg(format!("cat {file}"))
            .arg(image),
    )
    .stdout
}

/// Checks a merged image: clean file system, the guest's files with their content.
fn check_merged_image(image: &Path) {
    run_ok(Command::new("e2fsck").arg("-fn").arg(image));
    assert!(
        debugfs_cat(image, "/big.txt") == expected_big(),
        "big.txt differs in {}",
        image.display()
    );
    assert_eq!(debugfs_cat(image, "/hello.txt"), "hello from the guest\n");
}

/// Copies a file keeping its mtime (what the COW header checks).
fn copy_with_mtime(from: &Path, to: &Path) {
    run_ok(
        Command::new("cp")
            .arg("--preserve=timestamps")
            .arg(from)
            .arg(to),
    );
}

/// Merges `cow` (over `backing`) with our uml_moo and the C one, in both modes, checks
/// that all four results are the same bytes and that ours is at least as sparse.
/// Returns our non-destructive result.
fn merge_both_ways(dir: &Path, cow: &Path, backing: &Path) -> PathBuf {
    let c_moo = c_tool("uml_moo").expect("C uml_moo");
    let before = fingerprint(backing);

    let ours = dir.join("merged.ours");
    let theirs = dir.join("merged.c");
    run_ok(Command::new(our_bin("uml_moo")).arg(cow).arg(&ours));
    run_ok(Command::new(&c_moo).arg(cow).arg(&theirs));
    assert_eq!(
        fingerprint(backing),
        before,
        "a copying merge touched the backing file"
    );
    assert!(
        fs::read(&ours).unwrap() == fs::read(&theirs).unwrap(),
        "merged images differ from the C tool's"
    );
    assert!(
        allocated_bytes(&ours) <= allocated_bytes(&theirs),
        "ours allocates {} bytes, the C tool's {}",
        allocated_bytes(&ours),
        allocated_bytes(&theirs)
    );

    // In place, into copies of the backing file (-b), with -b on either side of -d.
    let in_ours = dir.join("inplace.ours");
    let in_theirs = dir.join("inplace.c");
    copy_with_mtime(backing, &in_ours);
    copy_with_mtime(backing, &in_theirs);
    run_ok(
        Command::new(our_bin("uml_moo"))
            .arg("-b")
            .arg(&in_ours)
            .arg("-d")
            .arg(cow),
    );
    run_ok(
        Command::new(&c_moo)
            .arg("-d")
            .arg("-b")
            .arg(&in_theirs)
            .arg(cow),
    );
    let merged = fs::read(&ours).unwrap();
    assert!(
        fs::read(&in_theirs).unwrap() == merged,
        "C -d result differs from the merged image"
    );
    assert!(
        fs::read(&in_ours).unwrap() == merged,
        "our -d result differs from the merged image"
    );
    assert!(
        !uml_moo_journal(cow).exists(),
        "journal left behind after a finished merge"
    );
    ours
}

fn uml_moo_journal(cow: &Path) -> PathBuf {
    let mut s = cow.as_os_str().to_owned();
    s.push(".uml_moo-journal");
    PathBuf::from(s)
}

#[test]
fn our_cow_booted_by_linux_uml_merges_like_the_c_tool() {
    let dir = scratch();
    let d = dir.path();
    let Some(uml) = Uml::new(&d.join("home"), "cowmk") else {
        return;
    };
    let image = GuestImage::build(&d.join("root.img"), WRITER_INIT).path;
    let cow = d.join("root.cow");
    run_ok(Command::new(our_bin("uml_mkcow")).arg(&cow).arg(&image));
    let before = fingerprint(&image);

    let out = uml
        .root(&format!("{},{}", cow.display(), image.display()))
        .boot_to_poweroff(Duration::from_secs(120));
    assert!(
        out.stdout.contains("reboot: System halted"),
        "guest did not finish:\n{}",
        out.stdout
    );
    assert_eq!(
        fingerprint(&image),
        before,
        "linux.uml wrote to the backing file"
    );

    let info = run_ok(
        Command::new(our_bin("uml_moo"))
            .args(["--info", "--json"])
            .arg(&cow),
    )
    .stdout;
    assert!(info.contains("\"backing_matches\":true"), "{info}");
    assert!(
        !info.contains("\"dirty_sectors\":0,"),
        "the guest's writes are not in the COW: {info}"
    );

    let merged = merge_both_ways(d, &cow, &image);
    check_merged_image(&merged);
}

#[test]
fn cow_created_by_linux_uml_merges_like_the_c_tool() {
    let dir = scratch();
    let d = dir.path();
    let Some(uml) = Uml::new(&d.join("home"), "cowkern") else {
        return;
    };
    let image = GuestImage::build(&d.join("root.img"), WRITER_INIT).path;
    let cow = d.join("kernel.cow");
    let out = uml
        .root(&format!("{},{}", cow.display(), image.display()))
        .boot_to_poweroff(Duration::from_secs(120));
    assert!(
        out.stdout.contains("as COW file for"),
        "kernel did not create the COW:\n{}",
        out.stdout
    );

    // Our reading of the kernel's header: the same fields uml_mkcow writes for this
    // backing file (the kernel leaves garbage after the path's NUL; ignore it).
    let ours = d.join("ours.cow");
    run_ok(Command::new(our_bin("uml_mkcow")).arg(&ours).arg(&image));
    let k = fs::read(&cow).unwrap();
    let o = fs::read(&ours).unwrap();
    let path_end = 32 + k[32..].iter().position(|&b| b == 0).unwrap();
    assert_eq!(
        &k[..path_end],
        &o[..path_end],
        "header fields differ from the kernel's"
    );
    assert_eq!(k.len(), o.len(), "COW length differs from the kernel's");

    let merged = merge_both_ways(d, &cow, &image);
    check_merged_image(&merged);
}

#[test]
fn uml_mkcow_writes_the_c_tools_bytes() {
    let Some(c_mkcow) = c_tool("uml_mkcow") else {
        return;
    };
    let dir = scratch();
    let d = dir.path();
    let back = d.join("back.img");
    fs::write(&back, vec![7u8; 3 << 20]).unwrap();
    // Relative names, with a symlinked directory: the stored path resolves the
    // directory (as the kernel does) but keeps the file name.
    fs::create_dir(d.join("real")).unwrap();
    std::os::unix::fs::symlink(d.join("real"), d.join("link")).unwrap();
    fs::rename(&back, d.join("real/back.img")).unwrap();
    for (name, tool) in [
        ("c.cow", c_mkcow.clone()),
        ("ours.cow", our_bin("uml_mkcow")),
    ] {
        run_ok(
            Command::new(tool)
                .current_dir(d)
                .arg(name)
                .arg("link/back.img"),
        );
    }
    let c = fs::read(d.join("c.cow")).unwrap();
    let ours = fs::read(d.join("ours.cow")).unwrap();
    assert!(c == ours, "uml_mkcow output differs from the C tool's");
    let mode = |p: &str| {
        std::os::unix::fs::PermissionsExt::mode(&fs::metadata(d.join(p)).unwrap().permissions())
    };
    assert_eq!(mode("ours.cow") & 0o777, mode("c.cow") & 0o777);
    assert!(allocated_bytes(&d.join("ours.cow")) <= allocated_bytes(&d.join("c.cow")));
}

#[test]
fn uml_mkcow_refuses_an_existing_cow_and_force_makes_a_fresh_one() {
    let dir = scratch();
    let d = dir.path();
    let back = d.join("back.img");
    fs::write(&back, vec![1u8; 1 << 20]).unwrap();
    let cow = d.join("disk.cow");
    run_ok(Command::new(our_bin("uml_mkcow")).arg(&cow).arg(&back));
    let fresh = fs::read(&cow).unwrap();

    // Dirty it: set bitmap bits and data as a UML would.
    let mut used = fresh.clone();
    used[8192] = 0xff;
    used[16384..16384 + 4096].fill(0xab);
    fs::write(&cow, &used).unwrap();

    let out = tests::run(
        Command::new(our_bin("uml_mkcow")).arg(&cow).arg(&back),
        Duration::from_secs(10),
    );
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("disk.cow") && out.stderr.contains("File exists"),
        "{}",
        out.stderr
    );
    assert!(
        fs::read(&cow).unwrap() == used,
        "a refused uml_mkcow changed the COW file"
    );

    run_ok(
        Command::new(our_bin("uml_mkcow"))
            .arg("-f")
            .arg(&cow)
            .arg(&back),
    );
    assert!(
        fs::read(&cow).unwrap() == fresh,
        "-f did not give a fresh COW file"
    );

    // A failed run (missing backing file) leaves no file behind.
    let none = d.join("none.cow");
    let out = tests::run(
        Command::new(our_bin("uml_mkcow"))
            .arg(&none)
            .arg(d.join("missing.img")),
        Duration::from_secs(10),
    );
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("missing.img"), "{}", out.stderr);
    assert!(!none.exists(), "failed uml_mkcow left a file");
    let leftovers: Vec<_> = fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 2, "stray files: {leftovers:?}");

    // -f never replaces the backing file itself.
    let out = tests::run(
        Command::new(our_bin("uml_mkcow"))
            .arg("-f")
            .arg(&back)
            .arg(&back),
        Duration::from_secs(10),
    );
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert_eq!(fs::read(&back).unwrap(), vec![1u8; 1 << 20]);
}

#[test]
fn progress_bar_only_on_a_terminal_and_not_with_quiet() {
    let dir = scratch();
    let d = dir.path();
    let back = d.join("back.img");
    fs::write(&back, vec![3u8; 64 << 20]).unwrap();
    let cow = d.join("disk.cow");
    run_ok(Command::new(our_bin("uml_mkcow")).arg(&cow).arg(&back));
    let moo = our_bin("uml_moo");
    // script(1) gives uml_moo a terminal as stderr.
    let on_terminal = |extra: &str, out: &str| {
        let line = format!(
            "'{}' {extra} '{}' '{}'",
            moo.display(),
            cow.display(),
            d.join(out).display()
        );
        let o = tests::run(
            Command::new("script").args(["-q", "-e", "-c", &line, "/dev/null"]),
            Duration::from_secs(60),
        );
        assert!(o.success(), "{o:?}");
        o.stdout
    };
    assert!(
        on_terminal("", "a.img").contains("merging"),
        "no progress bar on a terminal"
    );
    assert!(
        !on_terminal("--quiet", "b.img").contains("merging"),
        "progress bar despite --quiet"
    );
    // Without a terminal: no bar, only the one-line summary (none with -q).
    let o = run_ok(Command::new(&moo).arg(&cow).arg(d.join("c.img")));
    let lines: Vec<&str> = o.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "output without a terminal: {:?}", o.stderr);
    assert!(
        lines[0].starts_with("uml_moo: merged ")
            && lines[0].contains("disk.cow")
            && lines[0].contains("c.img")
            && lines[0].contains("64.00 MiB disk")
            && lines[0].ends_with(" s"),
        "summary: {:?}",
        lines[0]
    );
    let o = run_ok(Command::new(&moo).arg("-q").arg(&cow).arg(d.join("d.img")));
    assert!(o.stderr.is_empty(), "output with -q: {:?}", o.stderr);
}

/// The visible lines a terminal showed: split at carriage returns and newlines, with
/// escape sequences (cursor moves, line clears) taken out.
fn terminal_lines(raw: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(raw);
    let mut plain = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters final-byte
            if chars.peek() == Some(&'[') {
                chars.next();
                for f in chars.by_ref() {
                    if ('@'..='~').contains(&f) {
                        break;
                    }
                }
            }
            continue;
        }
        plain.push(c);
    }
    plain
        .split(['\r', '\n'])
        .map(str::to_owned)
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn progress_line_fits_80_and_40_column_terminals() {
    let dir = scratch();
    let d = dir.path();
    // A fresh backing file and COW for each run (-d changes the backing file).
    let fresh = |i: usize| {
        let back = d.join(format!("back{i}.img"));
        fs::write(&back, vec![3u8; 64 << 20]).unwrap();
        let cow = d.join(format!("disk{i}.cow"));
        run_ok(Command::new(our_bin("uml_mkcow")).arg(&cow).arg(&back));
        let mut c = fs::read(&cow).unwrap();
        let data = c.len() - 4096;
        c[data..].fill(0x77);
        fs::write(&cow, &c).unwrap();
        cow
    };
    for (cols, i) in [(80u16, 0), (40, 1)] {
        for destructive in [false, true] {
            let cow = fresh(2 * i + usize::from(destructive));
            let mut cmd = Command::new(our_bin("uml_moo"));
            if destructive {
                cmd.arg("-d").arg(&cow);
            } else {
                cmd.arg(&cow).arg(d.join(format!("out{i}.img")));
            }
            let mut term = tests::pty::PtySession::spawn_sized(&mut cmd, 24, cols);
            let (status, timed_out) = term.wait(Duration::from_secs(120));
            assert!(status.success() && !timed_out, "{}", term.screen());
            let lines = terminal_lines(&term.seen);
            let bars: Vec<&String> = lines
                .iter()
                .filter(|l| !l.starts_with("uml_moo: "))
                .collect();
            assert!(
                bars.iter().any(|l| l.contains('[') && l.contains(']')),
                "no progress line at {cols} columns: {lines:?}"
            );
            for l in &bars {
                assert!(
                    l.chars().count() <= usize::from(cols),
                    "{} columns wide on a {cols}-column terminal: {l:?}",
                    l.chars().count()
                );
            }
            assert!(
                lines.iter().any(|l| l.starts_with("uml_moo: merged ")),
                "no summary: {lines:?}"
            );
        }
    }
}
