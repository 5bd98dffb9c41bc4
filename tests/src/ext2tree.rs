//! An ext2 image's tree as e2fsprogs sees it (`debugfs ls -p` for inode numbers, modes,
//! owners and sizes; `debugfs rdump` for file contents and symlink targets), and the same
//! tree as our `uml_proto::ext2` reader sees it, so tests can compare the two.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use uml_proto::ext2::{Image, InodeKind};

use crate::run;

/// One name in the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub ino: u32,
    /// Type and permission bits.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Size for files and symlinks (directories: None; their size is layout).
    pub size: Option<u64>,
    /// A regular file's contents.
    pub data: Option<Vec<u8>>,
    /// A symlink's target.
    pub target: Option<Vec<u8>>,
}

/// Path (from `/`, without `.`/`..`) to entry.
pub type Tree = BTreeMap<String, Entry>;

fn debugfs(image: &Path, request: &str) -> String {
    let out = run(
        Command::new("debugfs").arg("-R").arg(request).arg(image),
        Duration::from_secs(60),
    );
    assert!(
        out.success(),
        "debugfs -R '{request}' failed: {}",
        out.stderr
    );
    out.stdout
}

/// The tree as debugfs shows it (lost+found included).
pub fn debugfs_tree(image: &Path) -> Tree {
    assert!(
        Path::new("/usr/sbin/debugfs").exists() || Path::new("/sbin/debugfs").exists(),
        "debugfs is missing: install the Debian package `e2fsprogs` (scripts/setup does)"
    );
    let dump = tempfile::tempdir().expect("tempdir");
    debugfs(image, &format!("rdump / {}", dump.path().display()));
    let mut tree = Tree::new();
    let mut dirs = vec![String::new()];
    while let Some(dir) = dirs.pop() {
        let listing = debugfs(image, &format!("ls -p \"{}/\"", dir));
        for line in listing.lines().filter(|l| l.starts_with('/')) {
            // /INO/MODE/UID/GID/NAME/SIZE/
            let f: Vec<&str> = line.trim_end_matches('/').splitn(7, '/').collect();
            assert!(f.len() >= 6, "unexpected debugfs line {line:?}");
            let name = f[5];
            if name == "." || name == ".." || f[1] == "0" {
                continue;
            }
            let path = format!("{dir}/{name}");
            let mode = u32::from_str_radix(f[2], 8).expect("mode");
            let kind = mode & 0o170000;
            let host = dump.path().join(path.trim_start_matches('/'));
            let e = Entry {
                ino: f[1].parse().expect("ino"),
                mode,
                uid: f[3].parse().expect("uid"),
                gid: f[4].parse().expect("gid"),
                size: if kind == 0o040000 {
                    None
                } else {
                    f.get(6).and_then(|s| s.parse().ok())
                },
                data: (kind == 0o100000).then(|| std::fs::read(&host).expect("read rdump'd file")),
                target: (kind == 0o120000).then(|| {
                    use std::os::unix::ffi::OsStrExt;
                    std::fs::read_link(&host)
                        .expect("read rdump'd link")
                        .as_os_str()
                        .as_bytes()
                        .to_vec()
                }),
            };
            if kind == 0o040000 {
                dirs.push(path.clone());
            }
            tree.insert(path, e);
        }
    }
    tree
}

/// The tree as our reader sees it.
pub fn our_tree(image: &Path) -> Tree {
    let file = std::fs::File::open(image).expect("open image");
    let mut img = Image::open(file).unwrap_or_else(|e| panic!("{}: {e}", image.display()));
    let mut tree = Tree::new();
    let mut dirs = vec![(String::new(), 2u32)];
    while let Some((dir, ino)) = dirs.pop() {
        let inode = img.read_inode(ino).expect("dir inode");
        for d in img.read_dir(ino, &inode).expect("read dir") {
            if d.name == b"." || d.name == b".." {
                continue;
            }
            let path = format!("{dir}/{}", String::from_utf8_lossy(&d.name));
            let i = img.read_inode(d.inode).expect("inode");
            let kind = i.kind();
            let e = Entry {
                ino: d.inode,
                mode: u32::from(i.mode),
                uid: i.uid,
                gid: i.gid,
                size: (kind != InodeKind::Dir).then_some(i.size),
                data: (kind == InodeKind::File).then(|| {
                    let mut buf = vec![0; i.size as usize];
                    let n = img.read_data(d.inode, &i, 0, &mut buf).expect("read file");
                    assert_eq!(n, buf.len());
                    buf
                }),
                target: (kind == InodeKind::Symlink)
                    .then(|| img.read_link(d.inode, &i).expect("readlink")),
            };
            if kind == InodeKind::Dir {
                dirs.push((path.clone(), d.inode));
            }
            tree.insert(path, e);
        }
    }
    tree
}

/// Panics naming the first difference between two trees.
pub fn assert_same_tree(ours: &Tree, theirs: &Tree, what: &str) {
    for (path, e) in theirs {
        let Some(o) = ours.get(path) else {
            panic!("{what}: {path} is missing from ours");
        };
        let brief = |e: &Entry| (e.ino, e.mode, e.uid, e.gid, e.size, e.target.clone());
        assert_eq!(
            brief(o),
            brief(e),
            "{what}: {path} differs (ino, mode, uid, gid, size, target)"
        );
        assert!(o.data == e.data, "{what}: {path}: contents differ");
    }
    for path in ours.keys() {
        assert!(theirs.contains_key(path), "{what}: {path} is extra in ours");
    }
}

/// Asserts that `e2fsck -fn` finds nothing wrong with `image` (`what` names the case).
pub fn e2fsck_clean(image: &Path, what: &str) {
    let out = run(
        Command::new("e2fsck").arg("-fn").arg(image),
        Duration::from_secs(60),
    );
    assert!(
        out.success(),
        "{what}: e2fsck -fn is not clean:\n{}{}",
        out.stdout,
        out.stderr
    );
}
