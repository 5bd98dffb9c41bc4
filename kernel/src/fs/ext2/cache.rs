//! The block cache between the ext2 driver and its device: whole blocks, bounded in
//! number, written back on `flush` (sync, umount, halt) or when evicted. It is itself a
//! `BlockDevice`, so `uml_proto::ext2`'s readers go through it unchanged.

use std::collections::HashMap;
use std::io;

use uml_proto::ext2::BlockDevice;

struct Cached {
    data: Vec<u8>,
    dirty: bool,
    used: u64,
}

/// A write-back cache of `cap` blocks over a device.
pub struct BlockCache {
    dev: Box<dyn BlockDevice>,
    bs: usize,
    cap: usize,
    tick: u64,
    blocks: HashMap<u64, Cached>,
    /// Blocks read from the device (a figure for tests and benchmarks).
    pub misses: u64,
}

impl BlockCache {
    /// A cache of at most `bytes` (at least 16 blocks) of `block_size`-byte blocks.
    pub fn new(dev: Box<dyn BlockDevice>, block_size: usize, bytes: usize) -> BlockCache {
        BlockCache {
            dev,
            bs: block_size,
            cap: (bytes / block_size).max(16),
            tick: 0,
            blocks: HashMap::new(),
            misses: 0,
        }
    }

    pub fn block_size(&self) -> usize {
        self.bs
    }

    /// Blocks held now.
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    fn entry(&mut self, b: u64, load: bool) -> io::Result<&mut Cached> {
        self.tick += 1;
        let tick = self.tick;
        if !self.blocks.contains_key(&b) {
            self.shrink()?;
            let mut data = vec![0; self.bs];
            if load {
                self.misses += 1;
                self.dev.read_at(b * self.bs as u64, &mut data)?;
            }
            self.blocks.insert(
                b,
                Cached {
                    data,
                    dirty: false,
                    used: tick,
                },
            );
        }
        let e = self
            .blocks
            .get_mut(&b)
            .ok_or_else(|| io::Error::other("block vanished from the cache"))?;
        e.used = tick;
        Ok(e)
    }

    /// Evicts the least recently used quarter when full, writing dirty blocks back.
    fn shrink(&mut self) -> io::Result<()> {
        if self.blocks.len() < self.cap {
            return Ok(());
        }
        let mut order: Vec<(u64, u64)> = self.blocks.iter().map(|(b, e)| (e.used, *b)).collect();
        order.sort_unstable();
        let n = (self.cap / 4).max(1);
        let mut victims: Vec<u64> = order.iter().take(n).map(|&(_, b)| b).collect();
        victims.sort_unstable();
        for b in victims {
            if let Some(e) = self.blocks.get(&b) {
                if e.dirty {
                    self.dev.write_at(b * self.bs as u64, &e.data)?;
                }
            }
            self.blocks.remove(&b);
        }
        Ok(())
    }

    /// Copies bytes of block `b` from `off` into `buf`.
    pub fn read(&mut self, b: u64, off: usize, buf: &mut [u8]) -> io::Result<()> {
        let e = self.entry(b, true)?;
        buf.copy_from_slice(&e.data[off..off + buf.len()]);
        Ok(())
    }

    /// Writes bytes into block `b` at `off`.
    pub fn write(&mut self, b: u64, off: usize, data: &[u8]) -> io::Result<()> {
        let full = off == 0 && data.len() == self.bs;
        let e = self.entry(b, !full)?;
        e.data[off..off + data.len()].copy_from_slice(data);
        e.dirty = true;
        Ok(())
    }

    /// Makes block `b` all zeros without reading it (a newly allocated block).
    pub fn zero(&mut self, b: u64) -> io::Result<()> {
        let e = self.entry(b, false)?;
        e.data.fill(0);
        e.dirty = true;
        Ok(())
    }

    /// Writes every dirty block back, in block order, and flushes the device.
    pub fn flush(&mut self) -> io::Result<()> {
        let mut dirty: Vec<u64> = self
            .blocks
            .iter()
            .filter(|(_, e)| e.dirty)
            .map(|(b, _)| *b)
            .collect();
        dirty.sort_unstable();
        for b in dirty {
            if let Some(e) = self.blocks.get_mut(&b) {
                self.dev.write_at(b * self.bs as u64, &e.data)?;
                e.dirty = false;
            }
        }
        self.dev.flush()
    }
}

impl BlockDevice for BlockCache {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let bs = self.bs as u64;
        let mut done = 0;
        while done < buf.len() {
            let pos = offset + done as u64;
            let off = (pos % bs) as usize;
            let n = (self.bs - off).min(buf.len() - done);
            self.read(pos / bs, off, &mut buf[done..done + n])?;
            done += n;
        }
        Ok(())
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let bs = self.bs as u64;
        let mut done = 0;
        while done < data.len() {
            let pos = offset + done as u64;
            let off = (pos % bs) as usize;
            let n = (self.bs - off).min(data.len() - done);
            self.write(pos / bs, off, &data[done..done + n])?;
            done += n;
        }
        Ok(())
    }

    fn size(&mut self) -> io::Result<u64> {
        self.dev.size()
    }

    fn flush(&mut self) -> io::Result<()> {
        BlockCache::flush(self)
    }
}
