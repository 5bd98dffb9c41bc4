//! `humfsify -r`: put back the modes, owners and device nodes recorded in the metadata
//! (superblock version 2: file_metadata/ and dir_metadata/; version 1: metadata/), then
//! remove the metadata directories.
//!
//! Every metadata file is read and every data file looked up before anything changes;
//! a bad or orphaned metadata file stops the run with the tree untouched. Files come
//! first, then directories deepest first; hard-linked device nodes stay linked.

use std::collections::HashMap;
use std::fs::{self, Permissions};
use std::os::unix::fs::{lchown, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use indicatif::ProgressBar;
use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use uml_proto::humfs::{HumfsError, Metadata, MetadataV1, NodeKind, Superblock};
use walkdir::WalkDir;

use crate::error::{HumfsifyError, Result};
use crate::forward::{DATA, DIR_METADATA, DIR_METADATA_FILE, FILE_METADATA, SUPERBLOCK};

/// The version 1 metadata tree.
pub const V1_METADATA: &str = "metadata";

/// What to do to one data node.
#[derive(Debug, Clone)]
struct Restore {
    data: PathBuf,
    uid: u32,
    gid: u32,
    /// None in version 1 (no modes recorded).
    mode: Option<u32>,
    kind: NodeKind,
    /// The metadata file it came from.
    meta: PathBuf,
    /// The metadata file's (device, inode): names sharing it were hard links.
    link_key: (u64, u64),
}

/// Reverts the humfs tree in `top`; returns how many nodes were restored.
pub fn revert(top: &Path, bar: &ProgressBar) -> Result<usize> {
    let sb_path = top.join(SUPERBLOCK);
    let bytes = fs::read(&sb_path).map_err(HumfsifyError::io(&sb_path, "read"))?;
    let sb = Superblock::parse(&bytes).map_err(|source| HumfsifyError::Superblock {
        path: sb_path.clone(),
        source,
    })?;
    let (plan, metadata_dirs) = match sb.version {
        1 => (plan_v1(top)?, vec![top.join(V1_METADATA)]),
        _ => (
            plan_v2(top)?,
            vec![top.join(FILE_METADATA), top.join(DIR_METADATA)],
        ),
    };
    check_data_exists(&plan)?;
    bar.set_length(plan.len() as u64);
    let problems = apply(&plan, bar);
    bar.finish_and_clear();
    if !problems.is_empty() {
        return Err(HumfsifyError::RevertProblems(problems));
    }
    for dir in metadata_dirs {
        fs::remove_dir_all(&dir).map_err(HumfsifyError::io(&dir, "remove"))?;
    }
    Ok(plan.len())
}

fn walk_error(root: &Path) -> impl Fn(walkdir::Error) -> HumfsifyError + '_ {
    move |e| HumfsifyError::Io {
        path: e.path().unwrap_or(root).to_owned(),
        op: "reading the metadata tree",
        source: e.into(),
    }
}

fn read_metadata<T>(
    path: &Path,
    parse: fn(&[u8]) -> std::result::Result<T, HumfsError>,
) -> Result<(T, (u64, u64))> {
    let bytes = fs::read(path).map_err(HumfsifyError::io(path, "read"))?;
    let meta = fs::metadata(path).map_err(HumfsifyError::io(path, "stat"))?;
    let parsed = parse(&bytes).map_err(|source| HumfsifyError::Metadata {
        path: path.to_owned(),
        source,
    })?;
    Ok((parsed, (meta.dev(), meta.ino())))
}

fn relative(path: &Path, root: &Path) -> PathBuf {
    path.strip_prefix(root).unwrap_or(path).to_owned()
}

/// Version 2: file_metadata/REL for non-directories, dir_metadata/REL/metadata for
/// directories.
fn plan_v2(top: &Path) -> Result<Vec<Restore>> {
    let data = top.join(DATA);
    let mut files = Vec::new();
    let file_root = top.join(FILE_METADATA);
    for item in WalkDir::new(&file_root).sort_by_file_name() {
        let item = item.map_err(walk_error(&file_root))?;
        if item.file_type().is_dir() {
            continue;
        }
        let (m, link_key) = read_metadata(item.path(), Metadata::parse)?;
        let target = data.join(relative(item.path(), &file_root));
        files.push(restore_v2(target, item.path(), m, link_key));
    }
    let mut dirs = Vec::new();
    let dir_root = top.join(DIR_METADATA);
    for item in WalkDir::new(&dir_root).sort_by_file_name() {
        let item = item.map_err(walk_error(&dir_root))?;
        if item.file_type().is_dir() {
            continue;
        }
        let rel = relative(item.path(), &dir_root);
        let (Some(parent), Some(DIR_METADATA_FILE)) =
            (rel.parent(), rel.file_name().and_then(|n| n.to_str()))
        else {
            return Err(HumfsifyError::Metadata {
                path: item.path().to_owned(),
                source: HumfsError::BadLine("a file in dir_metadata/ not named metadata".into()),
            });
        };
        let (m, link_key) = read_metadata(item.path(), Metadata::parse)?;
        dirs.push(restore_v2(data.join(parent), item.path(), m, link_key));
    }
    dirs.reverse();
    files.extend(dirs);
    Ok(files)
}

fn restore_v2(data: PathBuf, meta: &Path, m: Metadata, link_key: (u64, u64)) -> Restore {
    Restore {
        data,
        uid: m.uid,
        gid: m.gid,
        mode: Some(m.mode),
        kind: m.kind,
        meta: meta.to_owned(),
        link_key,
    }
}

/// Version 1: metadata/REL for files, metadata/REL/metadata for directories.
fn plan_v1(top: &Path) -> Result<Vec<Restore>> {
    let data = top.join(DATA);
    let root = top.join(V1_METADATA);
    let (mut files, mut dirs) = (Vec::new(), Vec::new());
    for item in WalkDir::new(&root).sort_by_file_name() {
        let item = item.map_err(walk_error(&root))?;
        let is_dir = item.file_type().is_dir();
        if !is_dir && item.file_name() == DIR_METADATA_FILE {
            continue;
        }
        let meta_path = if is_dir {
            item.path().join(DIR_METADATA_FILE)
        } else {
            item.path().to_owned()
        };
        let (m, link_key) = read_metadata(&meta_path, MetadataV1::parse)?;
        let r = Restore {
            data: data.join(relative(item.path(), &root)),
            uid: m.uid,
            gid: m.gid,
            mode: None,
            kind: m.kind,
            meta: meta_path.clone(),
            link_key,
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

fn check_data_exists(plan: &[Restore]) -> Result<()> {
    for r in plan {
        if fs::symlink_metadata(&r.data).is_err() {
            return Err(HumfsifyError::MissingData {
                metadata: r.meta.clone(),
                data: r.data.clone(),
            });
        }
    }
    Ok(())
}

/// Restores every node; returns one line per failure.
fn apply(plan: &[Restore], bar: &ProgressBar) -> Vec<String> {
    let mut problems = Vec::new();
    let mut made_devices: HashMap<(u64, u64), PathBuf> = HashMap::new();
    for r in plan {
        bar.inc(1);
        if let Err(e) = restore_one(r, &mut made_devices) {
            problems.push(e.to_string());
        }
    }
    problems
}

fn restore_one(r: &Restore, made_devices: &mut HashMap<(u64, u64), PathBuf>) -> Result<()> {
    match r.kind {
        NodeKind::Char { major, minor } => {
            remake_device(r, SFlag::S_IFCHR, major, minor, made_devices)?
        }
        NodeKind::Block { major, minor } => {
            remake_device(r, SFlag::S_IFBLK, major, minor, made_devices)?
        }
        NodeKind::Socket | NodeKind::Plain => {}
    }
    lchown(&r.data, Some(r.uid), Some(r.gid)).map_err(HumfsifyError::io(&r.data, "chown"))?;
    let is_symlink = fs::symlink_metadata(&r.data).is_ok_and(|m| m.file_type().is_symlink());
    if let (Some(mode), false) = (r.mode, is_symlink) {
        fs::set_permissions(&r.data, Permissions::from_mode(mode))
            .map_err(HumfsifyError::io(&r.data, "chmod"))?;
    }
    Ok(())
}

/// Replaces the data file with the recorded device node (or a hard link to the node
/// already made for another name of the same metadata file).
fn remake_device(
    r: &Restore,
    kind: SFlag,
    major: u32,
    minor: u32,
    made: &mut HashMap<(u64, u64), PathBuf>,
) -> Result<()> {
    fs::remove_file(&r.data).map_err(HumfsifyError::io(&r.data, "remove"))?;
    if let Some(first) = made.get(&r.link_key) {
        return fs::hard_link(first, &r.data).map_err(HumfsifyError::io(&r.data, "link"));
    }
    let perm = Mode::from_bits_truncate(r.mode.unwrap_or(0o666 & !uml_proto::fsutil::umask()));
    mknod(&r.data, kind, perm, makedev(major as u64, minor as u64))
        .map_err(|e| HumfsifyError::io(&r.data, "mknod")(e.into()))?;
    made.insert(r.link_key, r.data.clone());
    Ok(())
}
