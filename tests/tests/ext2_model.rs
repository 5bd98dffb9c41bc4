//! Model-checked ext2: a random workload of 10,000 operations (create, write at random
//! offsets, truncate, rename, unlink, mkdir, rmdir, symlink, link, mknod, chmod, chown)
//! goes through the kernel's VFS onto an ext2 image made by mkfs.ext2 and onto a model
//! tree; every result (or errno) must match the model's. After unmount `e2fsck -fn` must
//! be clean and the tree `debugfs` shows (contents, modes, owners, symlink targets,
//! which names share an inode; e2fsck checks the link counts) must equal the model, for
//! 1, 2 and 4 KiB blocks and several seeds.

use std::collections::{BTreeMap, HashMap};
use std::fs::OpenOptions;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use kernel::fs::ext2::Ext2Fs;
use kernel::fs::oflag::*;
use kernel::fs::{Errno, FileKind, NewNode, SetAttr, Vfs};
use tests::ext2tree::{debugfs_tree, our_tree, Entry, Tree};
use tests::{run, scratch};

const OPS: usize = 10_000;
const NAMES: [&str; 12] = [
    "a",
    "b",
    "c",
    "d",
    "e",
    "f",
    "g",
    "h",
    "dir",
    "file",
    "x.txt",
    "some-longer-name-for-records",
];

/// xorshift64*: a small deterministic generator (the seed names the run).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len() as u64) as usize]
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

#[derive(Debug, Clone)]
enum Body {
    File(Vec<u8>),
    Dir(BTreeMap<String, usize>),
    Symlink(Vec<u8>),
    Special(FileKind, (u32, u32)),
}

#[derive(Debug, Clone)]
struct Node {
    body: Body,
    perm: u32,
    uid: u32,
    gid: u32,
}

struct Model {
    nodes: Vec<Option<Node>>,
    bs: u64,
}

const ROOT: usize = 0;

impl Model {
    fn new(bs: u64) -> Model {
        let lf = Node {
            body: Body::Dir(BTreeMap::new()),
            perm: 0o700,
            uid: 0,
            gid: 0,
        };
        let mut root = BTreeMap::new();
        root.insert("lost+found".to_string(), 1);
        let root = Node {
            body: Body::Dir(root),
            perm: 0o755,
            uid: 0,
            gid: 0,
        };
        Model {
            nodes: vec![Some(root), Some(lf)],
            bs,
        }
    }

    fn node(&self, id: usize) -> &Node {
        self.nodes[id].as_ref().expect("live node")
    }

    fn node_mut(&mut self, id: usize) -> &mut Node {
        self.nodes[id].as_mut().expect("live node")
    }

    fn entries(&self, dir: usize) -> &BTreeMap<String, usize> {
        match &self.node(dir).body {
            Body::Dir(e) => e,
            _ => panic!("not a dir"),
        }
    }

    fn entries_mut(&mut self, dir: usize) -> &mut BTreeMap<String, usize> {
        match &mut self.node_mut(dir).body {
            Body::Dir(e) => e,
            _ => panic!("not a dir"),
        }
    }

    fn is_dir(&self, id: usize) -> bool {
        matches!(self.node(id).body, Body::Dir(_))
    }

    /// Every name but lost+found (and what is in it): (path, dir id, name, node id).
    fn all(&self) -> Vec<(String, usize, String, usize)> {
        let mut out = Vec::new();
        let mut stack = vec![(String::new(), ROOT)];
        while let Some((path, dir)) = stack.pop() {
            for (name, &id) in self.entries(dir) {
                if dir == ROOT && name == "lost+found" {
                    continue;
                }
                let p = format!("{path}/{name}");
                if self.is_dir(id) {
                    stack.push((p.clone(), id));
                }
                out.push((p, dir, name.clone(), id));
            }
        }
        out
    }

    fn dirs(&self, all: &[(String, usize, String, usize)]) -> Vec<(String, usize)> {
        let mut v = vec![(String::new(), ROOT)];
        v.extend(
            all.iter()
                .filter(|e| self.is_dir(e.3))
                .map(|e| (e.0.clone(), e.3)),
        );
        v
    }

    fn add(&mut self, dir: usize, name: &str, node: Node) -> usize {
        self.nodes.push(Some(node));
        let id = self.nodes.len() - 1;
        self.entries_mut(dir).insert(name.to_string(), id);
        id
    }

    /// Whether `dir` is `anc` or inside it.
    fn below(&self, dir: usize, anc: usize) -> bool {
        if dir == anc {
            return true;
        }
        let mut stack = vec![anc];
        while let Some(d) = stack.pop() {
            for &c in self.entries(d).values() {
                if c == dir {
                    return true;
                }
                if self.is_dir(c) {
                    stack.push(c);
                }
            }
        }
        false
    }

    fn tree(&self) -> (Tree, HashMap<String, usize>) {
        let mut tree = Tree::new();
        let mut ids = HashMap::new();
        let mut stack = vec![(String::new(), ROOT)];
        while let Some((path, dir)) = stack.pop() {
            for (name, &id) in self.entries(dir) {
                let p = format!("{path}/{name}");
                let n = self.node(id);
                let (kind, size, data, target) = match &n.body {
                    Body::File(d) => (FileKind::File, Some(d.len() as u64), Some(d.clone()), None),
                    Body::Dir(_) => {
                        stack.push((p.clone(), id));
                        (FileKind::Dir, None, None, None)
                    }
                    Body::Symlink(t) => (
                        FileKind::Symlink,
                        Some(t.len() as u64),
                        None,
                        Some(t.clone()),
                    ),
                    Body::Special(k, _) => (*k, Some(0), None, None),
                };
                let e = Entry {
                    ino: 0,
                    mode: kind.mode_bits() | n.perm,
                    uid: n.uid,
                    gid: n.gid,
                    size,
                    data,
                    target,
                };
                ids.insert(p.clone(), id);
                tree.insert(p, e);
            }
        }
        (tree, ids)
    }
}

fn p(s: &str) -> Vec<u8> {
    if s.is_empty() {
        b"/".to_vec()
    } else {
        s.as_bytes().to_vec()
    }
}

/// One random operation, applied to both; panics when the VFS disagrees with the model.
fn step(vfs: &mut Vfs, m: &mut Model, rng: &mut Rng, far_ok: bool) -> &'static str {
    let r = vfs.root();
    let all = m.all();
    let dirs = m.dirs(&all);
    let files: Vec<_> = all
        .iter()
        .filter(|e| matches!(m.node(e.3).body, Body::File(_)))
        .collect();
    let crowded = all.len() > 500;
    let (dpath, did) = rng.pick(&dirs).clone();
    let name = if rng.below(20) == 0 {
        format!("long-{}", "n".repeat(rng.below(200) as usize + 20))
    } else {
        rng.pick(&NAMES).to_string()
    };
    let new_path = format!("{dpath}/{name}");
    let exists = m.entries(did).contains_key(&name);
    let roll = rng.below(100);
    match roll {
        0..=11 if !crowded => {
            let perm = rng.below(0o1000) as u32;
            let got = vfs
                .open(
                    r,
                    new_path.as_bytes(),
                    O_WRONLY | O_CREAT | O_EXCL,
                    perm,
                    0,
                    0,
                )
                .and_then(|f| vfs.close(f));
            let want = if exists { Err(Errno::EEXIST) } else { Ok(()) };
            assert_eq!(got, want, "create {new_path}");
            if !exists {
                m.add(
                    did,
                    &name,
                    Node {
                        body: Body::File(Vec::new()),
                        perm,
                        uid: 0,
                        gid: 0,
                    },
                );
            }
            "create"
        }
        12..=33 if !files.is_empty() => {
            let (fpath, _, _, fid) = (*rng.pick(&files)).clone();
            let bs = m.bs;
            let per = bs / 4;
            let size = match &m.node(fid).body {
                Body::File(d) => d.len() as u64,
                _ => unreachable!(),
            };
            // Keep a third of the blocks free: the workload never runs out of space.
            let st = vfs.statfs(r, b"/").expect("statfs");
            let over = st.bfree < st.blocks / 3;
            let (offset, len) = match rng.below(100) {
                _ if over => (0, 0),
                0..=59 => (rng.below(size + 3 * bs), rng.below(3 * bs) as usize + 1),
                60..=89 => (
                    rng.below((12 + per + 4) * bs),
                    rng.below(4 * bs) as usize + 1,
                ),
                // Double indirect, or (1 KiB blocks, one file at a time) triple indirect.
                90..=96 => (
                    (12 + per + rng.below(per * 2)) * bs + rng.below(bs),
                    rng.below(bs) as usize + 1,
                ),
                _ if far_ok && bs == 1024 => (
                    (12 + per + per * per + rng.below(per)) * bs,
                    rng.below(bs) as usize + 1,
                ),
                _ => (rng.below(size + 1), rng.below(100) as usize + 1),
            };
            if over {
                // Out of budget: truncate instead.
                let set = SetAttr {
                    size: Some(0),
                    ..SetAttr::default()
                };
                vfs.setattr(r, fpath.as_bytes(), true, &set)
                    .expect("truncate for space");
                if let Body::File(d) = &mut m.node_mut(fid).body {
                    d.clear();
                }
                return "truncate";
            }
            let data = rng.bytes(len);
            let append = rng.below(10) == 0;
            let mut f = vfs
                .open(
                    r,
                    fpath.as_bytes(),
                    O_WRONLY | if append { O_APPEND } else { 0 },
                    0,
                    0,
                    0,
                )
                .expect("open for write");
            f.offset = offset;
            let got = vfs.write(&mut f, &data);
            vfs.close(f).expect("close");
            assert_eq!(got, Ok(len), "write {fpath} at {offset}");
            let at = if append { size } else { offset } as usize;
            if let Body::File(d) = &mut m.node_mut(fid).body {
                if d.len() < at + len {
                    d.resize(at + len, 0);
                }
                d[at..at + len].copy_from_slice(&data);
            }
            "write"
        }
        34..=41 if !files.is_empty() => {
            let (fpath, _, _, fid) = (*rng.pick(&files)).clone();
            let size = match &m.node(fid).body {
                Body::File(d) => d.len() as u64,
                _ => unreachable!(),
            };
            let new = if rng.below(3) == 0 {
                0
            } else {
                rng.below(size * 3 / 2 + 2)
            };
            let new = new.min(size + 64 * m.bs);
            let set = SetAttr {
                size: Some(new),
                ..SetAttr::default()
            };
            vfs.setattr(r, fpath.as_bytes(), true, &set)
                .expect("truncate");
            if let Body::File(d) = &mut m.node_mut(fid).body {
                d.resize(new as usize, 0);
            }
            "truncate"
        }
        42..=51 if !all.is_empty() => {
            let (spath, sdir, sname, sid) = (*rng.pick(&all)).clone();
            let src_dir = m.is_dir(sid);
            let dst = m.entries(did).get(&name).copied();
            let want = if spath == new_path {
                Ok(())
            } else if src_dir && m.below(did, sid) {
                Err(Errno::EINVAL)
            } else {
                match dst {
                    Some(d) if d == sid => Ok(()),
                    Some(d) if src_dir && !m.is_dir(d) => Err(Errno::ENOTDIR),
                    Some(d) if !src_dir && m.is_dir(d) => Err(Errno::EISDIR),
                    Some(d) if m.is_dir(d) && !m.entries(d).is_empty() => Err(Errno::ENOTEMPTY),
                    _ => Ok(()),
                }
            };
            let got = vfs.rename(r, spath.as_bytes(), new_path.as_bytes());
            assert_eq!(got, want, "rename {spath} {new_path}");
            if got.is_ok() && spath != new_path && dst != Some(sid) {
                m.entries_mut(sdir).remove(&sname);
                m.entries_mut(did).insert(name, sid);
            }
            "rename"
        }
        52..=61 if !all.is_empty() => {
            let (path, dir, name, id) = rng.pick(&all).clone();
            let want = if m.is_dir(id) {
                Err(Errno::EISDIR)
            } else {
                Ok(())
            };
            assert_eq!(vfs.unlink(r, path.as_bytes()), want, "unlink {path}");
            if want.is_ok() {
                m.entries_mut(dir).remove(&name);
            }
            "unlink"
        }
        62..=69 if !crowded => {
            let perm = rng.below(0o1000) as u32;
            let got = vfs.mkdir(r, new_path.as_bytes(), perm, 0, 0).map(|_| ());
            let want = if exists { Err(Errno::EEXIST) } else { Ok(()) };
            assert_eq!(got, want, "mkdir {new_path}");
            if !exists {
                m.add(
                    did,
                    &name,
                    Node {
                        body: Body::Dir(BTreeMap::new()),
                        perm,
                        uid: 0,
                        gid: 0,
                    },
                );
            }
            "mkdir"
        }
        70..=75 if !all.is_empty() => {
            let (path, dir, name, id) = rng.pick(&all).clone();
            let want = if !m.is_dir(id) {
                Err(Errno::ENOTDIR)
            } else if !m.entries(id).is_empty() {
                Err(Errno::ENOTEMPTY)
            } else {
                Ok(())
            };
            assert_eq!(vfs.rmdir(r, path.as_bytes()), want, "rmdir {path}");
            if want.is_ok() {
                m.entries_mut(dir).remove(&name);
            }
            "rmdir"
        }
        76..=81 if !crowded => {
            let target = if rng.below(3) == 0 {
                format!("/far/{}", "t".repeat(rng.below(300) as usize + 60))
            } else {
                format!("t{}", rng.below(1000))
            };
            let got = vfs
                .symlink(r, target.as_bytes(), new_path.as_bytes(), 0, 0)
                .map(|_| ());
            let want = if exists { Err(Errno::EEXIST) } else { Ok(()) };
            assert_eq!(got, want, "symlink {new_path}");
            if !exists {
                m.add(
                    did,
                    &name,
                    Node {
                        body: Body::Symlink(target.into_bytes()),
                        perm: 0o777,
                        uid: 0,
                        gid: 0,
                    },
                );
            }
            "symlink"
        }
        82..=86 if !all.is_empty() && !crowded => {
            let (spath, _, _, sid) = rng.pick(&all).clone();
            let want = if m.is_dir(sid) {
                Err(Errno::EPERM)
            } else if exists {
                Err(Errno::EEXIST)
            } else {
                Ok(())
            };
            assert_eq!(
                vfs.link(r, spath.as_bytes(), new_path.as_bytes()),
                want,
                "link {spath} {new_path}"
            );
            if want.is_ok() {
                m.entries_mut(did).insert(name, sid);
            }
            "link"
        }
        87..=89 if !crowded => {
            let kind = *rng.pick(&[
                FileKind::Fifo,
                FileKind::Char,
                FileKind::Block,
                FileKind::Socket,
            ]);
            let rdev = match kind {
                FileKind::Char | FileKind::Block => {
                    (rng.below(300) as u32, rng.below(70000) as u32)
                }
                _ => (0, 0),
            };
            let perm = rng.below(0o7777) as u32;
            let node = NewNode {
                kind,
                perm,
                uid: 0,
                gid: 0,
                rdev,
            };
            let got = vfs.mknod(r, new_path.as_bytes(), &node).map(|_| ());
            let want = if exists { Err(Errno::EEXIST) } else { Ok(()) };
            assert_eq!(got, want, "mknod {new_path}");
            if !exists {
                m.add(
                    did,
                    &name,
                    Node {
                        body: Body::Special(kind, rdev),
                        perm,
                        uid: 0,
                        gid: 0,
                    },
                );
            }
            "mknod"
        }
        90..=94 if !all.is_empty() => {
            let (path, _, _, id) = rng.pick(&all).clone();
            if matches!(m.node(id).body, Body::Symlink(_)) {
                return "skip";
            }
            let perm = rng.below(0o10000) as u32;
            let set = SetAttr {
                perm: Some(perm),
                ..SetAttr::default()
            };
            vfs.setattr(r, path.as_bytes(), false, &set).expect("chmod");
            m.node_mut(id).perm = perm;
            "chmod"
        }
        95..=99 if !all.is_empty() => {
            let (path, _, _, id) = rng.pick(&all).clone();
            let (uid, gid) = (rng.below(70000) as u32, rng.below(70000) as u32);
            let set = SetAttr {
                uid: Some(uid),
                gid: Some(gid),
                ..SetAttr::default()
            };
            vfs.setattr(r, path.as_bytes(), false, &set).expect("chown");
            let n = m.node_mut(id);
            n.uid = uid;
            n.gid = gid;
            "chown"
        }
        _ => {
            let _ = p;
            "skip"
        }
    }
}

fn check(image: &Path, m: &Model, what: &str) {
    let out = run(
        Command::new("e2fsck").arg("-fn").arg(image),
        Duration::from_secs(120),
    );
    assert!(
        out.success(),
        "{what}: e2fsck -fn is not clean:\n{}{}",
        out.stdout,
        out.stderr
    );
    let theirs = debugfs_tree(image);
    let (model, ids) = m.tree();
    let strip = |t: &Tree| -> BTreeMap<String, Entry> {
        t.iter()
            .map(|(k, e)| {
                (
                    k.clone(),
                    Entry {
                        ino: 0,
                        ..e.clone()
                    },
                )
            })
            .collect()
    };
    let (theirs_s, model_s) = (strip(&theirs), strip(&model));
    for (path, e) in &model_s {
        let t = theirs_s
            .get(path)
            .unwrap_or_else(|| panic!("{what}: {path} missing in the image"));
        assert_eq!(
            (t.mode, t.uid, t.gid, t.size, &t.target),
            (e.mode, e.uid, e.gid, e.size, &e.target),
            "{what}: {path}: (mode, uid, gid, size, target) differ"
        );
        assert!(t.data == e.data, "{what}: {path}: contents differ");
    }
    for path in theirs_s.keys() {
        assert!(
            model_s.contains_key(path),
            "{what}: {path} is in the image, not in the model"
        );
    }
    // Names share an inode exactly when they share a model node.
    let mut by_model: HashMap<usize, u32> = HashMap::new();
    let mut by_ino: HashMap<u32, usize> = HashMap::new();
    for (path, e) in &theirs {
        let id = ids[path];
        assert_eq!(
            *by_model.entry(id).or_insert(e.ino),
            e.ino,
            "{what}: {path}: hard links split"
        );
        assert_eq!(
            *by_ino.entry(e.ino).or_insert(id),
            id,
            "{what}: {path}: names merged"
        );
    }
    // Our own reader sees what debugfs sees, and the device numbers the model has.
    tests::ext2tree::assert_same_tree(&our_tree(image), &theirs, what);
    let file = std::fs::File::open(image).expect("open image");
    let fs = Ext2Fs::mount(Box::new(file), true, 1 << 20).expect("read-only mount");
    let mut vfs = Vfs::new(Box::new(fs), "/dev/ubda");
    let r = vfs.root();
    for (path, id) in &ids {
        if let Body::Special(kind, rdev) = m.node(*id).body {
            let a = vfs.stat(r, path.as_bytes(), false).expect("stat device");
            assert_eq!((a.kind, a.rdev), (kind, rdev), "{what}: {path}");
        }
    }
}

fn workload(bs: u64, seed: u64) {
    let dir = scratch();
    let image = dir.path().join("img");
    let out = run(
        Command::new("mkfs.ext2")
            .args(["-q", "-F", "-b", &bs.to_string()])
            .arg(&image)
            .arg("64M"),
        Duration::from_secs(30),
    );
    assert!(out.success(), "mkfs.ext2: {}", out.stderr);
    let what = format!("{bs}-byte blocks, seed {seed}");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&image)
        .expect("open image");
    // A cache far smaller than the data: eviction writes back all the time.
    let fs =
        Ext2Fs::mount(Box::new(file), false, 256 << 10).unwrap_or_else(|e| panic!("{what}: {e}"));
    let mut vfs = Vfs::new(Box::new(fs), "/dev/ubda");
    let mut model = Model::new(bs);
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let start = Instant::now();
    let mut done = 0;
    while done < OPS {
        let far_ok = bs == 1024
            && !model
                .nodes
                .iter()
                .flatten()
                .any(|n| matches!(&n.body, Body::File(d) if d.len() > 32 << 20));
        let op = step(&mut vfs, &mut model, &mut rng, far_ok);
        if op != "skip" {
            *counts.entry(op).or_default() += 1;
            done += 1;
        }
        if done % 2500 == 0 && rng.below(2) == 0 {
            vfs.sync_all().expect("sync");
        }
    }
    vfs.unmount_all().expect("unmount");
    drop(vfs);
    eprintln!("{what}: {OPS} ops in {:?}: {counts:?}", start.elapsed());
    for op in [
        "create", "write", "truncate", "rename", "unlink", "mkdir", "rmdir", "symlink", "link",
        "mknod", "chmod", "chown",
    ] {
        assert!(
            counts.get(op).copied().unwrap_or(0) > 20,
            "{what}: too few {op} ops: {counts:?}"
        );
    }
    check(&image, &model, &what);
}

#[test]
fn model_1k_blocks() {
    for seed in [1, 2] {
        workload(1024, seed);
    }
}

#[test]
fn model_2k_blocks() {
    for seed in [3, 4] {
        workload(2048, seed);
    }
}

#[test]
fn model_4k_blocks() {
    for seed in [5, 6] {
        workload(4096, seed);
    }
}
