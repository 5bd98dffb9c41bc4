//! The block cache between the ext2 driver and its device: whole blocks, written back on
//! `flush` (sync, umount, halt, reboot, the periodic write-back) or when evicted. Every
//! cache of one machine draws on one [`CacheBudget`] (a quarter of `mem=`): a cache that
//! would go past it evicts its least recently used quarter first, so the blocks all
//! mounted filesystems hold never exceed the budget (each cache may keep
//! [`MIN_BLOCKS`] however small the budget). Dirty blocks go back in block order,
//! contiguous runs in one write; a miss that continues a sequential run reads ahead.
//! It is itself a `BlockDevice`, so `uml_proto::ext2`'s readers go through it unchanged.

use std::cell::Cell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::rc::Rc;

use uml_proto::ext2::BlockDevice;

/// Blocks a cache may hold even when the budget is spent (a path walk needs a few).
pub const MIN_BLOCKS: usize = 16;
/// Most blocks one read-ahead brings in.
const MAX_READ_AHEAD: u64 = 64;
/// Most bytes one coalesced write-back writes at once.
const MAX_RUN_BYTES: usize = 1 << 20;

/// The bytes of cached blocks the machine may hold, shared by every cache.
#[derive(Debug, Clone)]
pub struct CacheBudget(Rc<Budget>);

#[derive(Debug)]
struct Budget {
    limit: usize,
    used: Cell<usize>,
    peak: Cell<usize>,
}

impl CacheBudget {
    pub fn new(limit: usize) -> CacheBudget {
        CacheBudget(Rc::new(Budget {
            limit,
            used: Cell::new(0),
            peak: Cell::new(0),
        }))
    }

    pub fn limit(&self) -> usize {
        self.0.limit
    }

    /// Bytes held in cached blocks now.
    pub fn used(&self) -> usize {
        self.0.used.get()
    }

    /// The most bytes ever held at once.
    pub fn peak(&self) -> usize {
        self.0.peak.get()
    }

    fn take(&self, n: usize) {
        let used = self.0.used.get() + n;
        self.0.used.set(used);
        self.0.peak.set(self.0.peak.get().max(used));
    }

    fn give(&self, n: usize) {
        self.0.used.set(self.0.used.get().saturating_sub(n));
    }
}

struct Cached {
    data: Box<[u8]>,
    dirty: bool,
    used: u64,
}

/// A write-back cache over a device.
pub struct BlockCache {
    dev: Box<dyn BlockDevice>,
    bs: usize,
    budget: CacheBudget,
    tick: u64,
    blocks: Blocks,
    /// Blocks on the device (no read-ahead past the end).
    dev_blocks: u64,
    /// The last block a miss read, and how far the next sequential miss reads ahead.
    last_miss: Option<u64>,
    window: u64,
    /// Where read-ahead lands before it is split into blocks (kept: no page faults
    /// for a fresh buffer on every miss).
    scratch: Vec<u8>,
    /// Blocks read from the device (a figure for tests and benchmarks).
    pub misses: u64,
}

/// Block numbers are their own hash: a multiply spreads them over the table.
#[derive(Default, Clone, Copy)]
pub struct BlockHasher(u64);

impl Hasher for BlockHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type Blocks = HashMap<u64, Cached, BuildHasherDefault<BlockHasher>>;

impl Drop for BlockCache {
    fn drop(&mut self) {
        self.budget.give(self.blocks.len() * self.bs);
    }
}

impl BlockCache {
    /// A cache of at most `bytes` (at least [`MIN_BLOCKS`] blocks) of its own.
    pub fn new(dev: Box<dyn BlockDevice>, block_size: usize, bytes: usize) -> BlockCache {
        Self::with_budget(dev, block_size, CacheBudget::new(bytes))
    }

    /// A cache drawing on a budget shared with other caches.
    pub fn with_budget(
        mut dev: Box<dyn BlockDevice>,
        block_size: usize,
        budget: CacheBudget,
    ) -> BlockCache {
        let dev_blocks = dev.size().map_or(0, |s| s / block_size as u64);
        BlockCache {
            dev,
            bs: block_size,
            budget,
            tick: 0,
            blocks: Blocks::default(),
            dev_blocks,
            last_miss: None,
            window: 1,
            scratch: Vec::new(),
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

    /// The budget this cache draws on.
    pub fn budget(&self) -> &CacheBudget {
        &self.budget
    }

    /// Whether `n` more blocks fit (always true below [`MIN_BLOCKS`]).
    fn fits(&self, n: usize) -> bool {
        self.blocks.len() + n <= MIN_BLOCKS
            || self.budget.used() + n * self.bs <= self.budget.limit()
    }

    fn insert(&mut self, b: u64, data: Box<[u8]>) {
        self.tick += 1;
        self.budget.take(self.bs);
        self.blocks.insert(
            b,
            Cached {
                data,
                dirty: false,
                used: self.tick,
            },
        );
    }

    /// Reads block `b` from the device, and after a sequential run of misses the blocks
    /// that follow it (up to the first cached one), in one read.
    fn load(&mut self, b: u64) -> io::Result<()> {
        self.window = match self.last_miss {
            Some(prev) if prev + 1 == b => (self.window * 2).min(MAX_READ_AHEAD),
            _ => 1,
        };
        let room = (self.budget.limit() / self.bs / 8).max(1) as u64;
        let mut n = 1;
        while n < self.window.min(room)
            && b + n < self.dev_blocks
            && !self.blocks.contains_key(&(b + n))
        {
            n += 1;
        }
        self.make_room(n as usize)?;
        let mut raw = std::mem::take(&mut self.scratch);
        raw.resize(n as usize * self.bs, 0);
        let read = self.dev.read_at(b * self.bs as u64, &mut raw);
        if read.is_ok() {
            self.misses += n;
            for (i, chunk) in raw.chunks_exact(self.bs).enumerate() {
                self.insert(b + i as u64, chunk.into());
            }
        }
        self.scratch = raw;
        read?;
        self.last_miss = Some(b + n - 1);
        Ok(())
    }

    fn entry(&mut self, b: u64, load: bool) -> io::Result<&mut Cached> {
        if !self.blocks.contains_key(&b) {
            if load {
                self.load(b)?;
            } else {
                self.make_room(1)?;
                self.insert(b, vec![0; self.bs].into_boxed_slice());
            }
        }
        self.tick += 1;
        let tick = self.tick;
        let e = self
            .blocks
            .get_mut(&b)
            .ok_or_else(|| io::Error::other("block vanished from the cache"))?;
        e.used = tick;
        Ok(e)
    }

    /// Evicts least recently used blocks (a quarter of this cache at a time), writing
    /// dirty ones back, until `n` more blocks fit the budget.
    fn make_room(&mut self, n: usize) -> io::Result<()> {
        while !self.fits(n) && !self.blocks.is_empty() {
            let mut order: Vec<(u64, u64)> =
                self.blocks.iter().map(|(b, e)| (e.used, *b)).collect();
            order.sort_unstable();
            let quarter = (self.blocks.len() / 4).max(n).min(self.blocks.len());
            let mut victims: Vec<u64> = order.iter().take(quarter).map(|&(_, b)| b).collect();
            victims.sort_unstable();
            self.write_back(&victims)?;
            for b in victims {
                if self.blocks.remove(&b).is_some() {
                    self.budget.give(self.bs);
                }
            }
        }
        Ok(())
    }

    /// Writes the dirty ones of `blocks` (sorted) back, contiguous runs in one write.
    fn write_back(&mut self, blocks: &[u64]) -> io::Result<()> {
        let dirty: Vec<u64> = blocks
            .iter()
            .copied()
            .filter(|b| self.blocks.get(b).is_some_and(|e| e.dirty))
            .collect();
        let max_run = (MAX_RUN_BYTES / self.bs).max(1);
        let mut run: Vec<u8> = Vec::new();
        let mut i = 0;
        while i < dirty.len() {
            let first = dirty[i];
            let mut j = i;
            while j + 1 < dirty.len() && dirty[j + 1] == dirty[j] + 1 && j + 1 - i < max_run {
                j += 1;
            }
            let off = first * self.bs as u64;
            if i == j {
                if let Some(e) = self.blocks.get(&first) {
                    self.dev.write_at(off, &e.data)?;
                }
            } else {
                run.clear();
                for b in &dirty[i..=j] {
                    if let Some(e) = self.blocks.get(b) {
                        run.extend_from_slice(&e.data);
                    }
                }
                self.dev.write_at(off, &run)?;
            }
            for b in &dirty[i..=j] {
                if let Some(e) = self.blocks.get_mut(b) {
                    e.dirty = false;
                }
            }
            i = j + 1;
        }
        Ok(())
    }

    /// Copies bytes of block `b` from `off` into `buf`.
    pub fn read(&mut self, b: u64, off: usize, buf: &mut [u8]) -> io::Result<()> {
        let e = self.entry(b, true)?;
        buf.copy_from_slice(&e.data[off..off + buf.len()]);
        Ok(())
    }

    /// Looks at block `b` in place.
    pub fn with<T>(&mut self, b: u64, f: impl FnOnce(&[u8]) -> T) -> io::Result<T> {
        let e = self.entry(b, true)?;
        Ok(f(&e.data))
    }

    /// Changes block `b` in place (and marks it dirty).
    pub fn modify<T>(&mut self, b: u64, f: impl FnOnce(&mut [u8]) -> T) -> io::Result<T> {
        let e = self.entry(b, true)?;
        e.dirty = true;
        Ok(f(&mut e.data))
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
        let fresh = !self.blocks.contains_key(&b);
        let e = self.entry(b, false)?;
        if !fresh {
            e.data.fill(0);
        }
        e.dirty = true;
        Ok(())
    }

    /// Writes every dirty block back, in block order, and flushes the device.
    pub fn flush(&mut self) -> io::Result<()> {
        self.write_dirty()?;
        self.dev.flush()
    }

    /// Writes every dirty block back, in block order, without flushing the device
    /// (the data reaches the host file, not necessarily its disk).
    pub fn write_dirty(&mut self) -> io::Result<()> {
        let mut dirty: Vec<u64> = self
            .blocks
            .iter()
            .filter(|(_, e)| e.dirty)
            .map(|(b, _)| *b)
            .collect();
        dirty.sort_unstable();
        self.write_back(&dirty)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A device that counts its reads and writes.
    struct Counting {
        data: Vec<u8>,
        reads: Rc<Cell<usize>>,
        writes: Rc<Cell<usize>>,
    }

    impl BlockDevice for Counting {
        fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
            self.reads.set(self.reads.get() + 1);
            self.data.read_at(offset, buf)
        }
        fn write_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()> {
            self.writes.set(self.writes.get() + 1);
            self.data.write_at(offset, buf)
        }
        fn size(&mut self) -> io::Result<u64> {
            Ok(self.data.len() as u64)
        }
    }

    fn counting(blocks: usize) -> (Box<Counting>, Rc<Cell<usize>>, Rc<Cell<usize>>) {
        let reads = Rc::new(Cell::new(0));
        let writes = Rc::new(Cell::new(0));
        let data = (0..blocks * 1024).map(|i| (i / 1024) as u8).collect();
        let dev = Counting {
            data,
            reads: reads.clone(),
            writes: writes.clone(),
        };
        (Box::new(dev), reads, writes)
    }

    #[test]
    fn caches_sharing_a_budget_stay_within_it_and_keep_the_data() {
        let budget = CacheBudget::new(64 * 1024);
        let (a_dev, _, _) = counting(1024);
        let (b_dev, _, _) = counting(1024);
        let mut a = BlockCache::with_budget(a_dev, 1024, budget.clone());
        let mut b = BlockCache::with_budget(b_dev, 1024, budget.clone());
        for n in 0..1000u64 {
            a.write(n, 0, &[0xa0 ^ n as u8; 1024]).unwrap();
            b.write(n, 0, &[0xb0 ^ n as u8; 1024]).unwrap();
            assert!(budget.used() <= 64 * 1024, "over budget at {n}");
        }
        assert!(budget.peak() <= 64 * 1024);
        for n in 0..1000u64 {
            let mut x = [0u8; 1024];
            a.read(n, 0, &mut x).unwrap();
            assert_eq!(x, [0xa0 ^ n as u8; 1024], "block {n} of a");
            b.read(n, 0, &mut x).unwrap();
            assert_eq!(x, [0xb0 ^ n as u8; 1024], "block {n} of b");
        }
        drop(a);
        drop(b);
        assert_eq!(budget.used(), 0, "dropped caches give their bytes back");
    }

    #[test]
    fn write_back_is_coalesced_and_sequential_reads_read_ahead() {
        let (dev, reads, writes) = counting(512);
        let mut c = BlockCache::new(dev, 1024, 1 << 20);
        for n in 0..100u64 {
            c.write(n, 0, &[7; 1024]).unwrap();
        }
        c.write(300, 0, &[9; 1024]).unwrap();
        c.flush().unwrap();
        assert_eq!(writes.get(), 2, "one run of 100 blocks and one block");
        let mut x = [0u8; 1024];
        for n in 100..300u64 {
            c.read(n, 0, &mut x).unwrap();
            assert_eq!(x, [n as u8; 1024]);
        }
        assert!(
            reads.get() < 20,
            "{} reads for 200 sequential blocks",
            reads.get()
        );
    }
}
