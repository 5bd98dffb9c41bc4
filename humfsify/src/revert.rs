//! `humfsify -r`: put back the modes, owners and device nodes recorded in the metadata
//! (superblock version 2: file_metadata/ and dir_metadata/; version 1: metadata/), then
//! remove the metadata directories.
//!
//! Every metadata file is read and every data file looked up before anything changes;
//! a bad or orphaned metadata file stops the run with the tree untouched. Files come
//! first, then directories deepest first; hard-linked device nodes stay linked.
//!
//! The whole tree is the user's while this runs: the metadata is read and data/ is
//! changed by descriptor only (see `at`); a symlink anywhere inside data/ or the
//! metadata is never followed, and a path through one stops the run before anything
//! changes.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use indicatif::ProgressBar;
use nix::sys::stat::{makedev, mknodat, Mode, SFlag};
use nix::unistd::{linkat, unlinkat, UnlinkatFlags};
use uml_proto::humfs::{HumfsError, Metadata, MetadataV1, NodeKind, Superblock};

use crate::at::{self, Id, Tree};
use crate::error::{HumfsifyError, Result};
use crate::forward::{DATA, DIR_METADATA, DIR_METADATA_FILE, FILE_METADATA, SUPERBLOCK};
use crate::scan::scan;

pub use uml_proto::humfs::layout::V1_METADATA;

/// What to do to one data node.
#[derive(Debug, Clone)]
struct Restore {
    /// Relative to data/ (empty for data/ itself).
    rel: PathBuf,
    uid: u32,
    gid: u32,
    /// None in version 1 (no modes recorded).
    mode: Option<u32>,
    kind: NodeKind,
    /// The metadata file it came from (for messages).
    meta: PathBuf,
    /// The metadata file's identity: names sharing it were hard links.
    link_key: Id,
}

/// Reverts the humfs tree in `top`; returns how many nodes were restored.
pub fn revert(top: &Path, bar: &ProgressBar) -> Result<usize> {
    let top_fd = at::open_root(top).map_err(HumfsifyError::io(top, "open"))?;
    let sb_path = top.join(SUPERBLOCK);
    let (bytes, _) = at::read_file(&top_fd, OsStr::new(SUPERBLOCK))
        .map_err(HumfsifyError::io(&sb_path, "read"))?;
    let sb = Superblock::parse(&bytes).map_err(|source| HumfsifyError::Superblock {
        path: sb_path.clone(),
        source,
    })?;
    let plan = match sb.version {
        1 => plan_v1(&top_fd, top)?,
        _ => plan_v2(&top_fd, top)?,
    };
    let metadata_dirs = uml_proto::humfs::layout::metadata_roots(sb.version);
    let data = top.join(DATA);
    let mut tree =
        Tree::new(&top_fd, OsStr::new(DATA)).map_err(HumfsifyError::io(&data, "open"))?;
    check_data_exists(&mut tree, &data, &plan)?;
    bar.set_length(plan.len() as u64);
    let problems = apply(&mut tree, &data, &plan, bar);
    bar.finish_and_clear();
    if !problems.is_empty() {
        return Err(HumfsifyError::RevertProblems(problems));
    }
    for &name in metadata_dirs {
        at::remove_tree(&top_fd, OsStr::new(name))
            .map_err(HumfsifyError::io(top.join(name), "remove"))?;
    }
    Ok(plan.len())
}

/// One parsed metadata file: relative to its tree's root, with its identity.
struct MetaFile<T> {
    rel: PathBuf,
    shown: PathBuf,
    parsed: T,
    id: Id,
}

/// Reads every non-directory of the metadata tree `name` in `top` (in tree order),
/// parsing each with `parse`; a symlink or special file there is an error.
fn read_tree<T>(
    top: &std::os::fd::OwnedFd,
    top_path: &Path,
    name: &str,
    parse: fn(&[u8]) -> std::result::Result<T, HumfsError>,
) -> Result<Vec<MetaFile<T>>> {
    let root = top_path.join(name);
    let mut tree = Tree::new(top, OsStr::new(name)).map_err(HumfsifyError::io(&root, "open"))?;
    let entries = scan(tree.root(), &root)?.entries;
    let mut out = Vec::new();
    for e in entries.into_iter().filter(|e| !e.is_dir()) {
        let shown = root.join(&e.rel);
        let (parent, file) = tree
            .parent_of(&e.rel)
            .map_err(HumfsifyError::io(&shown, "open"))?;
        let (bytes, st) = at::read_file(parent, file).map_err(HumfsifyError::io(&shown, "read"))?;
        let parsed = parse(&bytes).map_err(|source| HumfsifyError::Metadata {
            path: shown.clone(),
            source,
        })?;
        out.push(MetaFile {
            rel: e.rel,
            shown,
            parsed,
            id: Id::of(&st),
        });
    }
    Ok(out)
}

/// Version 2: file_metadata/REL for non-directories, dir_metadata/REL/metadata for
/// directories.
fn plan_v2(top: &std::os::fd::OwnedFd, top_path: &Path) -> Result<Vec<Restore>> {
    let mut files: Vec<Restore> = read_tree(top, top_path, FILE_METADATA, Metadata::parse)?
        .into_iter()
        .map(|m| restore_v2(m.rel, m.shown, m.parsed, m.id))
        .collect();
    let mut dirs = Vec::new();
    for m in read_tree(top, top_path, DIR_METADATA, Metadata::parse)? {
        let (Some(parent), Some(DIR_METADATA_FILE)) =
            (m.rel.parent(), m.rel.file_name().and_then(|n| n.to_str()))
        else {
            return Err(HumfsifyError::Metadata {
                path: m.shown,
                source: HumfsError::BadLine("a file in dir_metadata/ not named metadata".into()),
            });
        };
        dirs.push(restore_v2(parent.to_owned(), m.shown, m.parsed, m.id));
    }
    dirs.reverse();
    files.extend(dirs);
    Ok(files)
}

fn restore_v2(rel: PathBuf, meta: PathBuf, m: Metadata, link_key: Id) -> Restore {
    Restore {
        rel,
        uid: m.uid,
        gid: m.gid,
        mode: Some(m.mode),
        kind: m.kind,
        meta,
        link_key,
    }
}

/// Version 1: metadata/REL for files, metadata/REL/metadata for directories.
fn plan_v1(top: &std::os::fd::OwnedFd, top_path: &Path) -> Result<Vec<Restore>> {
    let (mut files, mut dirs) = (Vec::new(), Vec::new());
    for m in read_tree(top, top_path, V1_METADATA, MetadataV1::parse)? {
        let is_dir = m.rel.file_name().is_some_and(|n| n == DIR_METADATA_FILE);
        let rel = if is_dir {
            m.rel.parent().unwrap_or(Path::new("")).to_owned()
        } else {
            m.rel
        };
        let r = Restore {
            rel,
            uid: m.parsed.uid,
            gid: m.parsed.gid,
            mode: None,
            kind: m.parsed.kind,
            meta: m.shown,
            link_key: m.id,
        };
        if is_dir {
            dirs.push(r)
        } else {
            files.push(r)
        }
    }
    dirs.reverse();
    files.extend(dirs);
    Ok(files)
}

/// Every data node must be there, reached without following a symlink.
fn check_data_exists(tree: &mut Tree, data: &Path, plan: &[Restore]) -> Result<()> {
    for r in plan {
        match tree.lstat(&r.rel) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                return Err(HumfsifyError::MissingData {
                    metadata: r.meta.clone(),
                    data: data.join(&r.rel),
                })
            }
            Err(e) => {
                return Err(HumfsifyError::Io {
                    path: data.join(&r.rel),
                    op: "looking up (symlinks inside data/ are not followed)",
                    source: e,
                })
            }
        }
    }
    Ok(())
}

/// Restores every node; returns one line per failure.
fn apply(tree: &mut Tree, data: &Path, plan: &[Restore], bar: &ProgressBar) -> Vec<String> {
    let mut problems = Vec::new();
    let mut made_devices: HashMap<Id, PathBuf> = HashMap::new();
    for r in plan {
        bar.inc(1);
        let shown = data.join(&r.rel);
        if let Err(e) = restore_one(tree, r, &mut made_devices) {
            problems.push(
                HumfsifyError::Io {
                    path: shown,
                    op: e.0,
                    source: e.1,
                }
                .to_string(),
            );
        }
    }
    problems
}

type StepError = (&'static str, std::io::Error);

fn step<T>(op: &'static str, r: std::io::Result<T>) -> std::result::Result<T, StepError> {
    r.map_err(|e| (op, e))
}

fn restore_one(
    tree: &mut Tree,
    r: &Restore,
    made_devices: &mut HashMap<Id, PathBuf>,
) -> std::result::Result<(), StepError> {
    match r.kind {
        NodeKind::Char { major, minor } => {
            remake_device(tree, r, SFlag::S_IFCHR, major, minor, made_devices)?
        }
        NodeKind::Block { major, minor } => {
            remake_device(tree, r, SFlag::S_IFBLK, major, minor, made_devices)?
        }
        NodeKind::Socket | NodeKind::Plain => {}
    }
    let fd = step("open", tree.open(&r.rel))?;
    step("chown/chmod", at::set_owner_mode(&fd, r.uid, r.gid, r.mode))
}

/// Replaces the data file with the recorded device node (or a hard link to the node
/// already made for another name of the same metadata file), relative to its
/// directory's descriptor.
fn remake_device(
    tree: &mut Tree,
    r: &Restore,
    kind: SFlag,
    major: u32,
    minor: u32,
    made: &mut HashMap<Id, PathBuf>,
) -> std::result::Result<(), StepError> {
    let first = match made.get(&r.link_key) {
        Some(first) => {
            let name = first.file_name().unwrap_or_default().to_owned();
            let dir = step(
                "open",
                tree.dir_fresh(first.parent().unwrap_or(Path::new(""))),
            )?;
            Some((dir, name))
        }
        None => None,
    };
    let (parent, name) = step("open", tree.parent_of(&r.rel))?;
    step(
        "remove",
        unlinkat(parent, name, UnlinkatFlags::NoRemoveDir).map_err(Into::into),
    )?;
    if let Some((dir, first_name)) = first {
        return step(
            "link",
            linkat(
                &dir,
                first_name.as_os_str(),
                parent,
                name,
                nix::fcntl::AtFlags::empty(),
            )
            .map_err(Into::into),
        );
    }
    let perm = Mode::from_bits_truncate(r.mode.unwrap_or(0o666 & !uml_proto::fsutil::umask()));
    let dev = makedev(major as u64, minor as u64);
    step(
        "mknod",
        mknodat(parent, name, kind, perm, dev).map_err(Into::into),
    )?;
    let node = step("open", at::open_node(parent, name))?;
    let st = step("open", at::stat(&node))?;
    if at::kind(&st) != kind || st.st_rdev != dev {
        return Err(("mknod", std::io::Error::other("replaced right after mknod")));
    }
    made.insert(r.link_key, r.rel.clone());
    Ok(())
}
