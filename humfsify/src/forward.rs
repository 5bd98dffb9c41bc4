//! `humfsify USER GROUP SIZE`: record every node of data/ in file_metadata/ and
//! dir_metadata/, write the superblock, and hand data/ to USER:GROUP with mode 0755.
//!
//! Nothing changes until everything is checked: the metadata is built in a staging
//! directory beside data/ (root's, mode 0700, so nobody else can reach into it), then
//! data/ is chowned and chmodded (undone if any of that fails), and only then are the
//! staged directories and superblock renamed into place.
//!
//! data/ belongs to another user, who may change it while this runs: it is read and
//! changed only by descriptor (see `at`), each node checked to be the one that was
//! read, children before their directory, data/ itself last.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use indicatif::ProgressBar;
use nix::fcntl::{openat, renameat, AtFlags, OFlag};
use nix::sys::stat::{fstatat, major, minor, mkdirat, Mode, SFlag};
use nix::unistd::{fchown, fchownat, geteuid, linkat, Gid, Uid};
use uml_proto::humfs::{Metadata, NodeKind, Superblock};

use crate::at::{self, Id, Tree};
use crate::error::{HumfsifyError, Result};
use crate::scan::{scan, Entry};

pub use uml_proto::humfs::layout::{
    DATA, DIR_METADATA, DIR_METADATA_FILE, FILE_METADATA, SUPERBLOCK,
};

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
    let rdev = entry.st.st_rdev;
    let (major, minor) = (major(rdev) as u32, minor(rdev) as u32);
    let kind = match at::kind(&entry.st) {
        SFlag::S_IFCHR => NodeKind::Char { major, minor },
        SFlag::S_IFBLK => NodeKind::Block { major, minor },
        _ => NodeKind::Plain,
    };
    let (uid, gid, mode) = entry.owner_and_mode();
    Metadata {
        mode,
        uid,
        gid,
        kind,
    }
}

fn nix_io(path: &Path, op: &'static str) -> impl FnOnce(nix::Error) -> HumfsifyError + use<> {
    let f = HumfsifyError::io(path.to_owned(), op);
    move |e| f(e.into())
}

/// Humfsifies `req.top`; see the module comment for the order of events.
pub fn humfsify(req: &Request, bar: &ProgressBar) -> Result<Summary> {
    let top = &req.top;
    let data = top.join(DATA);
    let top_fd = at::open_root(top).map_err(HumfsifyError::io(top, "open"))?;
    let tree_fd = Tree::new(&top_fd, OsStr::new(DATA));
    let mut nodes = Nodes {
        tree: tree_fd.map_err(|_| HumfsifyError::NoData(top.clone()))?,
        data: data.clone(),
    };
    for name in [FILE_METADATA, DIR_METADATA] {
        if fstatat(&top_fd, name, AtFlags::AT_SYMLINK_NOFOLLOW).is_ok() {
            return Err(HumfsifyError::AlreadyHumfsified(top.join(name)));
        }
    }
    check_superblock_writable(&top_fd, &top.join(SUPERBLOCK))?;
    let tree = scan(nodes.tree.root(), &data)?;
    check_representable(&data, &tree.entries)?;
    if tree.used_bytes > req.total {
        return Err(HumfsifyError::TooSmall {
            used: tree.used_bytes,
            total: req.total,
        });
    }
    bar.set_length(2 * tree.entries.len() as u64);
    let staging = Staging::create(&top_fd, top)?;
    staging.write_metadata(&tree.entries, req, bar)?;
    staging.write_superblock(&Superblock::new_v2(tree.used_bytes, req.total), req)?;
    let applied = hand_over_data(&mut nodes, &tree.entries, req, bar)?;
    if let Err(e) = staging.commit(&top_fd, top) {
        undo_hand_over(&mut nodes, &applied);
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
    match entries.iter().find(|e| {
        e.rel.file_name().is_some_and(|n| {
            !uml_proto::humfs::layout::representable(2, n.as_encoded_bytes(), e.is_dir())
        })
    }) {
        Some(e) => Err(HumfsifyError::Unrepresentable(data.join(&e.rel))),
        None => Ok(()),
    }
}

/// An existing superblock must be a file we can write (it will be replaced); a
/// symlink is not followed.
fn check_superblock_writable(top: &OwnedFd, path: &Path) -> Result<()> {
    if fstatat(top, SUPERBLOCK, AtFlags::AT_SYMLINK_NOFOLLOW).is_err() {
        return Ok(());
    }
    let flags = OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    openat(top, SUPERBLOCK, flags, Mode::empty())
        .map(drop)
        .map_err(nix_io(path, "opening for writing"))
}

/// The staging directory: `.humfsify-staging.PID` beside data/, root's with mode
/// 0700 (checked after opening it), so paths inside it are ours alone; removed on
/// drop (after a commit it is empty).
struct Staging {
    fd: OwnedFd,
    /// Its path, for messages.
    dir: PathBuf,
    name: String,
    /// The directory it is in.
    top: OwnedFd,
}

impl Staging {
    fn create(top: &OwnedFd, top_path: &Path) -> Result<Staging> {
        let name = format!(".humfsify-staging.{}", std::process::id());
        let dir = top_path.join(&name);
        let op = "creating the staging directory";
        mkdirat(top, name.as_str(), Mode::from_bits_truncate(0o700)).map_err(nix_io(&dir, op))?;
        let top = top.try_clone().map_err(HumfsifyError::io(&dir, op))?;
        let fd = at::open_dir(&top, OsStr::new(&name)).map_err(HumfsifyError::io(&dir, op))?;
        let staging = Staging { fd, dir, name, top };
        let st = at::stat(&staging.fd).map_err(HumfsifyError::io(&staging.dir, op))?;
        if st.st_uid != geteuid().as_raw() || st.st_mode & 0o077 != 0 {
            return Err(HumfsifyError::Io {
                path: staging.dir.clone(),
                op,
                source: std::io::Error::other("replaced by someone else's directory"),
            });
        }
        Ok(staging)
    }

    fn write_metadata(&self, entries: &[Entry], req: &Request, bar: &ProgressBar) -> Result<()> {
        let mut first_name: HashMap<Id, PathBuf> = HashMap::new();
        let mut line = Vec::with_capacity(64);
        for entry in entries {
            bar.inc(1);
            if entry.is_dir() {
                self.make_dir(&Path::new(FILE_METADATA).join(&entry.rel), req)?;
                let meta_dir = Path::new(DIR_METADATA).join(&entry.rel);
                self.make_dir(&meta_dir, req)?;
                line.clear();
                metadata_for(entry).emit(&mut line);
                self.write_owned_file(&meta_dir.join(DIR_METADATA_FILE), &line, req)?;
                continue;
            }
            let path = Path::new(FILE_METADATA).join(&entry.rel);
            if entry.st.st_nlink > 1 {
                if let Some(first) = first_name.get(&entry.id()) {
                    linkat(&self.fd, first, &self.fd, &path, AtFlags::empty())
                        .map_err(nix_io(&self.dir.join(&path), "link"))?;
                    continue;
                }
                first_name.insert(entry.id(), path.clone());
            }
            line.clear();
            metadata_for(entry).emit(&mut line);
            self.write_owned_file(&path, &line, req)?;
        }
        Ok(())
    }

    fn make_dir(&self, rel: &Path, req: &Request) -> Result<()> {
        let shown = self.dir.join(rel);
        mkdirat(&self.fd, rel, Mode::from_bits_truncate(0o777)).map_err(nix_io(&shown, "mkdir"))?;
        fchownat(
            &self.fd,
            rel,
            Some(Uid::from_raw(req.uid)),
            Some(Gid::from_raw(req.gid)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(nix_io(&shown, "chown"))
    }

    fn write_owned_file(&self, rel: &Path, bytes: &[u8], req: &Request) -> Result<()> {
        let shown = self.dir.join(rel);
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = openat(&self.fd, rel, flags, Mode::from_bits_truncate(0o666))
            .map_err(nix_io(&shown, "create"))?;
        fchown(
            &fd,
            Some(Uid::from_raw(req.uid)),
            Some(Gid::from_raw(req.gid)),
        )
        .map_err(nix_io(&shown, "chown"))?;
        std::fs::File::from(fd)
            .write_all(bytes)
            .map_err(HumfsifyError::io(&shown, "write"))
    }

    fn write_superblock(&self, sb: &Superblock, req: &Request) -> Result<()> {
        let mut bytes = Vec::new();
        sb.emit(&mut bytes);
        self.write_owned_file(Path::new(SUPERBLOCK), &bytes, req)
    }

    /// Renames the staged pieces into `top`; the superblock goes last.
    fn commit(&self, top: &OwnedFd, top_path: &Path) -> Result<()> {
        let mut done = Vec::new();
        for name in [FILE_METADATA, DIR_METADATA, SUPERBLOCK] {
            if let Err(e) = renameat(&self.fd, name, top, name) {
                for moved in done.iter().rev() {
                    let _ = renameat(top, *moved, &self.fd, *moved);
                }
                return Err(nix_io(&top_path.join(name), "rename into place")(e));
            }
            done.push(name);
        }
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        for name in [FILE_METADATA, DIR_METADATA, SUPERBLOCK] {
            let _ = at::remove_tree(&self.fd, OsStr::new(name));
        }
        let _ = nix::unistd::unlinkat(
            &self.top,
            self.name.as_str(),
            nix::unistd::UnlinkatFlags::RemoveDir,
        );
    }
}

/// The nodes of data/ and data/'s path (for messages).
struct Nodes<'a> {
    tree: Tree<'a>,
    data: PathBuf,
}

impl Nodes<'_> {
    /// Gives the node `rel` (which must still be `id`) the owner and, unless it is a
    /// symlink, the mode.
    fn set(&mut self, rel: &Path, id: Id, uid: u32, gid: u32, mode: Option<u32>) -> Result<()> {
        let shown = self.data.join(rel);
        let fd = self
            .tree
            .open(rel)
            .map_err(HumfsifyError::io(&shown, "open"))?;
        at::check_same(&fd, id).map_err(HumfsifyError::io(&shown, "open"))?;
        at::set_owner_mode(&fd, uid, gid, mode).map_err(HumfsifyError::io(&shown, "chown/chmod"))
    }
}

/// One data node changed by the hand-over, with what it was before.
struct Applied {
    rel: PathBuf,
    id: Id,
    uid: u32,
    gid: u32,
    /// None for symlinks (never chmodded).
    mode: Option<u32>,
}

/// Gives every node of data/ to the user and group, mode 0755 (symlinks only chowned),
/// children before their directory and data/ last; on failure puts back what was
/// changed.
fn hand_over_data(
    nodes: &mut Nodes,
    entries: &[Entry],
    req: &Request,
    bar: &ProgressBar,
) -> Result<Vec<Applied>> {
    let mut applied = Vec::with_capacity(entries.len());
    for entry in entries.iter().rev() {
        bar.inc(1);
        let (uid, gid, mode) = entry.owner_and_mode();
        let symlink = entry.is_symlink();
        let new_mode = (!symlink).then_some(0o755);
        if let Err(e) = nodes.set(&entry.rel, entry.id(), req.uid, req.gid, new_mode) {
            undo_hand_over(nodes, &applied);
            return Err(e);
        }
        applied.push(Applied {
            rel: entry.rel.clone(),
            id: entry.id(),
            uid,
            gid,
            mode: (!symlink).then_some(mode),
        });
    }
    Ok(applied)
}

fn undo_hand_over(nodes: &mut Nodes, applied: &[Applied]) {
    for a in applied.iter().rev() {
        let _ = nodes.set(&a.rel, a.id, a.uid, a.gid, a.mode);
    }
}
