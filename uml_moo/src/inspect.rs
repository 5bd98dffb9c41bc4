//! `uml_moo --info`: what a COW file says, whether its backing file still matches, whether
//! a UML holds it or an interrupted `-d` left work pending, and how much of the disk it
//! holds, as text for people or JSON for scripts.

use std::path::{Path, PathBuf};

use serde_json::json;
use uml_proto::cow::{lock_whole_file, BackingInfo, CowFile, CowGeometry, CowHeader, LockError};

use crate::error::MooError;
use crate::journal::{self, Found};
use crate::merge::open_backing;

/// The facts `--info` reports.
#[derive(Debug, Clone)]
pub struct CowInfo {
    pub path: PathBuf,
    pub header: CowHeader,
    pub geometry: CowGeometry,
    pub file_len: u64,
    pub dirty_sectors: u64,
    /// The backing file checked (the header's, or the one given with `-b`).
    pub backing: PathBuf,
    /// None when it matches; otherwise why not.
    pub backing_problem: Option<String>,
    /// The pid holding a lock on the COW file (a running UML), if any.
    pub locked_by: Option<i32>,
    /// The journal of an interrupted `uml_moo -d`, if one is waiting.
    pub pending_journal: Option<PathBuf>,
}

/// Reads a COW file and checks its backing file, changing nothing.
pub fn inspect(cow_path: &Path, backing: Option<&Path>) -> Result<CowInfo, MooError> {
    let cow = CowFile::open(cow_path)?;
    let bitmap = cow.read_bitmap()?;
    let locked_by = match lock_whole_file(&cow.file, false) {
        Err(LockError::Held { pid }) => Some(pid),
        _ => None,
    };
    let jpath = journal::journal_path(&cow.path);
    let pending_journal = match journal::read(&jpath) {
        Ok(Found::Nothing) | Err(_) => None,
        Ok(_) => Some(jpath),
    };
    let explicit = backing.is_some();
    let backing = backing.map_or_else(|| cow.header.backing_path(), Path::to_owned);
    let backing_problem = match open_backing(&cow, &backing, explicit, false)
        .and_then(|f| BackingInfo::of_file(&f).map_err(MooError::io(&backing, "stat")))
    {
        Err(e) => Some(e.to_string()),
        Ok(info) => cow
            .header
            .check_backing(&info)
            .err()
            .map(|m| match &pending_journal {
                Some(j) => format!(
                    "{m}: half merged by an interrupted `uml_moo -d` (journal {}); \
                     run `uml_moo -d {}` again to finish it",
                    j.display(),
                    cow.path.display()
                ),
                None => m.to_string(),
            }),
    };
    Ok(CowInfo {
        path: cow.path.clone(),
        header: cow.header.clone(),
        geometry: cow.geometry,
        file_len: cow.len,
        dirty_sectors: bitmap.count_set(),
        backing,
        backing_problem,
        locked_by,
        pending_journal,
    })
}

impl CowInfo {
    fn dirty_percent(&self) -> f64 {
        let sectors = self.header.sectors();
        if sectors == 0 {
            0.0
        } else {
            self.dirty_sectors as f64 * 100.0 / sectors as f64
        }
    }

    /// The report for people, one fact a line.
    pub fn to_text(&self) -> String {
        let h = &self.header;
        let g = &self.geometry;
        let status = self.backing_problem.as_deref().unwrap_or("matches");
        let mut text = format!(
            "COW file:       {}\n\
             Version:        {}\n\
             Backing file:   {}\n\
             Backing size:   {} bytes\n\
             Backing mtime:  {} ({})\n\
             Backing check:  {status}\n\
             Sector size:    {}\n\
             Alignment:      {}\n\
             Bitmap:         {} bytes at offset {}\n\
             Data offset:    {}\n\
             File length:    {}\n\
             Sectors:        {}\n\
             Dirty sectors:  {} ({:.2}%)\n",
            self.path.display(),
            h.version.name(),
            self.backing.display(),
            h.size,
            h.mtime,
            crate::summary::utc_date(i64::from(h.mtime)),
            h.sectorsize,
            h.alignment,
            g.bitmap_len,
            g.bitmap_offset,
            g.data_offset,
            self.file_len,
            h.sectors(),
            self.dirty_sectors,
            self.dirty_percent(),
        );
        if let Some(pid) = self.locked_by {
            text.push_str(&format!(
                "In use:         locked by pid {pid} (a running UML?); merge after it stops\n"
            ));
        }
        if let Some(j) = &self.pending_journal {
            text.push_str(&format!(
                "Pending merge:  {} (an interrupted `uml_moo -d`); run `uml_moo -d {}` again\n",
                j.display(),
                self.path.display()
            ));
        }
        text
    }

    /// The report for scripts, one JSON object on one line.
    pub fn to_json(&self) -> String {
        let h = &self.header;
        let g = &self.geometry;
        json!({
            "cow": self.path.to_string_lossy(),
            "version": h.version.number(),
            "broken_64bit_layout": h.version == uml_proto::cow::CowVersion::V3Broken,
            "backing_file": self.backing.to_string_lossy(),
            "header_backing_file": String::from_utf8_lossy(&h.backing_file),
            "size": h.size,
            "mtime": h.mtime,
            "sectorsize": h.sectorsize,
            "alignment": h.alignment,
            "bitmap_offset": g.bitmap_offset,
            "bitmap_len": g.bitmap_len,
            "data_offset": g.data_offset,
            "file_len": self.file_len,
            "sectors": h.sectors(),
            "dirty_sectors": self.dirty_sectors,
            "backing_matches": self.backing_problem.is_none(),
            "backing_problem": self.backing_problem,
            "locked_by_pid": self.locked_by,
            "pending_journal": self.pending_journal.as_ref().map(|p| p.to_string_lossy()),
        })
        .to_string()
    }
}
