//! uml_moo run by root on another user's COW file (issue 15, item 12): the backing path
//! in the header is the COW owner's choice, so an unprivileged user's COW naming a
//! root-only file (with its real size and mtime, which anyone can stat) must neither
//! overwrite that file (`-d`) nor copy it into an image (a plain merge). `-b` names the
//! backing file explicitly and is the way past the check; the merged image gets the
//! COW file's mode.
#![allow(clippy::unwrap_used)] // a test that unwraps fails with the error shown

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tests::{fingerprint, our_bin, require_root, run, run_input, scratch, Output};
use uml_proto::cow::CowHeader;

const NOBODY: u32 = 65534;
const LIMIT: Duration = Duration::from_secs(30);

/// A command run as the unprivileged user nobody.
fn as_nobody(program: &str) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", program]);
    cmd
}

/// The bytes of a COW file over `backing` (as its header records it) whose first eight
/// sectors hold `fill`.
fn cow_bytes(backing: &Path, size: u64, mtime: u32, fill: u8) -> Vec<u8> {
    let header = CowHeader::new_v3(backing.as_os_str().as_encoded_bytes().to_vec(), mtime, size);
    let g = header.geometry();
    let mut bytes = vec![0u8; (g.data_offset + size) as usize];
    let h = header.to_bytes();
    bytes[..h.len()].copy_from_slice(&h);
    bytes[g.bitmap_offset as usize] = 0xff;
    let data = g.data_offset as usize;
    bytes[data..data + 8 * 512].fill(fill);
    bytes
}

/// nobody writes `bytes` to `path` (in a directory nobody owns), mode `mode`.
fn write_as_nobody(path: &Path, bytes: &[u8], mode: &str) {
    let out = run_input(
        as_nobody("sh").args([
            "-c",
            "cat > \"$1\" && chmod \"$2\" \"$1\"",
            "sh",
            path.to_str().unwrap(),
            mode,
        ]),
        bytes,
        LIMIT,
    );
    assert!(
        out.success(),
        "nobody could not write its COW file: {out:?}"
    );
    assert_eq!(fs::metadata(path).unwrap().uid(), NOBODY);
}

fn moo(args: &[&Path]) -> Output {
    let mut cmd = Command::new(our_bin("uml_moo"));
    cmd.args(args);
    run(&mut cmd, LIMIT)
}

fn one_line_refusal(out: &Output, what: &str) {
    assert_eq!(out.code, Some(1), "{what}: {out:?}");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{what}: {:?}", out.stderr);
    assert!(
        lines[0].contains("secret") && lines[0].contains("uid 65534") && lines[0].contains("-b"),
        "{what}: {:?}",
        lines[0]
    );
}

struct Scene {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    /// Root's file in a directory others may pass through but not list.
    secret: PathBuf,
    /// nobody's directory.
    attic: PathBuf,
}

fn scene() -> Scene {
    require_root("uml_moo's owner checks (root merging nobody's COW file)");
    let dir = scratch();
    let d = dir.path().to_owned();
    let vault = d.join("vault");
    fs::create_dir(&vault).unwrap();
    fs::set_permissions(&vault, fs::Permissions::from_mode(0o711)).unwrap();
    let secret = vault.join("secret");
    let bytes: Vec<u8> = b"root's secret\n"
        .iter()
        .copied()
        .cycle()
        .take(1 << 20)
        .collect();
    fs::write(&secret, bytes).unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
    let attic = d.join("attic");
    fs::create_dir(&attic).unwrap();
    std::os::unix::fs::chown(&attic, Some(NOBODY), Some(NOBODY)).unwrap();
    Scene {
        _dir: dir,
        dir: d,
        secret,
        attic,
    }
}

#[test]
fn root_merging_a_users_cow_never_reads_or_writes_a_file_the_user_could_not() {
    let s = scene();
    // The attacker learns the secret's size and mtime (stat needs no read permission)
    // and writes a COW file naming it, with data of its own in the first sectors.
    let st = run(
        as_nobody("stat").args(["-c", "%s %Y", s.secret.to_str().unwrap()]),
        LIMIT,
    );
    assert!(st.success(), "nobody cannot stat the secret: {st:?}");
    let (size, mtime) = st.stdout.trim().split_once(' ').unwrap();
    let (size, mtime): (u64, u32) = (size.parse().unwrap(), mtime.parse().unwrap());
    let cow = s.attic.join("disk.cow");
    write_as_nobody(&cow, &cow_bytes(&s.secret, size, mtime, b'X'), "0644");
    let before = fingerprint(&s.secret);

    // Root merges it in place: the secret must not be overwritten.
    let out = moo(&[Path::new("-d"), &cow]);
    one_line_refusal(&out, "uml_moo -d");
    assert_eq!(fingerprint(&s.secret), before, "the secret was written");

    // Root merges it into a new image: the secret must not be copied out.
    let merged = s.attic.join("merged.img");
    let out = moo(&[&cow, &merged]);
    one_line_refusal(&out, "uml_moo COW NEW");
    assert!(!merged.exists(), "an image was made");
    let left: Vec<_> = fs::read_dir(&s.attic)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        left,
        vec![std::ffi::OsString::from("disk.cow")],
        "files left behind"
    );

    // --info says why too, and touches nothing.
    let out = moo(&[Path::new("--info"), &cow]);
    assert!(out.success(), "{out:?}");
    assert!(out.stdout.contains("(uid 65534) may not read"), "{out:?}");
    assert_eq!(fingerprint(&s.secret), before);

    // Naming the backing file with -b is root's explicit choice: it is used, and the
    // image gets the COW file's mode.
    fs::set_permissions(&cow, fs::Permissions::from_mode(0o640)).unwrap();
    let explicit = s.dir.join("explicit.img");
    let out = moo(&[Path::new("-b"), &s.secret, &cow, &explicit]);
    assert!(out.success(), "{out:?}");
    assert_eq!(
        fs::metadata(&explicit).unwrap().mode() & 0o7777,
        0o640 & !umask()
    );
    let img = fs::read(&explicit).unwrap();
    assert_eq!(&img[..8 * 512], &[b'X'; 8 * 512][..]);
    assert_eq!(fingerprint(&s.secret), before);
}

#[test]
fn root_merges_a_users_cow_over_the_users_own_backing_file_with_the_cows_mode() {
    let s = scene();
    let back = s.attic.join("pub.img");
    write_as_nobody(&back, &vec![7u8; 1 << 20], "0644");
    let meta = fs::metadata(&back).unwrap();
    let cow = s.attic.join("legit.cow");
    write_as_nobody(
        &cow,
        &cow_bytes(&back, meta.len(), meta.mtime() as u32, b'L'),
        "0600",
    );
    let out_img = s.dir.join("legit.img");
    let out = moo(&[&cow, &out_img]);
    assert!(out.success(), "{out:?}");
    assert_eq!(
        fs::metadata(&out_img).unwrap().mode() & 0o7777,
        0o600,
        "the image of a private COW file must be private"
    );
    let img = fs::read(&out_img).unwrap();
    assert_eq!(&img[..512], &[b'L'; 512][..]);
    assert_eq!(img[8 * 512], 7);
    // In place: the owner may write pub.img, so root may merge into it.
    let out = moo(&[Path::new("-d"), &cow]);
    assert!(out.success(), "{out:?}");
    assert_eq!(&fs::read(&back).unwrap()[..512], &[b'L'; 512][..]);
}

/// The process umask (uml_moo inherits it).
fn umask() -> u32 {
    let out = run(Command::new("sh").args(["-c", "umask"]), LIMIT);
    u32::from_str_radix(out.stdout.trim(), 8).unwrap()
}

/// The same attack between two unprivileged users: uid 4242's COW file names nobody's
/// private file; nobody (who cannot take on uid 4242) merges it and must be refused by
/// the permission bits, the private file neither overwritten nor copied.
#[test]
fn a_user_merging_another_users_cow_is_refused_their_own_private_file() {
    let s = scene();
    let private = s.attic.join("private.img");
    write_as_nobody(&private, &vec![9u8; 1 << 20], "0600");
    let meta = fs::metadata(&private).unwrap();
    let cow = s.attic.join("evil.cow");
    fs::write(
        &cow,
        cow_bytes(&private, meta.len(), meta.mtime() as u32, b'E'),
    )
    .unwrap();
    std::os::unix::fs::chown(&cow, Some(4242), Some(4242)).unwrap();
    fs::set_permissions(&cow, fs::Permissions::from_mode(0o666)).unwrap();
    let before = fingerprint(&private);
    let merged = s.attic.join("merged.img");
    for args in [
        vec![cow.as_path(), merged.as_path()],
        vec![Path::new("-d"), cow.as_path()],
    ] {
        let mut cmd = as_nobody(our_bin("uml_moo").to_str().unwrap());
        cmd.args(&args);
        let out = run(&mut cmd, LIMIT);
        assert_eq!(out.code, Some(1), "{args:?}: {out:?}");
        assert!(
            out.stderr.contains("(uid 4242) may not") && out.stderr.contains("-b"),
            "{args:?}: {out:?}"
        );
        assert!(!merged.exists());
        assert_eq!(
            fingerprint(&private),
            before,
            "{args:?}: the private file changed"
        );
    }
}
