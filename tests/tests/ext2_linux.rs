//! Our ext2 against Linux's: linux.uml mounts an image our kernel's VFS wrote and sees
//! the same tree (modes, owners, sizes, link counts, symlink targets, contents), and an
//! image linux.uml wrote reads identically through our reader and stays e2fsck-clean
//! after our driver changes it.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use kernel::fs::ext2::Ext2Fs;
use kernel::fs::oflag::*;
use kernel::fs::{FileKind, Loc, NewNode, SetAttr, Vfs};
use tests::ext2tree::{assert_same_tree, debugfs_tree, e2fsck_clean, our_tree, Tree};
use tests::{run, scratch, GuestImage, Uml};

fn mkfs(image: &Path, bs: &str) {
    let out = run(
        Command::new("mkfs.ext2")
            .args(["-q", "-F", "-b", bs])
            .arg(image)
            .arg("16M"),
        Duration::from_secs(30),
    );
    assert!(out.success(), "mkfs.ext2: {}", out.stderr);
}

fn mount(image: &Path) -> Vfs {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(image)
        .expect("open image");
    let fs = Ext2Fs::mount(Box::new(file), false, 1 << 20).unwrap_or_else(|e| panic!("mount: {e}"));
    Vfs::new(Box::new(fs), "/dev/ubdb")
}

fn put(vfs: &mut Vfs, r: Loc, path: &str, data: &[u8], offset: u64) {
    let mut f = vfs
        .open(r, path.as_bytes(), O_WRONLY | O_CREAT, 0o644, 0, 0)
        .expect("open");
    f.offset = offset;
    vfs.write(&mut f, data).expect("write");
    vfs.close(f).expect("close");
}

fn md5(data: &[u8]) -> String {
    let mut child = Command::new("md5sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run md5sum");
    let mut stdin = child.stdin.take().expect("stdin");
    let data = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().expect("md5sum output");
    writer.join().expect("writer").expect("write to md5sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string()
}

/// The guest's listing script: one `E|path|hexmode|uid|gid|size|links|target|md5` line
/// per name under /mnt.
const LIST: &str = r#"cd /mnt
find . | sort | while read f; do
  t=-; s=-
  if [ -L "$f" ]; then t=$(readlink "$f"); elif [ -f "$f" ]; then s=$(md5sum < "$f" | cut -d' ' -f1); fi
  echo "E|$f|$(stat -c '%f|%u|%g|%s|%h' "$f")|$t|$s"
done
"#;

/// What the guest should print for `tree` (debugfs's view of the image).
fn expected_lines(tree: &Tree) -> BTreeMap<String, String> {
    let mut links: BTreeMap<u32, usize> = BTreeMap::new();
    for e in tree.values() {
        *links.entry(e.ino).or_default() += 1;
    }
    let mut subdirs: BTreeMap<String, usize> = BTreeMap::new();
    for (path, e) in tree {
        if e.mode & 0o170000 == 0o040000 {
            let parent = path.rsplit_once('/').map_or("", |(p, _)| p).to_string();
            *subdirs.entry(parent).or_default() += 1;
        }
    }
    let mut out = BTreeMap::new();
    for (path, e) in tree {
        let is_dir = e.mode & 0o170000 == 0o040000;
        let size = if is_dir {
            "-".to_string()
        } else {
            e.size.unwrap_or(0).to_string()
        };
        let nlink = if is_dir {
            2 + subdirs.get(path).copied().unwrap_or(0)
        } else {
            links[&e.ino]
        };
        let target = e
            .target
            .as_ref()
            .map_or("-".to_string(), |t| String::from_utf8_lossy(t).into_owned());
        let sum = e.data.as_ref().map_or("-".to_string(), |d| md5(d));
        let line = format!(
            "{:x}|{}|{}|{size}|{nlink}|{target}|{sum}",
            e.mode, e.uid, e.gid
        );
        out.insert(format!(".{path}"), line);
    }
    out
}

/// The guest's lines, directory sizes blanked (they are layout, not content).
fn guest_lines(console: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in console
        .lines()
        .filter_map(|l| l.trim_end_matches('\r').strip_prefix("E|"))
    {
        let f: Vec<&str> = line.splitn(8, '|').collect();
        if f.len() < 8 || f[0] == "." {
            continue;
        }
        let mode = u32::from_str_radix(f[1], 16).unwrap_or(0);
        let size = if mode & 0o170000 == 0o040000 {
            "-"
        } else {
            f[4]
        };
        out.insert(
            f[0].to_string(),
            format!(
                "{}|{}|{}|{size}|{}|{}|{}",
                f[1], f[2], f[3], f[5], f[6], f[7]
            ),
        );
    }
    out
}

fn boot(dir: &Path, disk: &Path, script: &str) -> String {
    let root = dir.join("root.img");
    let init =
        format!("#!/bin/sh\nmount -t proc proc /proc\n{script}\necho GUEST-DONE\npoweroff -f\n");
    GuestImage::build(&root, &init);
    let Some(uml) = Uml::new(&dir.join("home"), "e2") else {
        return String::new();
    };
    let out = uml
        .root(&root.display().to_string())
        .arg(format!("ubd1={}", disk.display()))
        .boot_to_poweroff(Duration::from_secs(120));
    assert!(
        out.stdout.contains("GUEST-DONE"),
        "the guest did not finish:\n{}",
        out.stdout
    );
    out.stdout
}

#[test]
fn linux_uml_reads_what_our_vfs_wrote() {
    let dir = scratch();
    for bs in ["1024", "4096"] {
        let image = dir.path().join("disk.img");
        mkfs(&image, bs);
        let mut vfs = mount(&image);
        let r = vfs.root();
        vfs.mkdir(r, b"/etc", 0o755, 0, 0).expect("mkdir");
        vfs.mkdir(r, b"/home", 0o755, 0, 0).expect("mkdir");
        vfs.mkdir(r, b"/home/user", 0o700, 1000, 1000)
            .expect("mkdir");
        put(&mut vfs, r, "/etc/hostname", b"guest\n", 0);
        let big: Vec<u8> = (0..400_000u32).map(|i| (i * 31 % 257) as u8).collect();
        put(&mut vfs, r, "/home/user/big", &big, 0);
        put(&mut vfs, r, "/sparse", b"tail", 3 << 20);
        put(&mut vfs, r, "/gone", b"x", 0);
        vfs.unlink(r, b"/gone").expect("unlink");
        vfs.symlink(r, b"etc/hostname", b"/fast", 0, 0)
            .expect("symlink");
        let long = format!("/{}", "d/".repeat(60));
        vfs.symlink(r, long.as_bytes(), b"/slow", 0, 0)
            .expect("symlink");
        vfs.link(r, b"/etc/hostname", b"/home/hn").expect("link");
        vfs.rename(r, b"/home/hn", b"/home/user/hn")
            .expect("rename");
        for (name, kind, rdev) in [
            ("/fifo", FileKind::Fifo, (0, 0)),
            ("/null", FileKind::Char, (1, 3)),
        ] {
            let node = NewNode {
                kind,
                perm: 0o666,
                uid: 0,
                gid: 0,
                rdev,
            };
            vfs.mknod(r, name.as_bytes(), &node).expect("mknod");
        }
        let set = SetAttr {
            perm: Some(0o640),
            uid: Some(1000),
            gid: Some(100),
            ..SetAttr::default()
        };
        vfs.setattr(r, b"/home/user/big", true, &set)
            .expect("chown");
        vfs.unmount_all().expect("unmount");
        drop(vfs);
        e2fsck_clean(&image, "our image");
        let want = expected_lines(&debugfs_tree(&image));
        let console = boot(
            dir.path(),
            &image,
            &format!("mount -o ro /dev/ubdb /mnt\n{LIST}"),
        );
        if console.is_empty() {
            return; // interop skipped on purpose
        }
        let got = guest_lines(&console);
        assert_eq!(
            got, want,
            "{bs}-byte blocks: linux.uml sees another tree:\n{console}"
        );
    }
}

#[test]
fn we_read_what_linux_uml_wrote() {
    let dir = scratch();
    let image = dir.path().join("disk.img");
    mkfs(&image, "1024");
    let script = r#"mount /dev/ubdb /mnt || exit 1
cd /mnt
mkdir -p a/b/c d
seq 1 60000 > a/b/c/numbers
echo hello > d/greeting
ln d/greeting hard
ln -s d/greeting fast
ln -s /$(seq -s / 1 40) slow
mknod d/tty c 5 0
mknod d/disk b 8 1
mkfifo pipe
chown 1000:100 d/greeting
chmod 4750 a/b
dd if=/dev/zero of=holey bs=1k seek=5000 count=1 2>/dev/null
for i in $(seq 1 120); do echo $i > d/f$i; done
rm d/f7 d/f50
mv a/b/c d/moved
cd /
umount /mnt
"#;
    let console = boot(dir.path(), &image, script);
    if console.is_empty() {
        return;
    }
    e2fsck_clean(&image, "linux.uml's image");
    let theirs = debugfs_tree(&image);
    assert!(
        theirs.contains_key("/d/moved/numbers"),
        "the guest's tree is missing:\n{console}"
    );
    assert_same_tree(&our_tree(&image), &theirs, "image written by linux.uml");

    // Our driver changes it; e2fsck stays clean and both readers still agree.
    let mut vfs = mount(&image);
    let r = vfs.root();
    let mut f = vfs
        .open(r, b"/d/moved/numbers", O_WRONLY | O_APPEND, 0, 0, 0)
        .expect("open");
    vfs.write(&mut f, b"appended by uml-kernel\n")
        .expect("append");
    vfs.close(f).expect("close");
    for i in 1..=120 {
        let _ = vfs.unlink(r, format!("/d/f{i}").as_bytes());
    }
    vfs.rename(r, b"/d/moved", b"/moved").expect("rename");
    vfs.rmdir(r, b"/a/b").expect("rmdir");
    put(&mut vfs, r, "/holey", b"filled", 1000);
    vfs.unmount_all().expect("unmount");
    drop(vfs);
    e2fsck_clean(&image, "linux.uml's image after our changes");
    let theirs = debugfs_tree(&image);
    assert!(theirs["/moved/numbers"]
        .data
        .as_ref()
        .expect("data")
        .ends_with(b"60000\nappended by uml-kernel\n"));
    assert_same_tree(&our_tree(&image), &theirs, "after our changes");
}
