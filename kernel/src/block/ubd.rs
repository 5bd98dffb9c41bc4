//! One ubd device: a host image file, or a COW file over a read-only backing file,
//! opened the way linux.uml opens it (reference cow.md §4): write lock unless shared,
//! COW created when missing, backing path checked (and switched when a moved backing
//! file still matches), size and mtime validated, backing read-locked. The COW format,
//! locks, backing-file choice and bitmap I/O are uml_proto's COW image API; this module
//! holds the kernel's policy and log texts.
//!
//! Writes to a COW put the data in place and make it durable before the bitmap bit
//! that exposes it is written, so a crash can never show a sector whose data is not
//! on disk.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use uml_proto::cow::{
    self, lock_whole_file, read_header, write_new_cow, BackingChoice, BackingError, CowFile,
    NewCow, NewCowError, SectorBitmap,
};

use crate::cmdline::UbdSpec;

/// The sector size the guest sees.
pub const SECTOR: u64 = 512;

/// An opened ubd device.
#[derive(Debug)]
pub struct Ubd {
    medium: Medium,
    pub writable: bool,
    /// Bytes the guest sees.
    pub size: u64,
    sync: bool,
}

/// What a device's sectors are read from and written to.
#[derive(Debug)]
enum Medium {
    /// A plain image file.
    Plain(File),
    Cow(Cow),
}

/// The COW side of a device.
#[derive(Debug)]
pub struct Cow {
    /// The COW file: descriptor, header, geometry.
    pub image: CowFile,
    pub backing: File,
    pub backing_path: PathBuf,
    pub bitmap: SectorBitmap,
}

/// Why a device cannot be opened; the log lines the kernel would print.
#[derive(Debug)]
pub struct OpenError {
    /// Lines for the kernel log, most specific first.
    pub lines: Vec<String>,
    /// After a failed open the device keeps the header's backing path when known.
    pub header_backing: Option<PathBuf>,
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.lines.join("; "))
    }
}

impl std::error::Error for OpenError {}

fn fail(lines: Vec<String>) -> OpenError {
    OpenError {
        lines,
        header_backing: None,
    }
}

/// What opening printed on the way (creation, backing switch, no-lock notes).
pub type Notes = Vec<String>;

fn show(p: &Path) -> String {
    p.display().to_string()
}

/// Opens the file read-write unless `r`, falling back to read-only on EROFS/EACCES.
fn open_image(spec: &UbdSpec, create: bool) -> io::Result<(File, bool)> {
    if !spec.flags.read_only {
        let mut o = OpenOptions::new();
        o.read(true).write(true).mode(0o644);
        if create {
            o.create_new(true);
        }
        if spec.flags.sync {
            o.custom_flags(libc::O_SYNC);
        }
        match o.open(&spec.file) {
            Ok(f) => return Ok((f, true)),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EROFS) | Some(libc::EACCES)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok((File::open(&spec.file)?, false))
}

/// The log line for a backing file named on the command line that is not the header's.
fn mismatch(asked: &Path, header: &Path, cow_name: &str) -> String {
    format!(
        "Backing file mismatch - \"{}\" requested, \"{}\" specified in COW header of \"{cow_name}\"",
        show(asked),
        show(header)
    )
}

fn lock(
    spec: &UbdSpec,
    file: &File,
    path: &Path,
    write: bool,
    notes: &mut Notes,
) -> Result<(), OpenError> {
    if spec.flags.shared {
        notes.push(format!("Not locking \"{}\" on the host", show(path)));
        return Ok(());
    }
    lock_whole_file(file, write).map_err(|e| {
        let first = match &e {
            cow::LockError::Held { pid } => {
                format!("F_SETLK failed, file already locked by pid {pid}")
            }
            cow::LockError::Io(io) => format!("F_SETLK failed: {io}"),
        };
        fail(vec![
            first,
            format!("Failed to lock '{}', err = {}", show(path), libc::EAGAIN),
        ])
    })
}

impl Ubd {
    /// Opens the device a switch describes; `notes` are informational log lines.
    pub fn open(spec: &UbdSpec) -> Result<(Ubd, Notes), OpenError> {
        let mut notes = Notes::new();
        let missing = !spec.file.exists();
        if missing && spec.backing.is_some() {
            return Ubd::create_cow(spec, notes);
        }
        let (file, writable) = open_image(spec, false).map_err(|e| {
            fail(vec![format!(
                "Failed to open '{}', errno = {}",
                show(&spec.file),
                e.raw_os_error().unwrap_or(0)
            )])
        })?;
        lock(spec, &file, &spec.file, writable, &mut notes)?;
        if spec.flags.no_cow {
            return Ok((Ubd::plain(file, writable, spec.flags.sync)?, notes));
        }
        let header = read_header(&file)
            .map_err(|e| fail(vec![format!("Failed to read '{}': {e}", show(&spec.file))]))?;
        match (header, &spec.backing) {
            (Err(_), None) => Ok((Ubd::plain(file, writable, spec.flags.sync)?, notes)),
            (Err(_), Some(_)) => Err(fail(vec![format!(
                "Failed to read COW header from COW file \"{}\", errno = {}",
                show(&spec.file),
                libc::EINVAL
            )])),
            (Ok(header), _) => Ubd::open_cow(spec, file, writable, header, notes),
        }
    }

    fn plain(file: File, writable: bool, sync: bool) -> Result<Ubd, OpenError> {
        let size = file.metadata().map(|m| m.len()).map_err(|e| {
            fail(vec![format!(
                "Couldn't determine size of device's file: {e}"
            )])
        })?;
        Ok(Ubd {
            medium: Medium::Plain(file),
            writable,
            size,
            sync,
        })
    }

    fn create_cow(spec: &UbdSpec, mut notes: Notes) -> Result<(Ubd, Notes), OpenError> {
        let backing_arg = spec
            .backing
            .as_deref()
            .expect("create_cow needs a backing file");
        let cow_name = show(&spec.file);
        let new = NewCow::over(backing_arg).map_err(|e| {
            fail(vec![match e {
                NewCowError::Io {
                    op: "make absolute",
                    source,
                    ..
                } => format!("Couldn't make \"{}\" absolute: {source}", show(backing_arg)),
                NewCowError::Io {
                    op: "stat", source, ..
                } => format!(
                    "Couldn't stat backing file \"{}\": {source}",
                    show(backing_arg)
                ),
                NewCowError::Io { source, .. } => format!(
                    "Failed to open backing file \"{}\" of \"{cow_name}\": {source}",
                    show(backing_arg)
                ),
                NewCowError::PathTooLong(_) => {
                    format!("Backing file name too long for the COW header of \"{cow_name}\"")
                }
            }])
        })?;
        notes.push(format!(
            "Creating \"{cow_name}\" as COW file for \"{}\"",
            show(backing_arg)
        ));
        let (file, writable) = open_image(spec, true).map_err(|e| {
            fail(vec![format!(
                "Failed to create COW file \"{cow_name}\": {e}"
            )])
        })?;
        if !writable {
            return Err(fail(vec![format!(
                "Can't create COW file \"{cow_name}\" read-only"
            )]));
        }
        lock(spec, &file, &spec.file, true, &mut notes)?;
        // Not synced here: until the guest writes, the COW holds nothing the backing
        // file lacks, and the first write's data sync (before its bitmap bit) makes
        // the header durable with it. One fsync less at boot.
        if let Err(e) = write_new_cow(&file, &new.header) {
            let _ = std::fs::remove_file(&spec.file);
            return Err(fail(vec![format!(
                "Failed to write COW header of \"{cow_name}\": {e}"
            )]));
        }
        lock(spec, &new.backing, backing_arg, false, &mut notes)?;
        let image = CowFile::from_open(&spec.file, file, new.header)
            .map_err(|e| fail(vec![e.to_string()]))?;
        let ubd = Ubd::with_cow(
            image,
            writable,
            spec.flags.sync,
            new.backing,
            new.backing_path,
        )?;
        Ok((ubd, notes))
    }

    fn open_cow(
        spec: &UbdSpec,
        file: File,
        writable: bool,
        header: cow::CowHeader,
        mut notes: Notes,
    ) -> Result<(Ubd, Notes), OpenError> {
        let cow_name = show(&spec.file);
        let mut image =
            CowFile::from_open(&spec.file, file, header).map_err(|e| fail(vec![e.to_string()]))?;
        let header_path = image.header.backing_path();
        let mut chosen = header_path.clone();
        match image.find_backing(spec.backing.as_deref()) {
            BackingChoice::Header(_) => {}
            BackingChoice::Mismatch { asked, header } => {
                notes.push(mismatch(&asked, &header, &cow_name))
            }
            BackingChoice::Moved { asked, header } => {
                notes.push(mismatch(&asked, &header, &cow_name));
                notes.push(format!("Switching backing file to '{}'", show(&asked)));
                // Read-only: the new path is used for this boot only.
                image.switch_backing(&asked, writable).map_err(|e| {
                    fail(vec![match e {
                        NewCowError::PathTooLong(_) => format!(
                            "Backing file name too long for the COW header of \"{cow_name}\""
                        ),
                        NewCowError::Io {
                            op: "make absolute",
                            source,
                            ..
                        } => format!("Couldn't make \"{}\" absolute: {source}", show(&asked)),
                        NewCowError::Io { source, .. } => {
                            format!("Failed to rewrite COW header of \"{cow_name}\": {source}")
                        }
                    }])
                })?;
                chosen = image.header.backing_path();
            }
        }
        let with_header = |lines: Vec<String>| OpenError {
            lines,
            header_backing: Some(header_path.clone()),
        };
        let backing = match image.open_backing(&chosen) {
            Ok((f, _)) => f,
            Err(BackingError::Io {
                op: "open", source, ..
            }) => {
                return Err(with_header(vec![
                    format!(
                        "Failed to open backing file \"{}\": {source}",
                        show(&chosen)
                    ),
                    format!(
                        "Failed to open '{cow_name}', errno = {}",
                        source.raw_os_error().unwrap_or(0)
                    ),
                ]))
            }
            Err(BackingError::Io { source, .. }) => {
                return Err(with_header(vec![format!(
                    "Couldn't stat \"{}\": {source}",
                    show(&chosen)
                )]))
            }
            Err(BackingError::Mismatch { source, .. }) => {
                return Err(with_header(vec![
                    source.to_string(),
                    format!("Failed to open '{cow_name}', errno = {}", libc::EINVAL),
                ]))
            }
        };
        lock(spec, &backing, &chosen, false, &mut notes).map_err(|e| with_header(e.lines))?;
        let ubd = Ubd::with_cow(image, writable, spec.flags.sync, backing, chosen)?;
        Ok((ubd, notes))
    }

    fn with_cow(
        image: CowFile,
        writable: bool,
        sync: bool,
        backing: File,
        backing_path: PathBuf,
    ) -> Result<Ubd, OpenError> {
        let size = image.header.size;
        let bitmap = image
            .read_bitmap_of(size.div_ceil(SECTOR), image.geometry.bitmap_len)
            .map_err(|e| fail(vec![format!("Failed to read COW bitmap: {e}")]))?;
        Ok(Ubd {
            medium: Medium::Cow(Cow {
                image,
                backing,
                backing_path,
                bitmap,
            }),
            writable,
            size,
            sync,
        })
    }

    pub fn sectors(&self) -> u64 {
        self.size.div_ceil(SECTOR)
    }

    /// The file the guest's writes go to: the image, or the COW file.
    fn file(&self) -> &File {
        match &self.medium {
            Medium::Cow(c) => &c.image.file,
            Medium::Plain(f) => f,
        }
    }

    /// The COW side of a COW device.
    pub fn cow(&self) -> Option<&Cow> {
        match &self.medium {
            Medium::Cow(c) => Some(c),
            Medium::Plain(_) => None,
        }
    }

    /// Reads `count` sectors from `first`: one read per run of sectors that come from
    /// the same file (the image, or the COW file or its backing file).
    pub fn read(&self, first: u64, count: u64) -> io::Result<Vec<u8>> {
        let mut out = vec![0u8; (count * SECTOR) as usize];
        self.read_into(first, &mut out)?;
        Ok(out)
    }

    /// Fills `out` (whole sectors) from sector `first`, as [`Ubd::read`].
    pub fn read_into(&self, first: u64, out: &mut [u8]) -> io::Result<()> {
        let count = out.len() as u64 / SECTOR;
        self.check_range(first, count)?;
        let Some(c) = self.cow() else {
            return read_fully_at(self.file(), out, first * SECTOR);
        };
        let mut i = 0;
        while i < count {
            let in_cow = c.bitmap.is_set(first + i);
            let mut j = i + 1;
            while j < count && c.bitmap.is_set(first + j) == in_cow {
                j += 1;
            }
            let buf = &mut out[(i * SECTOR) as usize..(j * SECTOR) as usize];
            let sector = first + i;
            if in_cow {
                read_fully_at(
                    &c.image.file,
                    buf,
                    c.image.geometry.data_offset + sector * SECTOR,
                )?;
            } else {
                read_fully_at(&c.backing, buf, sector * SECTOR)?;
            }
            i = j;
        }
        Ok(())
    }

    /// Writes whole sectors from `first`; the backing file is never written.
    pub fn write(&mut self, first: u64, data: &[u8]) -> io::Result<()> {
        if !self.writable {
            return Err(io::Error::from_raw_os_error(libc::EROFS));
        }
        let count = (data.len() as u64).div_ceil(SECTOR);
        self.check_range(first, count)?;
        let cow = match &mut self.medium {
            Medium::Cow(cow) => cow,
            Medium::Plain(f) => {
                f.write_all_at(data, first * SECTOR)?;
                return self.flush_if_sync();
            }
        };
        let file = &cow.image.file;
        file.write_all_at(data, cow.image.geometry.data_offset + first * SECTOR)?;
        let newly: Vec<u64> = (first..first + count)
            .filter(|&s| !cow.bitmap.is_set(s))
            .collect();
        if !newly.is_empty() {
            // Data first, durable, then the bits that make it visible.
            file.sync_data()?;
            for &s in &newly {
                cow.bitmap.set(s);
            }
            cow.image
                .write_bitmap_range(&cow.bitmap, first, first + count)
                .map_err(io::Error::other)?;
        }
        self.flush_if_sync()
    }

    fn flush_if_sync(&self) -> io::Result<()> {
        if self.sync {
            self.file().sync_data()?;
        }
        Ok(())
    }

    /// Makes everything written so far durable.
    pub fn flush(&self) -> io::Result<()> {
        if self.writable {
            self.file().sync_data()?;
        }
        Ok(())
    }

    fn check_range(&self, first: u64, count: u64) -> io::Result<()> {
        if first
            .checked_add(count)
            .is_none_or(|end| end > self.sectors())
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "sectors {first}..{} past the end ({} sectors)",
                    first.saturating_add(count),
                    self.sectors()
                ),
            ));
        }
        Ok(())
    }
}

fn read_fully_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        let n = file.read_at(&mut buf[done..], offset + done as u64)?;
        if n == 0 {
            buf[done..].fill(0); // past the end of a short file: zeros
            break;
        }
        done += n;
    }
    Ok(())
}
