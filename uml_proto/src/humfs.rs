//! humfs host layout: the `superblock` file and the one-line metadata files under
//! `file_metadata/` and `dir_metadata/` (version 2) or `metadata/` (version 1) that
//! record what a humfs tree's files really are (mode, owner, device) while the data
//! files themselves belong to the user running UML.
//!
//! Text formats, each with `parse(&[u8]) -> Result` and `emit` into a buffer.

use std::fmt;

/// Why a superblock or metadata line was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HumfsError {
    /// A line that is not `key value`, or a key we do not know.
    BadLine(String),
    /// A number field that is not a decimal number.
    BadNumber {
        field: &'static str,
        text: String,
    },
    /// A required superblock key is absent.
    Missing(&'static str),
    /// `used` is greater than `total`.
    UsedOverTotal {
        used: u64,
        total: u64,
    },
    UnsupportedVersion(u64),
    /// A metadata format other than `shadow_fs`.
    UnsupportedFormat(String),
    /// A metadata line with too few fields, or an unknown file type.
    BadMetadata(String),
}

impl fmt::Display for HumfsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HumfsError::BadLine(l) => write!(f, "unrecognized line '{l}'"),
            HumfsError::BadNumber { field, text } => write!(f, "bad {field} '{text}'"),
            HumfsError::Missing(k) => write!(f, "'{k}' is not defined"),
            HumfsError::UsedOverTotal { used, total } => {
                write!(f, "used ({used}) is greater than total ({total})")
            }
            HumfsError::UnsupportedVersion(v) => write!(f, "unsupported version {v}"),
            HumfsError::UnsupportedFormat(m) => {
                write!(f, "unsupported metadata format '{m}' (only shadow_fs)")
            }
            HumfsError::BadMetadata(l) => write!(f, "bad metadata line '{l}'"),
        }
    }
}

impl std::error::Error for HumfsError {}

/// The only metadata format there is.
pub const SHADOW_FS: &str = "shadow_fs";

/// The `superblock` file at the top of a humfs tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Superblock {
    /// 1 (metadata/ tree) or 2 (file_metadata/ and dir_metadata/).
    pub version: u64,
    /// Always `shadow_fs`.
    pub metadata: String,
    /// Bytes in use.
    pub used: u64,
    /// File-system size in bytes.
    pub total: u64,
}

impl Superblock {
    /// A version 2 superblock as humfsify writes it.
    pub fn new_v2(used: u64, total: u64) -> Superblock {
        Superblock {
            version: 2,
            metadata: SHADOW_FS.to_string(),
            used,
            total,
        }
    }

    /// Parses the `key value` lines; version 1 may omit `metadata`.
    pub fn parse(bytes: &[u8]) -> Result<Superblock, HumfsError> {
        let text = String::from_utf8_lossy(bytes);
        let (mut version, mut metadata, mut used, mut total) = (None, None, None, None);
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let mut words = line.split_whitespace();
            let (Some(key), Some(value), None) = (words.next(), words.next(), words.next()) else {
                return Err(HumfsError::BadLine(line.to_string()));
            };
            match key {
                "version" => version = Some(number("version", value)?),
                "used" => used = Some(number("used", value)?),
                "total" => total = Some(number("total", value)?),
                "metadata" => metadata = Some(value.to_string()),
                _ => return Err(HumfsError::BadLine(line.to_string())),
            }
        }
        let version = version.ok_or(HumfsError::Missing("version"))?;
        if version == 1 && metadata.is_none() {
            metadata = Some(SHADOW_FS.to_string());
        }
        let sb = Superblock {
            version,
            metadata: metadata.ok_or(HumfsError::Missing("metadata"))?,
            used: used.ok_or(HumfsError::Missing("used"))?,
            total: total.ok_or(HumfsError::Missing("total"))?,
        };
        sb.check()?;
        Ok(sb)
    }

    fn check(&self) -> Result<(), HumfsError> {
        if self.used > self.total {
            return Err(HumfsError::UsedOverTotal {
                used: self.used,
                total: self.total,
            });
        }
        if !(1..=2).contains(&self.version) {
            return Err(HumfsError::UnsupportedVersion(self.version));
        }
        if self.metadata != SHADOW_FS {
            return Err(HumfsError::UnsupportedFormat(self.metadata.clone()));
        }
        Ok(())
    }

    /// Appends the four lines humfsify writes.
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(
            format!(
                "version {}\nmetadata {}\nused {}\ntotal {}\n",
                self.version, self.metadata, self.used, self.total
            )
            .as_bytes(),
        );
    }
}

fn number(field: &'static str, text: &str) -> Result<u64, HumfsError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HumfsError::BadNumber {
            field,
            text: text.to_string(),
        });
    }
    text.parse().map_err(|_| HumfsError::BadNumber {
        field,
        text: text.to_string(),
    })
}

fn number32(field: &'static str, text: &str) -> Result<u32, HumfsError> {
    let n = number(field, text)?;
    u32::try_from(n).map_err(|_| HumfsError::BadNumber {
        field,
        text: text.to_string(),
    })
}

/// What kind of node a metadata line describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// Anything recreated as it is in data/ (regular file, directory, symlink, fifo).
    Plain,
    Char {
        major: u32,
        minor: u32,
    },
    Block {
        major: u32,
        minor: u32,
    },
    /// A unix socket (`s`): readers accept it, humfsify never writes it.
    Socket,
}

/// One version 2 metadata line: `MODE UID GID[ c|b MAJOR MINOR]`, MODE in decimal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metadata {
    /// Permission bits (the C and Perl tools keep only 0777; we keep 07777).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub kind: NodeKind,
}

impl Metadata {
    /// Parses the first line of a version 2 metadata file.
    pub fn parse(bytes: &[u8]) -> Result<Metadata, HumfsError> {
        let line = first_line(bytes);
        let fields: Vec<&str> = line.split_whitespace().collect();
        let bad = || HumfsError::BadMetadata(line.clone());
        let [mode, uid, gid, rest @ ..] = &fields[..] else {
            return Err(bad());
        };
        let mode = number32("mode", mode)?;
        if mode > 0o7777 {
            return Err(bad());
        }
        Ok(Metadata {
            mode,
            uid: number32("uid", uid)?,
            gid: number32("gid", gid)?,
            kind: parse_kind(rest).ok_or_else(bad)??,
        })
    }

    /// Appends the line (with its newline).
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(format!("{} {} {}", self.mode, self.uid, self.gid).as_bytes());
        emit_kind(self.kind, out);
        out.push(b'\n');
    }
}

/// One version 1 metadata line: `UID GID FIELD[ TYPE MAJOR MINOR]` (the third field is
/// not used; version 1 recorded no mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetadataV1 {
    pub uid: u32,
    pub gid: u32,
    pub kind: NodeKind,
}

impl MetadataV1 {
    pub fn parse(bytes: &[u8]) -> Result<MetadataV1, HumfsError> {
        let line = first_line(bytes);
        let fields: Vec<&str> = line.split_whitespace().collect();
        let bad = || HumfsError::BadMetadata(line.clone());
        let [uid, gid, rest @ ..] = &fields[..] else {
            return Err(bad());
        };
        let rest = rest.get(1..).unwrap_or(&[]);
        Ok(MetadataV1 {
            uid: number32("uid", uid)?,
            gid: number32("gid", gid)?,
            kind: parse_kind(rest).ok_or_else(bad)??,
        })
    }

    /// Appends the line, with 0 in the unused third field.
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(format!("{} {} 0", self.uid, self.gid).as_bytes());
        emit_kind(self.kind, out);
        out.push(b'\n');
    }
}

fn first_line(bytes: &[u8]) -> String {
    let end = bytes
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// The optional type fields; None when their shape is wrong.
fn parse_kind(rest: &[&str]) -> Option<Result<NodeKind, HumfsError>> {
    let device = |major: &str, minor: &str, make: fn(u32, u32) -> NodeKind| {
        Ok(make(number32("major", major)?, number32("minor", minor)?))
    };
    match rest {
        [] => Some(Ok(NodeKind::Plain)),
        ["s"] => Some(Ok(NodeKind::Socket)),
        ["c", major, minor] => Some(device(major, minor, |major, minor| NodeKind::Char {
            major,
            minor,
        })),
        ["b", major, minor] => Some(device(major, minor, |major, minor| NodeKind::Block {
            major,
            minor,
        })),
        _ => None,
    }
}

fn emit_kind(kind: NodeKind, out: &mut Vec<u8>) {
    let text = match kind {
        NodeKind::Plain => return,
        NodeKind::Socket => " s".to_string(),
        NodeKind::Char { major, minor } => format!(" c {major} {minor}"),
        NodeKind::Block { major, minor } => format!(" b {major} {minor}"),
    };
    out.extend_from_slice(text.as_bytes());
}

/// The layout of a humfs tree: where data and metadata live, by superblock version.
pub mod layout {
    use std::path::{Path, PathBuf};

    /// The files as the guest sees them (owned by the user running UML).
    pub const DATA: &str = "data";
    /// The superblock file beside data/.
    pub const SUPERBLOCK: &str = "superblock";
    /// Version 2: one metadata file per non-directory, at the same relative path.
    pub const FILE_METADATA: &str = "file_metadata";
    /// Version 2: `dir_metadata/REL/metadata` per directory.
    pub const DIR_METADATA: &str = "dir_metadata";
    /// The name of a directory's own metadata file (both versions).
    pub const DIR_METADATA_FILE: &str = "metadata";
    /// Version 1: one tree holding files' and directories' metadata.
    pub const V1_METADATA: &str = "metadata";

    /// The metadata trees of a version, each mirroring data/'s directories.
    pub fn metadata_roots(version: u64) -> &'static [&'static str] {
        if version == 1 {
            &[V1_METADATA]
        } else {
            &[FILE_METADATA, DIR_METADATA]
        }
    }

    /// Where the metadata of data/`rel` lives, relative to the tree's top.
    pub fn metadata_path(version: u64, rel: &Path, is_dir: bool) -> PathBuf {
        let root = if version == 1 {
            V1_METADATA
        } else if is_dir {
            DIR_METADATA
        } else {
            FILE_METADATA
        };
        let path = Path::new(root).join(rel);
        if is_dir {
            path.join(DIR_METADATA_FILE)
        } else {
            path
        }
    }

    /// Whether a node called `name` can be recorded: a directory's own metadata file
    /// is called `metadata`, so no directory may be (version 2), and in version 1,
    /// where files and directory metadata share one tree, no node at all.
    pub fn representable(version: u64, name: &[u8], is_dir: bool) -> bool {
        name != DIR_METADATA_FILE.as_bytes() || (version != 1 && !is_dir)
    }
}

/// One node's metadata in either version's line format (version 1 has no mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// Permission bits; None in version 1.
    pub mode: Option<u32>,
    pub uid: u32,
    pub gid: u32,
    pub kind: NodeKind,
}

impl Record {
    /// Parses a metadata file of superblock `version`.
    pub fn parse(version: u64, bytes: &[u8]) -> Result<Record, HumfsError> {
        if version == 1 {
            let m = MetadataV1::parse(bytes)?;
            return Ok(Record {
                mode: None,
                uid: m.uid,
                gid: m.gid,
                kind: m.kind,
            });
        }
        let m = Metadata::parse(bytes)?;
        Ok(Record {
            mode: Some(m.mode),
            uid: m.uid,
            gid: m.gid,
            kind: m.kind,
        })
    }

    /// Appends the line for superblock `version` (a missing mode is written as 0).
    pub fn emit(&self, version: u64, out: &mut Vec<u8>) {
        if version == 1 {
            MetadataV1 {
                uid: self.uid,
                gid: self.gid,
                kind: self.kind,
            }
            .emit(out)
        } else {
            Metadata {
                mode: self.mode.unwrap_or(0),
                uid: self.uid,
                gid: self.gid,
                kind: self.kind,
            }
            .emit(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written by the Perl humfsify for a tree of 8 KiB in a 1 MiB file system.
    const PERL_SUPERBLOCK: &[u8] = b"version 2\nmetadata shadow_fs\nused 8192\ntotal 1048576\n";

    #[test]
    fn superblock_round_trips_the_perl_tools_bytes() {
        let sb = Superblock::parse(PERL_SUPERBLOCK).unwrap();
        assert_eq!(sb, Superblock::new_v2(8192, 1048576));
        let mut out = Vec::new();
        sb.emit(&mut out);
        assert_eq!(out, PERL_SUPERBLOCK);
    }

    #[test]
    fn version_1_defaults_its_metadata_format() {
        let sb = Superblock::parse(b"version 1\nused 0\ntotal 10\n").unwrap();
        assert_eq!((sb.version, sb.metadata.as_str()), (1, SHADOW_FS));
    }

    #[test]
    fn bad_superblocks_say_what_is_wrong() {
        let cases: [(&[u8], HumfsError); 6] = [
            (
                b"metadata shadow_fs\nused 1\ntotal 2\n",
                HumfsError::Missing("version"),
            ),
            (
                b"version 2\nused 1\ntotal 2\n",
                HumfsError::Missing("metadata"),
            ),
            (
                b"version 2\nmetadata shadow_fs\nused 3\ntotal 2\n",
                HumfsError::UsedOverTotal { used: 3, total: 2 },
            ),
            (
                b"version 3\nmetadata shadow_fs\nused 1\ntotal 2\n",
                HumfsError::UnsupportedVersion(3),
            ),
            (
                b"version 2\nmetadata x\nused 1\ntotal 2\n",
                HumfsError::UnsupportedFormat("x".into()),
            ),
            (
                b"version 2\nmetadata shadow_fs\nused 1x\ntotal 2\n",
                HumfsError::BadNumber {
                    field: "used",
                    text: "1x".into(),
                },
            ),
        ];
        for (bytes, want) in cases {
            assert_eq!(Superblock::parse(bytes), Err(want));
        }
    }

    #[test]
    fn metadata_lines_round_trip_including_perl_samples() {
        // Lines the Perl humfsify wrote: a 0644 file, a symlink, /dev/null.
        for line in [
            &b"420 0 0\n"[..],
            b"511 1000 1000\n",
            b"420 0 0 c 1 3\n",
            b"432 0 6 b 8 1\n",
        ] {
            let m = Metadata::parse(line).unwrap();
            let mut out = Vec::new();
            m.emit(&mut out);
            assert_eq!(out, line);
        }
        let m = Metadata::parse(b"3565 7 8 c 4000 70000\n").unwrap();
        assert_eq!(
            m,
            Metadata {
                mode: 0o6755,
                uid: 7,
                gid: 8,
                kind: NodeKind::Char {
                    major: 4000,
                    minor: 70000
                }
            }
        );
    }

    #[test]
    fn bad_metadata_lines_are_rejected() {
        for line in [
            &b""[..],
            b"420 0",
            b"420 0 0 x",
            b"420 0 0 c 1",
            b"abc 0 0",
            b"70000 0 0",
        ] {
            assert!(
                Metadata::parse(line).is_err(),
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
        assert!(matches!(
            Metadata::parse(b"420 0 0 c 1 y"),
            Err(HumfsError::BadNumber { field: "minor", .. })
        ));
    }

    #[test]
    fn version_1_lines_skip_the_third_field() {
        let m = MetadataV1::parse(b"5 6 99 b 3 4\n").unwrap();
        assert_eq!(
            m,
            MetadataV1 {
                uid: 5,
                gid: 6,
                kind: NodeKind::Block { major: 3, minor: 4 }
            }
        );
        let mut out = Vec::new();
        MetadataV1::parse(b"5 6 0\n").unwrap().emit(&mut out);
        assert_eq!(out, b"5 6 0\n");
    }

    #[test]
    fn layout_places_metadata_per_version() {
        use layout::*;
        use std::path::Path;
        let rel = Path::new("a/b");
        assert_eq!(metadata_path(2, rel, false), Path::new("file_metadata/a/b"));
        assert_eq!(
            metadata_path(2, rel, true),
            Path::new("dir_metadata/a/b/metadata")
        );
        assert_eq!(
            metadata_path(2, Path::new(""), true),
            Path::new("dir_metadata/metadata")
        );
        assert_eq!(metadata_path(1, rel, false), Path::new("metadata/a/b"));
        assert_eq!(
            metadata_path(1, rel, true),
            Path::new("metadata/a/b/metadata")
        );
        assert_eq!(metadata_roots(2), &["file_metadata", "dir_metadata"]);
        assert!(representable(2, b"metadata", false));
        assert!(!representable(2, b"metadata", true));
        assert!(!representable(1, b"metadata", false));
        assert!(representable(1, b"other", true));
    }

    #[test]
    fn records_round_trip_in_both_versions() {
        let r = Record::parse(2, b"1517 5 6 b 8 1\n").unwrap();
        assert_eq!(
            r,
            Record {
                mode: Some(0o2755),
                uid: 5,
                gid: 6,
                kind: NodeKind::Block { major: 8, minor: 1 }
            }
        );
        let mut out = Vec::new();
        r.emit(2, &mut out);
        assert_eq!(out, b"1517 5 6 b 8 1\n");
        let r = Record::parse(1, b"7 8 0 c 1 3\n").unwrap();
        assert_eq!((r.mode, r.uid, r.gid), (None, 7, 8));
        out.clear();
        r.emit(1, &mut out);
        assert_eq!(out, b"7 8 0 c 1 3\n");
        assert!(Record::parse(2, b"7 8\n").is_err());
    }
}
