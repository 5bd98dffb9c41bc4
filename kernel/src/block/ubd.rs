//! One ubd device: a host image file, or a COW file over a read-only backing file,
//! opened the way linux.uml opens it (reference cow.md §4): write lock unless shared,
//! COW created when missing, backing path checked (and switched when a moved backing
//! file still matches), size and mtime validated, backing read-locked.
//!
//! Writes to a COW put the data in place and make it durable before the bitmap bit
//! that exposes it is written, so a crash can never show a sector whose data is not
//! on disk.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use uml_proto::cow::{
    self, absolute_backing_path, lock_whole_file, read_header, write_new_cow, BackingInfo,
    CowGeometry, CowHeader, SectorBitmap,
};

use crate::cmdline::UbdSpec;

/// The sector size the guest sees.
pub const SECTOR: u64 = 512;
/// The kernel rewrites the on-disk bitmap in pieces of this many bytes.
const BITMAP_CHUNK: u64 = 16;

/// An opened ubd device.
#[derive(Debug)]
pub struct Ubd {
    pub file: File,
    pub writable: bool,
    /// Bytes the guest sees.
    pub size: u64,
    pub cow: Option<Cow>,
    sync: bool,
}

/// The COW side of a device.
#[derive(Debug)]
pub struct Cow {
    pub backing: File,
    pub backing_path: PathBuf,
    pub header: CowHeader,
    pub geometry: CowGeometry,
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
            file,
            writable,
            size,
            cow: None,
            sync,
        })
    }

    fn create_cow(spec: &UbdSpec, mut notes: Notes) -> Result<(Ubd, Notes), OpenError> {
        let backing_arg = spec
            .backing
            .as_deref()
            .expect("create_cow needs a backing file");
        let cow_name = show(&spec.file);
        let backing = File::open(backing_arg).map_err(|e| {
            fail(vec![format!(
                "Failed to open backing file \"{}\" of \"{cow_name}\": {e}",
                show(backing_arg)
            )])
        })?;
        let info = BackingInfo::of_file(&backing).map_err(|e| {
            fail(vec![format!(
                "Couldn't stat backing file \"{}\": {e}",
                show(backing_arg)
            )])
        })?;
        let abs = absolute_backing_path(backing_arg).map_err(|e| {
            fail(vec![format!(
                "Couldn't make \"{}\" absolute: {e}",
                show(backing_arg)
            )])
        })?;
        let header = CowHeader::new_v3(
            abs.as_os_str().as_encoded_bytes().to_vec(),
            info.header_mtime(),
            info.size,
        );
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
        if let Err(e) = write_new_cow(&file, &header).and_then(|_| file.sync_all()) {
            let _ = std::fs::remove_file(&spec.file);
            return Err(fail(vec![format!(
                "Failed to write COW header of \"{cow_name}\": {e}"
            )]));
        }
        lock(spec, &backing, backing_arg, false, &mut notes)?;
        let ubd = Ubd::with_cow(file, writable, spec.flags.sync, backing, abs, header)?;
        Ok((ubd, notes))
    }

    fn open_cow(
        spec: &UbdSpec,
        file: File,
        writable: bool,
        mut header: CowHeader,
        mut notes: Notes,
    ) -> Result<(Ubd, Notes), OpenError> {
        let cow_name = show(&spec.file);
        let header_path = header.backing_path();
        let mut chosen = header_path.clone();
        if let Some(asked) = &spec.backing {
            if !same_file(asked, &header_path) {
                notes.push(format!(
                    "Backing file mismatch - \"{}\" requested, \"{}\" specified in COW header of \"{cow_name}\"",
                    show(asked),
                    show(&header_path)
                ));
                if backing_matches(asked, &header) {
                    notes.push(format!("Switching backing file to '{}'", show(asked)));
                    header = switch_backing(&file, writable, header, asked, &cow_name)?;
                    chosen = header.backing_path();
                }
            }
        }
        let with_header = |lines: Vec<String>| OpenError {
            lines,
            header_backing: Some(header_path.clone()),
        };
        let backing = File::open(&chosen).map_err(|e| {
            with_header(vec![
                format!("Failed to open backing file \"{}\": {e}", show(&chosen)),
                format!(
                    "Failed to open '{cow_name}', errno = {}",
                    e.raw_os_error().unwrap_or(0)
                ),
            ])
        })?;
        let info = BackingInfo::of_file(&backing)
            .map_err(|e| with_header(vec![format!("Couldn't stat \"{}\": {e}", show(&chosen))]))?;
        if let Err(m) = header.check_backing(&info) {
            return Err(with_header(vec![
                m.to_string(),
                format!("Failed to open '{cow_name}', errno = {}", libc::EINVAL),
            ]));
        }
        lock(spec, &backing, &chosen, false, &mut notes).map_err(|e| with_header(e.lines))?;
        let ubd = Ubd::with_cow(file, writable, spec.flags.sync, backing, chosen, header)?;
        Ok((ubd, notes))
    }

    fn with_cow(
        file: File,
        writable: bool,
        sync: bool,
        backing: File,
        backing_path: PathBuf,
        header: CowHeader,
    ) -> Result<Ubd, OpenError> {
        let geometry = header.geometry();
        let mut bytes = vec![0u8; geometry.bitmap_len as usize];
        read_fully_at(&file, &mut bytes, geometry.bitmap_offset)
            .map_err(|e| fail(vec![format!("Failed to read COW bitmap: {e}")]))?;
        let sectors = header.size.div_ceil(SECTOR);
        let bitmap = SectorBitmap::from_bytes(bytes, sectors);
        Ok(Ubd {
            file,
            writable,
            size: header.size,
            cow: Some(Cow {
                backing,
                backing_path,
                header,
                geometry,
                bitmap,
            }),
            sync,
        })
    }

    pub fn sectors(&self) -> u64 {
        self.size.div_ceil(SECTOR)
    }

    /// Reads `count` sectors from `first`.
    pub fn read(&self, first: u64, count: u64) -> io::Result<Vec<u8>> {
        self.check_range(first, count)?;
        let mut out = vec![0u8; (count * SECTOR) as usize];
        for (i, buf) in out.chunks_mut(SECTOR as usize).enumerate() {
            let sector = first + i as u64;
            match &self.cow {
                Some(c) if c.bitmap.is_set(sector) => {
                    read_fully_at(&self.file, buf, c.geometry.data_offset + sector * SECTOR)?
                }
                Some(c) => read_fully_at(&c.backing, buf, sector * SECTOR)?,
                None => read_fully_at(&self.file, buf, sector * SECTOR)?,
            }
        }
        Ok(out)
    }

    /// Writes whole sectors from `first`; the backing file is never written.
    pub fn write(&mut self, first: u64, data: &[u8]) -> io::Result<()> {
        if !self.writable {
            return Err(io::Error::from_raw_os_error(libc::EROFS));
        }
        let count = (data.len() as u64).div_ceil(SECTOR);
        self.check_range(first, count)?;
        let Some(cow) = &mut self.cow else {
            self.file.write_all_at(data, first * SECTOR)?;
            return self.flush_if_sync();
        };
        self.file
            .write_all_at(data, cow.geometry.data_offset + first * SECTOR)?;
        let newly: Vec<u64> = (first..first + count)
            .filter(|&s| !cow.bitmap.is_set(s))
            .collect();
        if !newly.is_empty() {
            // Data first, durable, then the bits that make it visible.
            self.file.sync_data()?;
            for &s in &newly {
                cow.bitmap.set(s);
            }
            write_bitmap_range(&self.file, cow, first, first + count)?;
        }
        self.flush_if_sync()
    }

    fn flush_if_sync(&self) -> io::Result<()> {
        if self.sync {
            self.file.sync_data()?;
        }
        Ok(())
    }

    /// Makes everything written so far durable.
    pub fn flush(&self) -> io::Result<()> {
        if self.writable {
            self.file.sync_data()?;
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

/// Writes the on-disk bitmap bytes covering `start..end`, in the kernel's 16-byte pieces.
fn write_bitmap_range(file: &File, cow: &Cow, start: u64, end: u64) -> io::Result<()> {
    let len = cow.geometry.bitmap_len;
    let from = (start / 8) / BITMAP_CHUNK * BITMAP_CHUNK;
    let to = ((end - 1) / 8 / BITMAP_CHUNK + 1) * BITMAP_CHUNK;
    let to = to.min(len);
    let bytes = cow.bitmap.as_bytes();
    let to_mem = to.min(bytes.len() as u64);
    file.write_all_at(
        &bytes[from as usize..to_mem as usize],
        cow.geometry.bitmap_offset + from,
    )
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

/// Same string, or the same inode.
fn same_file(a: &Path, b: &Path) -> bool {
    if a == b {
        return true;
    }
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// The named file has the size and mtime the header records (checked by stat, so no
/// descriptor is opened and closed, which would drop this process's locks on it).
fn backing_matches(path: &Path, header: &CowHeader) -> bool {
    match std::fs::metadata(path) {
        Ok(m) => header
            .check_backing(&BackingInfo {
                size: m.len(),
                mtime: m.mtime(),
            })
            .is_ok(),
        Err(_) => false,
    }
}

/// Rewrites the header with the new backing path, in the file's own layout (so a V1/V2
/// file keeps its bitmap and data where they are, unlike linux.uml which writes V3).
fn switch_backing(
    file: &File,
    writable: bool,
    mut header: CowHeader,
    asked: &Path,
    cow_name: &str,
) -> Result<CowHeader, OpenError> {
    let abs = absolute_backing_path(asked).map_err(|e| {
        fail(vec![format!(
            "Couldn't make \"{}\" absolute: {e}",
            show(asked)
        )])
    })?;
    let bytes = abs.as_os_str().as_encoded_bytes().to_vec();
    if bytes.len() > CowHeader::max_path_len(header.version) {
        return Err(fail(vec![format!(
            "Backing file name too long for the COW header of \"{cow_name}\""
        )]));
    }
    header.backing_file = bytes;
    if !writable {
        return Ok(header); // read-only: use the new path for this boot only
    }
    file.write_all_at(&header.to_bytes(), 0)
        .and_then(|_| file.sync_data())
        .map_err(|e| {
            fail(vec![format!(
                "Failed to rewrite COW header of \"{cow_name}\": {e}"
            )])
        })?;
    Ok(header)
}
