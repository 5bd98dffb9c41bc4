//! humfs through the VFS on trees built in a scratch directory: attributes from the
//! metadata, what the guest's changes leave on the host, the size limit, damaged trees
//! and symlinks planted by the tree's owner.
#![allow(clippy::unwrap_used)] // a test that unwraps fails with the error shown

use std::fs;
use std::os::unix::fs::{symlink, FileTypeExt, MetadataExt};
use std::path::Path;

use super::*;
use crate::fs::node::{NewNode, SetAttr};
use crate::fs::vfs::{oflag::*, Vfs};

/// A version 2 tree: data/ with `f` (0644 7:8 in the metadata), `dev` (a placeholder
/// for c 1 3) and directory `d` (01777 0:0).
fn tree(top: &Path, total: u64) {
    for d in ["data/d", "file_metadata/d", "dir_metadata/d"] {
        fs::create_dir_all(top.join(d)).unwrap();
    }
    fs::write(top.join("data/f"), b"hello\n").unwrap();
    fs::write(top.join("data/dev"), b"").unwrap();
    fs::write(top.join("file_metadata/f"), b"420 7 8\n").unwrap();
    fs::write(top.join("file_metadata/dev"), b"438 0 0 c 1 3\n").unwrap();
    fs::write(top.join("dir_metadata/metadata"), b"493 0 0\n").unwrap();
    fs::write(top.join("dir_metadata/d/metadata"), b"1023 0 0\n").unwrap();
    let mut sb = Vec::new();
    Superblock::new_v2(6, total).emit(&mut sb);
    fs::write(top.join("superblock"), sb).unwrap();
}

fn mounted(top: &Path) -> Vfs {
    Vfs::new(Box::new(HumFs::open(top, false).unwrap()), "humfs")
}

fn write_file(vfs: &mut Vfs, path: &[u8], data: &[u8]) -> FsResult<usize> {
    let root = vfs.root();
    let mut f = vfs.open(root, path, O_WRONLY | O_CREAT, 0o640, 5, 6)?;
    let r = vfs.write(&mut f, data);
    vfs.close(f)?;
    r
}

fn meta(top: &Path, rel: &str) -> String {
    fs::read_to_string(top.join(rel)).unwrap()
}

#[test]
fn attributes_come_from_the_metadata() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path(), 1 << 20);
    let mut vfs = mounted(dir.path());
    let root = vfs.root();
    let f = vfs.stat(root, b"/f", false).unwrap();
    assert_eq!(
        (f.kind, f.perm, f.uid, f.gid, f.size),
        (FileKind::File, 0o644, 7, 8, 6)
    );
    let d = vfs.stat(root, b"/dev", false).unwrap();
    assert_eq!((d.kind, d.rdev, d.perm), (FileKind::Char, (1, 3), 0o666));
    let d = vfs.stat(root, b"/d", false).unwrap();
    assert_eq!((d.kind, d.perm), (FileKind::Dir, 0o1777));
    assert_eq!(vfs.stat(root, b"/", false).unwrap().perm, 0o755);
    let mut names: Vec<_> = vfs
        .readdir(root, b"/")
        .unwrap()
        .into_iter()
        .map(|e| (String::from_utf8(e.name).unwrap(), e.kind))
        .collect();
    names.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        names,
        [
            (".".to_string(), FileKind::Dir),
            ("..".into(), FileKind::Dir),
            ("d".into(), FileKind::Dir),
            ("dev".into(), FileKind::Char),
            ("f".into(), FileKind::File)
        ]
    );
    let mut file = vfs.open(root, b"/f", O_RDONLY, 0, 0, 0).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(vfs.read(&mut file, &mut buf).unwrap(), 6);
    assert_eq!(&buf[..6], b"hello\n");
    vfs.close(file).unwrap();
}

#[test]
fn what_the_guest_makes_is_recorded_in_the_same_format() {
    let dir = tempfile::tempdir().unwrap();
    let top = dir.path();
    tree(top, 1 << 20);
    let mut vfs = mounted(top);
    let root = vfs.root();
    assert_eq!(write_file(&mut vfs, b"/d/new", b"abc").unwrap(), 3);
    assert_eq!(fs::read(top.join("data/d/new")).unwrap(), b"abc");
    assert_eq!(meta(top, "file_metadata/d/new"), "416 5 6\n");
    let set = SetAttr {
        perm: Some(0o4711),
        uid: Some(1000),
        gid: Some(100),
        ..SetAttr::default()
    };
    vfs.setattr(root, b"/d/new", true, &set).unwrap();
    assert_eq!(meta(top, "file_metadata/d/new"), "2505 1000 100\n");
    // chmod and chown change the metadata only.
    let host = fs::metadata(top.join("data/d/new")).unwrap();
    assert_eq!(host.mode() & 0o7777, 0o644);
    assert_eq!(host.uid(), nix::unistd::geteuid().as_raw());

    let node = NewNode {
        kind: FileKind::Block,
        perm: 0o660,
        uid: 0,
        gid: 6,
        rdev: (8, 1),
    };
    vfs.mknod(root, b"/sda1", &node).unwrap();
    assert!(fs::symlink_metadata(top.join("data/sda1"))
        .unwrap()
        .is_file());
    assert_eq!(meta(top, "file_metadata/sda1"), "432 0 6 b 8 1\n");
    let fifo = NewNode {
        kind: FileKind::Fifo,
        ..node
    };
    vfs.mknod(root, b"/pipe", &fifo).unwrap();
    assert!(fs::symlink_metadata(top.join("data/pipe"))
        .unwrap()
        .file_type()
        .is_fifo());
    assert_eq!(
        vfs.stat(root, b"/pipe", false).unwrap().kind,
        FileKind::Fifo
    );

    vfs.mkdir(root, b"/sub", 0o700, 3, 4).unwrap();
    assert!(top.join("data/sub").is_dir() && top.join("file_metadata/sub").is_dir());
    assert_eq!(meta(top, "dir_metadata/sub/metadata"), "448 3 4\n");
    vfs.symlink(root, b"../f", b"/sub/link", 9, 9).unwrap();
    assert_eq!(meta(top, "file_metadata/sub/link"), "511 9 9\n");
    assert_eq!(vfs.readlink(root, b"/sub/link").unwrap(), b"../f");

    // A directory's rename carries its metadata and its children's.
    vfs.rename(root, b"/sub", b"/d/moved").unwrap();
    assert_eq!(meta(top, "dir_metadata/d/moved/metadata"), "448 3 4\n");
    assert_eq!(meta(top, "file_metadata/d/moved/link"), "511 9 9\n");
    assert!(!top.join("dir_metadata/sub").exists() && !top.join("file_metadata/sub").exists());
    assert_eq!(vfs.stat(root, b"/d/moved/link", false).unwrap().uid, 9);
    // A file's rename over another replaces both its data and its metadata.
    vfs.rename(root, b"/d/new", b"/f").unwrap();
    assert_eq!(meta(top, "file_metadata/f"), "2505 1000 100\n");
    assert!(!top.join("file_metadata/d/new").exists());
    // Hard links share the metadata file, as humfsify makes them.
    vfs.link(root, b"/f", b"/d/again").unwrap();
    let (a, b) = (
        fs::metadata(top.join("file_metadata/f")).unwrap(),
        fs::metadata(top.join("file_metadata/d/again")).unwrap(),
    );
    assert_eq!(a.ino(), b.ino());
    vfs.unlink(root, b"/d/again").unwrap();
    assert!(!top.join("data/d/again").exists() && !top.join("file_metadata/d/again").exists());
    vfs.unlink(root, b"/d/moved/link").unwrap();
    vfs.rmdir(root, b"/d/moved").unwrap();
    assert!(!top.join("dir_metadata/d/moved").exists() && !top.join("data/d/moved").exists());
    // chmod of a device keeps its kind and numbers in the metadata.
    let set = SetAttr {
        perm: Some(0o600),
        ..SetAttr::default()
    };
    vfs.setattr(root, b"/dev", false, &set).unwrap();
    assert_eq!(meta(top, "file_metadata/dev"), "384 0 0 c 1 3\n");
    // A directory made on the host after humfsify gets its metadata directory on use.
    fs::create_dir(top.join("data/hostmade")).unwrap();
    assert_eq!(write_file(&mut vfs, b"/hostmade/g", b"g"), Ok(1));
    assert_eq!(meta(top, "file_metadata/hostmade/g"), "416 5 6\n");
    fs::create_dir(top.join("data/hostmade2")).unwrap();
    vfs.rename(root, b"/hostmade/g", b"/hostmade2/g").unwrap();
    assert_eq!(meta(top, "file_metadata/hostmade2/g"), "416 5 6\n");
    fs::create_dir(top.join("data/hostmade3")).unwrap();
    vfs.rename(root, b"/hostmade2", b"/hostmade3/in").unwrap();
    assert_eq!(meta(top, "file_metadata/hostmade3/in/g"), "416 5 6\n");
    fs::create_dir(top.join("data/hostmade4")).unwrap();
    vfs.link(root, b"/hostmade3/in/g", b"/hostmade4/g").unwrap();
    let (a, b) = (
        fs::metadata(top.join("file_metadata/hostmade3/in/g")).unwrap(),
        fs::metadata(top.join("file_metadata/hostmade4/g")).unwrap(),
    );
    assert_eq!(a.ino(), b.ino());
    // `metadata` cannot be a directory's name (its own metadata file has it).
    assert_eq!(
        vfs.mkdir(root, b"/metadata", 0o755, 0, 0),
        Err(Errno::EINVAL)
    );
}

#[test]
fn the_superblock_size_is_enforced_and_written_back() {
    let dir = tempfile::tempdir().unwrap();
    let top = dir.path();
    tree(top, 6 + 10);
    let mut vfs = mounted(top);
    let root = vfs.root();
    let df = vfs.statfs(root, b"/").unwrap();
    assert_eq!((df.bsize, df.blocks), (1024, 0));
    // 10 bytes left: a 16-byte write is cut to 10, the next one fails.
    let mut f = vfs
        .open(root, b"/big", O_WRONLY | O_CREAT, 0o644, 0, 0)
        .unwrap();
    assert_eq!(vfs.write(&mut f, &[b'x'; 16]), Ok(10));
    assert_eq!(vfs.write(&mut f, b"y"), Err(Errno::ENOSPC));
    vfs.close(f).unwrap();
    assert_eq!(vfs.stat(root, b"/big", false).unwrap().size, 10);
    assert_eq!(fs::metadata(top.join("data/big")).unwrap().len(), 10);
    assert_eq!(vfs.mkdir(root, b"/more", 0o755, 0, 0), Err(Errno::ENOSPC));
    assert_eq!(
        write_file(&mut vfs, b"/other", b"z"),
        Err(Errno::ENOSPC),
        "a full filesystem took a new file"
    );
    // Overwriting in place costs nothing; truncating gives space back.
    assert_eq!(write_file(&mut vfs, b"/f", b"HELLO"), Ok(5));
    let set = SetAttr {
        size: Some(4),
        ..SetAttr::default()
    };
    vfs.setattr(root, b"/big", true, &set).unwrap();
    vfs.sync_all().unwrap();
    assert!(meta(top, "superblock").contains("used 10\ntotal 16\n"));
    vfs.unlink(root, b"/big").unwrap();
    vfs.unmount_all().unwrap();
    assert!(meta(top, "superblock").contains("used 6\n"));
}

#[test]
fn damaged_trees_are_refused_or_fail_with_eio() {
    let dir = tempfile::tempdir().unwrap();
    let top = dir.path();
    fs::create_dir(top.join("data")).unwrap();
    let err = HumFs::open(top, false).err().unwrap();
    assert!(err.contains("superblock: no superblock"), "{err}");
    fs::write(top.join("superblock"), "version 2\nused 1\n").unwrap();
    let err = HumFs::open(top, false).err().unwrap();
    assert!(err.contains("'metadata' is not defined"), "{err}");
    tree(top, 100);
    fs::remove_dir_all(top.join("dir_metadata")).unwrap();
    let err = HumFs::open(top, false).err().unwrap();
    assert!(
        err.ends_with("dir_metadata: No such file or directory (os error 2)"),
        "{err}"
    );
    fs::create_dir_all(top.join("dir_metadata/d")).unwrap();
    fs::write(top.join("file_metadata/f"), b"420 seven 8\n").unwrap();
    let mut vfs = mounted(top);
    let root = vfs.root();
    assert_eq!(vfs.stat(root, b"/f", false), Err(Errno::EIO));
    assert_eq!(
        vfs.open(root, b"/f", O_RDONLY, 0, 0, 0).err(),
        Some(Errno::EIO)
    );
    // The damaged file is still listed; the others still work.
    assert!(vfs
        .readdir(root, b"/")
        .unwrap()
        .iter()
        .any(|e| e.name == b"f"));
    assert_eq!(vfs.stat(root, b"/dev", false).unwrap().kind, FileKind::Char);
    // A metadata file too big to be one is damage.
    fs::write(top.join("file_metadata/dev"), "438 0 0 c 1 3\n".repeat(400)).unwrap();
    assert_eq!(vfs.stat(root, b"/dev", false), Err(Errno::EIO));
    // A device kind on a directory is damage too.
    fs::write(top.join("dir_metadata/d/metadata"), b"493 0 0 c 1 1\n").unwrap();
    assert_eq!(vfs.stat(root, b"/d", false), Err(Errno::EIO));
}

#[test]
fn symlinks_planted_in_the_tree_are_not_followed_on_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let top = dir.path().join("tree");
    let outside = dir.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("secret"), b"secret\n").unwrap();
    fs::write(outside.join("victim"), b"420 0 0\n").unwrap();
    tree(&top, 1 << 20);
    // A symlink out of the tree in data/, and a metadata file replaced by one.
    symlink(&outside, top.join("data/escape")).unwrap();
    fs::remove_file(top.join("file_metadata/f")).unwrap();
    symlink(outside.join("victim"), top.join("file_metadata/f")).unwrap();
    let mut vfs = mounted(&top);
    let root = vfs.root();
    // In the guest, escape is a symlink to a path that does not exist there.
    assert_eq!(
        vfs.stat(root, b"/escape", false).unwrap().kind,
        FileKind::Symlink
    );
    assert_eq!(
        vfs.open(root, b"/escape/secret", O_RDONLY, 0, 0, 0).err(),
        Some(Errno::ENOENT)
    );
    assert_eq!(vfs.stat(root, b"/f", false), Err(Errno::EIO));
    let set = SetAttr {
        uid: Some(0),
        perm: Some(0o4755),
        ..SetAttr::default()
    };
    assert_eq!(vfs.setattr(root, b"/f", true, &set).err(), Some(Errno::EIO));
    assert_eq!(fs::read(outside.join("victim")).unwrap(), b"420 0 0\n");
    // A new file in a directory whose metadata directory is a planted link.
    fs::remove_dir(top.join("file_metadata/d")).unwrap();
    symlink(&outside, top.join("file_metadata/d")).unwrap();
    assert_eq!(write_file(&mut vfs, b"/d/x", b"1"), Err(Errno::EIO));
    assert!(!outside.join("x").exists());
    assert!(!top.join("data/d/x").exists(), "data left without metadata");
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 2);
}

#[test]
fn version_1_trees_mount_with_the_data_files_modes() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let top = dir.path();
    fs::create_dir_all(top.join("data/d")).unwrap();
    fs::create_dir_all(top.join("metadata/d")).unwrap();
    fs::write(top.join("data/f"), b"v1\n").unwrap();
    fs::set_permissions(top.join("data/f"), fs::Permissions::from_mode(0o640)).unwrap();
    fs::write(top.join("metadata/f"), b"7 8 0\n").unwrap();
    fs::write(top.join("metadata/metadata"), b"0 0 0\n").unwrap();
    fs::write(top.join("metadata/d/metadata"), b"3 4 0\n").unwrap();
    fs::write(top.join("superblock"), b"version 1\nused 0\ntotal 65536\n").unwrap();
    let mut vfs = mounted(top);
    let root = vfs.root();
    let f = vfs.stat(root, b"/f", false).unwrap();
    assert_eq!((f.perm, f.uid, f.gid), (0o640, 7, 8));
    assert_eq!(vfs.stat(root, b"/d", false).unwrap().uid, 3);
    assert_eq!(write_file(&mut vfs, b"/d/g", b"x"), Ok(1));
    assert_eq!(meta(top, "metadata/d/g"), "5 6 0\n");
    vfs.mkdir(root, b"/e", 0o755, 9, 9).unwrap();
    assert_eq!(meta(top, "metadata/e/metadata"), "9 9 0\n");
    let chown = SetAttr {
        uid: Some(1),
        ..SetAttr::default()
    };
    vfs.setattr(root, b"/f", true, &chown).unwrap();
    assert_eq!(meta(top, "metadata/f"), "1 8 0\n");
    let chmod = SetAttr {
        perm: Some(0o600),
        ..SetAttr::default()
    };
    assert_eq!(
        vfs.setattr(root, b"/f", true, &chmod).err(),
        Some(Errno::EOPNOTSUPP)
    );
    // Files and directory metadata share one tree: no node may be called metadata.
    assert_eq!(
        write_file(&mut vfs, b"/d/metadata", b"x"),
        Err(Errno::EINVAL)
    );
    vfs.unmount_all().unwrap();
    assert!(meta(top, "superblock").starts_with("version 1\nmetadata shadow_fs\nused 4097\n"));
    assert!(!top.join(".superblock.humfs-new").exists());
}
