//! `humfsify USER GROUP SIZE`: record every node of data/ in file_metadata/ and
//! dir_metadata/, write the superblock, and hand data/ to USER:GROUP with mode 0755.
//!
//! Nothing changes until everything is checked: the metadata is built in a staging
//! directory beside data/, then data/ is chowned and chmodded (undone if any of that
//! fails), and only then are the staged directories and superblock renamed into place.

use std::collections::HashMap;
use std::fs::{self, File, Permissions};
use std::io::Write;
use std::os::unix::fs::{lchown, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use indicatif::ProgressBar;
use nix::sys::stat::{major, minor};
use uml_proto::humfs::{Metadata, NodeKind, Superblock};

use crate::error::{HumfsifyError, Result};
use crate::scan::{scan, Entry};

pub const DATA: &str = "data";
pub const FILE_METADATA: &str = "file_metadata";
pub const DIR_METADATA: &str = "dir_metadata";
pub const SUPERBLOCK: &str = "superblock";
/// The name of a directory's own metadata file inside dir_metadata/.
pub const DIR_METADATA_FILE: &str = "metadata";

/// What to humfsify.
#[derive(Debug, Clone)]
pub struct Request {
    /// The directory holding data/.
    pub top: PathBuf,
    pub uid: u32,
    pub gid: u32,
    /// File-system size in bytes.
    pub total: u64,
}

/// What was done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub nodes: usize,
    pub used: u64,
}

/// The metadata line for one node: permission bits including setuid, setgid and
/// sticky; devices with their real major and minor numbers.
pub fn metadata_for(entry: &Entry) -> Metadata {
    let m = &entry.meta;
    let ft = m.file_type();
    let rdev = m.rdev();
    let kind = if ft.is_char_device() {
        NodeKind::Char {
            major: major(rdev) as u32,
            minor: minor(rdev) as u32,
        }
    } else if ft.is_block_device() {
        NodeKind::Block {
            major: major(rdev) as u32,
            minor: minor(rdev) as u32,
        }
    } else {
        NodeKind::Plain
    };
    Metadata {
        mode: m.mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
        kind,
    }
}

/// Humfsifies `req.top`; see the module comment for the order of events.
pub fn humfsify(req: &Request, bar: &ProgressBar) -> Result<Summary> {
    let top = &req.top;
    let data = top.join(DATA);
    if !fs::symlink_metadata(&data).is_ok_and(|m| m.is_dir()) {
        return Err(HumfsifyError::NoData(top.clone()));
    }
    for name in [FILE_METADATA, DIR_METADATA] {
        if fs::symlink_metadata(top.join(name)).is_ok() {
            return Err(HumfsifyError::AlreadyHumfsified(top.join(name)));
        }
    }
    check_superblock_writable(&top.join(SUPERBLOCK))?;
    let tree = scan(&data)?;
    check_representable(&data, &tree.entries)?;
    if tree.used_bytes > req.total {
        return Err(HumfsifyError::TooSmall {
            used: tree.used_bytes,
            total: req.total,
        });
    }
    bar.set_length(2 * tree.entries.len() as u64);
    let staging = Staging::create(top)?;
    staging.write_metadata(&tree.entries, req, bar)?;
    staging.write_superblock(&Superblock::new_v2(tree.used_bytes, req.total), req)?;
    let applied = hand_over_data(&data, &tree.entries, req, bar)?;
    if let Err(e) = staging.commit(top) {
        undo_hand_over(&data, &applied);
        return Err(e);
    }
    bar.finish_and_clear();
    Ok(Summary {
        nodes: tree.entries.len(),
        used: tree.used_bytes,
    })
}

/// No directory may be called `metadata` (see [`HumfsifyError::Unrepresentable`]).
fn check_representable(data: &Path, entries: &[Entry]) -> Result<()> {
    match entries
        .iter()
        .find(|e| e.is_dir() && e.rel.file_name().is_some_and(|n| n == DIR_METADATA_FILE))
    {
        Some(e) => Err(HumfsifyError::Unrepresentable(data.join(&e.rel))),
        None => Ok(()),
    }
}

/// An existing superblock must be a file we can write (it will be replaced).
fn check_superblock_writable(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Err(_) => Ok(()),
        Ok(_) => fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map(|_| ())
            .map_err(HumfsifyError::io(path, "opening for writing")),
    }
}

/// The staging directory: `.humfsify-staging.PID` beside data/, removed on drop
/// unless committed (then it is empty and removed anyway).
struct Staging {
    dir: PathBuf,
}

impl Staging {
    fn create(top: &Path) -> Result<Staging> {
        let dir = top.join(format!(".humfsify-staging.{}", std::process::id()));
        fs::create_dir(&dir).map_err(HumfsifyError::io(&dir, "creating the staging directory"))?;
        Ok(Staging { dir })
    }

    fn write_metadata(&self, entries: &[Entry], req: &Request, bar: &ProgressBar) -> Result<()> {
        let mut first_name: HashMap<(u64, u64), PathBuf> = HashMap::new();
        let mut line = Vec::with_capacity(64);
        for entry in entries {
            bar.inc(1);
            if entry.is_dir() {
                self.make_dir(&self.dir.join(FILE_METADATA).join(&entry.rel), req)?;
                let meta_dir = self.dir.join(DIR_METADATA).join(&entry.rel);
                self.make_dir(&meta_dir, req)?;
                line.clear();
                metadata_for(entry).emit(&mut line);
                write_owned_file(&meta_dir.join(DIR_METADATA_FILE), &line, req)?;
                continue;
            }
            let path = self.dir.join(FILE_METADATA).join(&entry.rel);
            if entry.meta.nlink() > 1 {
                if let Some(first) = first_name.get(&entry.inode()) {
                    fs::hard_link(first, &path).map_err(HumfsifyError::io(&path, "link"))?;
                    continue;
                }
                first_name.insert(entry.inode(), path.clone());
            }
            line.clear();
            metadata_for(entry).emit(&mut line);
            write_owned_file(&path, &line, req)?;
        }
        Ok(())
    }

    fn make_dir(&self, path: &Path, req: &Request) -> Result<()> {
        fs::create_dir(path).map_err(HumfsifyError::io(path, "mkdir"))?;
        lchown(path, Some(req.uid), Some(req.gid)).map_err(HumfsifyError::io(path, "chown"))
    }

    fn write_superblock(&self, sb: &Superblock, req: &Request) -> Result<()> {
        let mut bytes = Vec::new();
        sb.emit(&mut bytes);
        write_owned_file(&self.dir.join(SUPERBLOCK), &bytes, req)
    }

    /// Renames the staged pieces into `top`; the superblock goes last.
    fn commit(&self, top: &Path) -> Result<()> {
        let mut done = Vec::new();
        for name in [FILE_METADATA, DIR_METADATA, SUPERBLOCK] {
            let (from, to) = (self.dir.join(name), top.join(name));
            if let Err(e) = fs::rename(&from, &to) {
                for moved in done.iter().rev() {
                    let _ = fs::rename(top.join(moved), self.dir.join(moved));
                }
                return Err(HumfsifyError::io(to, "rename into place")(e));
            }
            done.push(name);
        }
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn write_owned_file(path: &Path, bytes: &[u8], req: &Request) -> Result<()> {
    let mut f = File::create(path).map_err(HumfsifyError::io(path, "create"))?;
    f.write_all(bytes)
        .map_err(HumfsifyError::io(path, "write"))?;
    lchown(path, Some(req.uid), Some(req.gid)).map_err(HumfsifyError::io(path, "chown"))
}

/// One data node changed by the hand-over, with what it was before.
struct Applied {
    rel: PathBuf,
    uid: u32,
    gid: u32,
    /// None for symlinks (never chmodded).
    mode: Option<u32>,
}

/// Gives every node of data/ to the user and group, mode 0755 (symlinks only chowned);
/// on failure puts back what was changed.
fn hand_over_data(
    data: &Path,
    entries: &[Entry],
    req: &Request,
    bar: &ProgressBar,
) -> Result<Vec<Applied>> {
    let mut applied = Vec::with_capacity(entries.len());
    for entry in entries {
        bar.inc(1);
        let path = data.join(&entry.rel);
        applied.push(Applied {
            rel: entry.rel.clone(),
            uid: entry.meta.uid(),
            gid: entry.meta.gid(),
            mode: (!entry.is_symlink()).then_some(entry.meta.mode() & 0o7777),
        });
        let changed = lchown(&path, Some(req.uid), Some(req.gid))
            .map_err(HumfsifyError::io(&path, "chown"))
            .and_then(|()| {
                if entry.is_symlink() {
                    return Ok(());
                }
                fs::set_permissions(&path, Permissions::from_mode(0o755))
                    .map_err(HumfsifyError::io(&path, "chmod"))
            });
        if let Err(e) = changed {
            undo_hand_over(data, &applied);
            return Err(e);
        }
    }
    Ok(applied)
}

fn undo_hand_over(data: &Path, applied: &[Applied]) {
    for a in applied.iter().rev() {
        let path = data.join(&a.rel);
        let _ = lchown(&path, Some(a.uid), Some(a.gid));
        if let Some(mode) = a.mode {
            let _ = fs::set_permissions(&path, Permissions::from_mode(mode));
        }
    }
}
