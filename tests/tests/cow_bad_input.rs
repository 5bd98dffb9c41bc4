//! Bad input to uml_moo and uml_mkcow: each case gets a one-line error naming the file
//! and a nonzero exit, and neither the backing file nor any output is touched.
//! (Acceptance 4 of the COW issue, with the kill -9 resume of `uml_moo -d`.)
#![allow(clippy::unwrap_used)] // a test that unwraps fails with the error shown

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tests::{fingerprint, our_bin, require_root, run, run_ok, scratch, Fingerprint, Output};

const DATA_OFFSET: usize = 16384;

struct Case {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    cow: PathBuf,
    back: PathBuf,
    back_print: Fingerprint,
}

/// A 4 MiB backing file and a COW over it with a few dirty sectors.
fn case() -> Case {
    let dir = scratch();
    let d = dir.path().to_owned();
    let back = d.join("back.img");
    let bytes: Vec<u8> = (0..4u32 << 20).map(|i| (i % 253) as u8).collect();
    fs::write(&back, bytes).unwrap();
    let cow = d.join("disk.cow");
    run_ok(Command::new(our_bin("uml_mkcow")).arg(&cow).arg(&back));
    let mut c = fs::read(&cow).unwrap();
    c[8192] = 0b1010_0101;
    c[DATA_OFFSET..DATA_OFFSET + 4096].fill(0x5a);
    fs::write(&cow, c).unwrap();
    Case {
        back_print: fingerprint(&back),
        _dir: dir,
        dir: d,
        cow,
        back,
    }
}

impl Case {
    fn edit_cow(&self, f: impl FnOnce(&mut Vec<u8>)) {
        let mut c = fs::read(&self.cow).unwrap();
        f(&mut c);
        fs::write(&self.cow, c).unwrap();
    }

    fn files(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// Runs uml_moo in both modes with `extra` arguments and checks the failure.
    fn expect_failure(&self, extra: &[&str], names: &str, mention: &[&str]) {
        let before = self.files();
        let cow_print = fingerprint(&self.cow);
        let new = self.dir.join("merged.img");
        for destructive in [false, true] {
            let mut cmd = Command::new(our_bin("uml_moo"));
            cmd.args(extra);
            if destructive {
                cmd.arg("-d").arg(&self.cow);
            } else {
                cmd.arg(&self.cow).arg(&new);
            }
            let out = run(&mut cmd, Duration::from_secs(20));
            check_one_line_error(&out, names, mention);
            assert_eq!(
                fingerprint(&self.back),
                self.back_print,
                "backing file touched"
            );
            assert_eq!(fingerprint(&self.cow), cow_print, "COW file touched");
            assert_eq!(self.files(), before, "files appeared or vanished");
        }
    }
}

fn check_one_line_error(out: &Output, names: &str, mention: &[&str]) {
    assert_eq!(out.code, Some(1), "exit status; stderr: {}", out.stderr);
    assert!(out.stdout.is_empty(), "stdout: {}", out.stdout);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "not one line: {:?}", out.stderr);
    assert!(lines[0].starts_with("uml_moo: "), "{}", lines[0]);
    assert!(
        lines[0].contains(names),
        "{:?} does not name {names}",
        lines[0]
    );
    for m in mention {
        assert!(lines[0].contains(m), "{:?} does not mention {m}", lines[0]);
    }
}

#[test]
fn truncated_header() {
    let c = case();
    c.edit_cow(|b| b.truncate(100));
    c.expect_failure(&[], "disk.cow", &["truncated"]);
    c.edit_cow(|b| b.truncate(5));
    c.expect_failure(&[], "disk.cow", &["not a COW"]);
}

#[test]
fn wrong_magic() {
    let c = case();
    c.edit_cow(|b| b[0] = b'X');
    c.expect_failure(&[], "disk.cow", &["not a COW file"]);
}

#[test]
fn unknown_version() {
    let c = case();
    c.edit_cow(|b| b[7] = 7);
    c.expect_failure(&[], "disk.cow", &["version 7"]);
}

#[test]
fn alignment_zero() {
    let c = case();
    c.edit_cow(|b| b[24..28].fill(0));
    c.expect_failure(&[], "disk.cow", &["alignment"]);
}

#[test]
fn bitmap_past_the_end() {
    let c = case();
    c.edit_cow(|b| b.truncate(8192 + 100));
    c.expect_failure(&[], "disk.cow", &["bitmap past the end"]);
}

#[test]
fn data_area_past_the_end() {
    let c = case();
    c.edit_cow(|b| b.truncate(DATA_OFFSET + 1000));
    c.expect_failure(&[], "disk.cow", &["data area past the end"]);
}

#[test]
fn missing_backing_file() {
    let c = case();
    c.expect_failure(
        &["-b", "/nonexistent/back.img"],
        "/nonexistent/back.img",
        &["No such file"],
    );
}

#[test]
fn size_mismatch_names_both_sizes() {
    let c = case();
    let other = c.dir.join("other.img");
    fs::write(&other, vec![0u8; 1 << 20]).unwrap();
    let o = other.to_str().unwrap().to_owned();
    c.expect_failure(
        &["-b", &o],
        "other.img",
        &["Size mismatch", "4194304", "1048576"],
    );
}

#[test]
fn mtime_mismatch_names_both_times() {
    let c = case();
    let header_mtime = fs::metadata(&c.back).unwrap().mtime();
    let later = filetime_plus(&c.back, 1000);
    let c = Case {
        back_print: fingerprint(&c.back),
        ..c
    };
    c.expect_failure(
        &[],
        "back.img",
        &[
            "mtime mismatch",
            &header_mtime.to_string(),
            &later.to_string(),
        ],
    );
}

/// Moves a file's mtime forward by `secs` with touch; returns the new mtime.
fn filetime_plus(path: &Path, secs: i64) -> i64 {
    let t = fs::metadata(path).unwrap().mtime() + secs;
    run_ok(
        Command::new("touch")
            .arg("-m")
            .arg("-d")
            .arg(format!("@{t}"))
            .arg(path),
    );
    t
}

#[test]
fn output_over_an_input_is_refused() {
    let c = case();
    let cow_print = fingerprint(&c.cow);
    for target in [&c.cow, &c.back] {
        let out = run(
            Command::new(our_bin("uml_moo")).arg(&c.cow).arg(target),
            Duration::from_secs(20),
        );
        check_one_line_error(
            &out,
            target.file_name().unwrap().to_str().unwrap(),
            &["refusing"],
        );
        assert_eq!(fingerprint(&c.back), c.back_print);
        assert_eq!(fingerprint(&c.cow), cow_print);
    }
    // -b naming the COW itself as the backing file of an in-place merge.
    let out = run(
        Command::new(our_bin("uml_moo"))
            .arg("-d")
            .arg("-b")
            .arg(&c.cow)
            .arg(&c.cow),
        Duration::from_secs(20),
    );
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert_eq!(fingerprint(&c.cow), cow_print);
}

/// Runs uml_moo as the unprivileged user nobody (root can read and write anything).
fn as_nobody(args: &[&Path]) -> Output {
    require_root("dropping to nobody with setpriv");
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(our_bin("uml_moo"));
    cmd.args(args);
    run(&mut cmd, Duration::from_secs(20))
}

#[test]
fn unreadable_backing_file() {
    let c = case();
    fs::set_permissions(&c.back, fs::Permissions::from_mode(0o000)).unwrap();
    let new = c.dir.join("merged.img");
    let out = as_nobody(&[&c.cow, &new]);
    check_one_line_error(&out, "back.img", &["Permission denied"]);
    assert!(!new.exists());
    fs::set_permissions(&c.back, fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(fingerprint(&c.back), c.back_print);
}

#[test]
fn new_file_in_a_read_only_directory() {
    let c = case();
    let ro = c.dir.join("ro");
    fs::create_dir(&ro).unwrap();
    fs::set_permissions(&ro, fs::Permissions::from_mode(0o555)).unwrap();
    let new = ro.join("merged.img");
    let out = as_nobody(&[&c.cow, &new]);
    check_one_line_error(&out, "merged.img", &["Permission denied"]);
    assert_eq!(fs::read_dir(&ro).unwrap().count(), 0);
    assert_eq!(fingerprint(&c.back), c.back_print);
}

#[test]
fn disk_full_leaves_no_output() {
    require_root("mounting a small tmpfs");
    let c = case();
    let small = c.dir.join("small");
    fs::create_dir(&small).unwrap();
    let new = small.join("merged.img");
    // A 1 MiB tmpfs in a private mount namespace: the 4 MiB image cannot fit.
    let script = format!(
        "mount -t tmpfs -o size=1m tmpfs {d} && {moo} {cow} {new}; rc=$?; ls -A {d}; exit $rc",
        d = small.display(),
        moo = our_bin("uml_moo").display(),
        cow = c.cow.display(),
        new = new.display()
    );
    let out = run(
        Command::new("unshare").args(["--mount", "sh", "-c", &script]),
        Duration::from_secs(30),
    );
    check_one_line_error(&out, "merged.img", &["No space left on device"]);
    assert_eq!(fingerprint(&c.back), c.back_print);
}

#[test]
fn usage_errors_print_usage_and_never_crash() {
    for args in [
        &["-d"][..],
        &[][..],
        &["only.cow"][..],
        &["-d", "a", "b"][..],
        &["--info", "a", "b"][..],
    ] {
        let out = run(
            Command::new(our_bin("uml_moo")).args(args),
            Duration::from_secs(10),
        );
        assert_eq!(out.code, Some(2), "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains("Usage: uml_moo"),
            "{args:?}: {}",
            out.stderr
        );
    }
    for args in [&[][..], &["-f", "only.cow"][..]] {
        let out = run(
            Command::new(our_bin("uml_mkcow")).args(args),
            Duration::from_secs(10),
        );
        assert_eq!(out.code, Some(2), "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains("Usage: uml_mkcow"),
            "{args:?}: {}",
            out.stderr
        );
    }
}

/// What a killed `uml_moo -d` leaves behind (its journal, and a backing file with a new
/// mtime) is named, with the way out: --info and a plain merge say to rerun -d, which
/// finishes the merge. A backing file that is simply gone suggests -b.
#[test]
fn interrupted_in_place_merge_and_missing_backing_file_say_what_to_do() {
    let c = case();
    let (cm, bm) = (
        fs::metadata(&c.cow).unwrap(),
        fs::metadata(&c.back).unwrap(),
    );
    let journal = c.dir.join("disk.cow.uml_moo-journal");
    fs::write(
        &journal,
        format!(
            "uml_moo destructive merge journal v1\ncow {} {}\nbacking {} {}\n\
             header-mtime {}\nsize {}\n",
            cm.dev(),
            cm.ino(),
            bm.dev(),
            bm.ino(),
            bm.mtime(),
            bm.len()
        ),
    )
    .unwrap();
    filetime_plus(&c.back, 5);
    let info = run_ok(Command::new(our_bin("uml_moo")).arg("--info").arg(&c.cow));
    assert!(
        info.stdout.contains("Pending merge:  ")
            && info.stdout.contains("disk.cow.uml_moo-journal")
            && info.stdout.contains("uml_moo -d"),
        "{}",
        info.stdout
    );
    let new = c.dir.join("merged.img");
    let out = run(
        Command::new(our_bin("uml_moo")).arg(&c.cow).arg(&new),
        Duration::from_secs(20),
    );
    check_one_line_error(&out, "disk.cow.uml_moo-journal", &["interrupted", "-d"]);
    assert!(!new.exists());
    let done = run_ok(Command::new(our_bin("uml_moo")).arg("-d").arg(&c.cow));
    assert!(
        done.stderr.contains("finished an interrupted merge"),
        "{done:?}"
    );
    assert!(!journal.exists());

    // The backing file the header names is gone: -b is suggested.
    fs::rename(&c.back, c.dir.join("moved.img")).unwrap();
    let out = run(
        Command::new(our_bin("uml_moo")).arg(&c.cow).arg(&new),
        Duration::from_secs(20),
    );
    check_one_line_error(&out, "back.img", &["No such file", "-b BACKING"]);
}

/// --info says when a running UML (here, a process holding the same lock linux.uml
/// takes) has the COW file.
#[test]
fn info_names_the_process_holding_the_cow() {
    let c = case();
    let holder = c.dir.join("hold.sh");
    // linux.uml locks its COW file with an fcntl write lock; perl (in every Debian,
    // perl-base) takes the same kind of lock (struct flock: type, whence, start, len, pid).
    fs::write(
        &holder,
        "exec perl -e 'use Fcntl; open(my $f, \"+<\", $ARGV[0]) or die; \
         my $l = pack(\"s s x4 q q l x4\", F_WRLCK, 0, 0, 0, 0); \
         fcntl($f, F_SETLK, $l) or die \"lock: $!\"; $|=1; print \"locked\\n\"; sleep 60' \"$1\"",
    )
    .unwrap();
    let mut child = Command::new("sh")
        .arg(&holder)
        .arg(&c.cow)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line, "locked\n");
    let info = run_ok(Command::new(our_bin("uml_moo")).arg("--info").arg(&c.cow));
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        info.stdout
            .contains(&format!("In use:         locked by pid {}", child.id())),
        "{}",
        info.stdout
    );
}
