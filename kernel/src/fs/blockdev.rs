//! Filesystems on the kernel's disks: a byte-addressed `BlockDevice` (what
//! `uml_proto::ext2` and the ext2 driver use) over a sector device such as a ubd disk
//! (whole 512-byte sectors; partial sectors are read, patched and written back). A disk
//! shared with the block layer goes in an `Rc<RefCell<_>>`.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;

use uml_proto::ext2::BlockDevice;

use crate::block::ubd::{Ubd, SECTOR};
use crate::block::Disks;

use super::cmds::Mounter;
use super::ext2::Ext2Fs;
use super::hostfs::{HostFs, HostfsSwitch};
use super::node::FileSystem;

/// A device of 512-byte sectors.
pub trait SectorDevice {
    fn sectors(&self) -> u64;
    fn read_sectors(&self, first: u64, count: u64) -> io::Result<Vec<u8>>;
    fn write_sectors(&mut self, first: u64, data: &[u8]) -> io::Result<()>;
    fn flush(&self) -> io::Result<()>;
}

impl SectorDevice for Ubd {
    fn sectors(&self) -> u64 {
        Ubd::sectors(self)
    }
    fn read_sectors(&self, first: u64, count: u64) -> io::Result<Vec<u8>> {
        self.read(first, count)
    }
    fn write_sectors(&mut self, first: u64, data: &[u8]) -> io::Result<()> {
        self.write(first, data)
    }
    fn flush(&self) -> io::Result<()> {
        Ubd::flush(self)
    }
}

impl<T: SectorDevice> SectorDevice for Rc<RefCell<T>> {
    fn sectors(&self) -> u64 {
        self.borrow().sectors()
    }
    fn read_sectors(&self, first: u64, count: u64) -> io::Result<Vec<u8>> {
        self.borrow().read_sectors(first, count)
    }
    fn write_sectors(&mut self, first: u64, data: &[u8]) -> io::Result<()> {
        self.borrow_mut().write_sectors(first, data)
    }
    fn flush(&self) -> io::Result<()> {
        self.borrow().flush()
    }
}

/// Bytes over sectors.
pub struct Sectors<T>(pub T);

impl<T: SectorDevice> BlockDevice for Sectors<T> {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        let first = offset / SECTOR;
        let end = (offset + buf.len() as u64).div_ceil(SECTOR);
        let data = self.0.read_sectors(first, end - first)?;
        let skip = (offset - first * SECTOR) as usize;
        buf.copy_from_slice(&data[skip..skip + buf.len()]);
        Ok(())
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let first = offset / SECTOR;
        let end = (offset + data.len() as u64).div_ceil(SECTOR);
        if offset.is_multiple_of(SECTOR) && (data.len() as u64).is_multiple_of(SECTOR) {
            return self.0.write_sectors(first, data);
        }
        let mut whole = self.0.read_sectors(first, end - first)?;
        let skip = (offset - first * SECTOR) as usize;
        whole[skip..skip + data.len()].copy_from_slice(data);
        self.0.write_sectors(first, &whole)
    }

    fn size(&mut self) -> io::Result<u64> {
        Ok(self.0.sectors() * SECTOR)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// `mount -t ext2|ext3|ext4 /dev/ubdX DIR`: ext2 on an open ubd disk, shared with the
/// block layer; `mount none DIR -t hostfs [-o HOSTDIR]` under the `hostfs=` switch.
pub struct UbdMounter<'a> {
    pub disks: &'a Disks,
    /// The block cache each mounted filesystem may keep.
    pub cache_bytes: usize,
    pub hostfs: &'a HostfsSwitch,
}

impl<'a> UbdMounter<'a> {
    /// The kernel's mounter: its disks, a quarter of `mem=` as each mount's block cache,
    /// its `hostfs=` switch.
    pub fn new(disks: &'a Disks, config: &'a crate::cmdline::Config) -> UbdMounter<'a> {
        UbdMounter {
            disks,
            cache_bytes: usize::try_from(config.mem / 4).unwrap_or(usize::MAX),
            hostfs: &config.hostfs,
        }
    }
}

impl Mounter for UbdMounter<'_> {
    fn make(
        &mut self,
        fs_type: &str,
        source: &str,
        read_only: bool,
        options: &str,
    ) -> Result<Box<dyn FileSystem>, String> {
        if fs_type == "hostfs" {
            return HostFs::mount(self.hostfs, options, read_only)
                .map(|fs| Box::new(fs) as Box<dyn FileSystem>)
                .map_err(|e| e.to_string());
        }
        if fs_type == "humfs" {
            return super::humfs::HumFs::mount(options, read_only);
        }
        if !matches!(fs_type, "ext2" | "ext3" | "ext4") {
            return Err(format!("unknown filesystem type '{fs_type}'"));
        }
        let n = self.disks.index_of(source).map_err(|e| e.to_string())?;
        let dev = self
            .disks
            .shared(n)
            .ok_or_else(|| format!("{source}: device not present"))?;
        let fs = Ext2Fs::mount(Box::new(Sectors(dev)), read_only, self.cache_bytes)
            .map_err(|e| e.to_string())?;
        Ok(Box::new(fs))
    }
}
