//! The COW sector bitmap: bit `i` (LSB first within each byte) set means sector `i`
//! lives in the COW file. Scans go a 64-bit word at a time so that merging walks runs
//! of sectors, not single sectors.

/// A sector bitmap held in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectorBitmap {
    bytes: Vec<u8>,
    sectors: u64,
}

/// Bytes needed for `sectors` bits.
pub fn bitmap_bytes(sectors: u64) -> u64 {
    sectors.div_ceil(8)
}

impl SectorBitmap {
    /// An all-clear bitmap for `sectors` sectors.
    pub fn new(sectors: u64) -> SectorBitmap {
        SectorBitmap::from_bytes(Vec::new(), sectors)
    }

    /// Wraps bitmap bytes as read from a COW file; missing bytes read as clear.
    pub fn from_bytes(mut bytes: Vec<u8>, sectors: u64) -> SectorBitmap {
        // Pad to whole words plus one so word loads never run past the end.
        let words = sectors.div_ceil(64) as usize + 1;
        bytes.resize(words * 8, 0);
        SectorBitmap { bytes, sectors }
    }

    /// The number of sectors the bitmap covers.
    pub fn sectors(&self) -> u64 {
        self.sectors
    }

    /// The bitmap as stored on disk (`ceil(sectors / 8)` bytes).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..bitmap_bytes(self.sectors) as usize]
    }

    pub fn is_set(&self, sector: u64) -> bool {
        sector < self.sectors && self.bytes[(sector / 8) as usize] & (1 << (sector % 8)) != 0
    }

    pub fn set(&mut self, sector: u64) {
        assert!(sector < self.sectors, "sector {sector} past the bitmap");
        self.bytes[(sector / 8) as usize] |= 1 << (sector % 8);
    }

    fn word(&self, first_sector: u64) -> u64 {
        let at = (first_sector / 8) as usize;
        u64::from_le_bytes(self.bytes[at..at + 8].try_into().expect("8 bytes"))
    }

    /// The first sector in `from..end` whose bit equals `set`, or `end`.
    fn next_with(&self, from: u64, end: u64, set: bool) -> u64 {
        let end = end.min(self.sectors);
        let mut i = from;
        while i < end {
            if i.is_multiple_of(64) {
                let w = if set { self.word(i) } else { !self.word(i) };
                if w == 0 {
                    i += 64;
                    continue;
                }
                return (i + u64::from(w.trailing_zeros())).min(end);
            }
            if self.is_set(i) == set {
                return i;
            }
            i += 1;
        }
        end
    }

    /// Number of set bits among the covered sectors.
    pub fn count_set(&self) -> u64 {
        let full = self.sectors / 64;
        let mut n: u64 = (0..full)
            .map(|w| u64::from(self.word(w * 64).count_ones()))
            .sum();
        for s in full * 64..self.sectors {
            n += u64::from(self.is_set(s));
        }
        n
    }

    /// Whether any sector in `start..end` is set.
    pub fn any_set(&self, start: u64, end: u64) -> bool {
        self.next_with(start, end, true) < end.min(self.sectors)
    }

    /// The runs of set sectors inside `start..end`, as `(first, count)`.
    pub fn set_runs(&self, start: u64, end: u64) -> SetRuns<'_> {
        SetRuns {
            bitmap: self,
            at: start,
            end: end.min(self.sectors),
        }
    }
}

/// Iterator over runs of set sectors; see [`SectorBitmap::set_runs`].
pub struct SetRuns<'a> {
    bitmap: &'a SectorBitmap,
    at: u64,
    end: u64,
}

impl Iterator for SetRuns<'_> {
    type Item = (u64, u64);

    fn next(&mut self) -> Option<(u64, u64)> {
        let first = self.bitmap.next_with(self.at, self.end, true);
        if first >= self.end {
            self.at = self.end;
            return None;
        }
        let past = self.bitmap.next_with(first, self.end, false);
        self.at = past;
        Some((first, past - first))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_order_is_lsb_first() {
        let b = SectorBitmap::from_bytes(vec![0x00, 0x22, 0x2a], 24);
        let set: Vec<u64> = (0..24).filter(|&i| b.is_set(i)).collect();
        assert_eq!(set, vec![9, 13, 17, 19, 21]);
        assert_eq!(b.count_set(), 5);
    }

    #[test]
    fn runs_match_a_bit_by_bit_scan() {
        let sectors = 1000;
        let mut b = SectorBitmap::new(sectors);
        let mut x: u32 = 12345;
        for i in 0..sectors {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            if (x >> 16).is_multiple_of(3) || (200..400).contains(&i) {
                b.set(i);
            }
        }
        for (start, end) in [(0, sectors), (3, 999), (64, 128), (130, 131), (500, 500)] {
            let mut expect = Vec::new();
            let mut i = start;
            while i < end {
                if b.is_set(i) {
                    let first = i;
                    while i < end && b.is_set(i) {
                        i += 1;
                    }
                    expect.push((first, i - first));
                } else {
                    i += 1;
                }
            }
            let got: Vec<_> = b.set_runs(start, end).collect();
            assert_eq!(got, expect, "{start}..{end}");
            assert_eq!(b.any_set(start, end), !expect.is_empty());
        }
        let total: u64 = b.set_runs(0, sectors).map(|(_, n)| n).sum();
        assert_eq!(total, b.count_set());
    }

    #[test]
    fn bits_past_the_last_sector_are_ignored() {
        let b = SectorBitmap::from_bytes(vec![0xff, 0xff], 9);
        assert_eq!(b.count_set(), 9);
        assert_eq!(b.set_runs(0, 100).collect::<Vec<_>>(), vec![(0, 9)]);
        assert_eq!(b.as_bytes().len(), 2);
    }
}
