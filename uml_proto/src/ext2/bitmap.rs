//! Block and inode bitmaps: bit N of the bitmap is bit N%8 of byte N/8.

/// Whether bit `n` is set (bits past the end read as set: nothing to allocate there).
pub fn bit_test(map: &[u8], n: usize) -> bool {
    map.get(n / 8).is_none_or(|b| b & (1 << (n % 8)) != 0)
}

/// Sets bit `n`; returns its previous value.
pub fn bit_set(map: &mut [u8], n: usize) -> bool {
    let old = bit_test(map, n);
    if let Some(b) = map.get_mut(n / 8) {
        *b |= 1 << (n % 8);
    }
    old
}

/// Clears bit `n`; returns its previous value.
pub fn bit_clear(map: &mut [u8], n: usize) -> bool {
    let old = bit_test(map, n);
    if let Some(b) = map.get_mut(n / 8) {
        *b &= !(1 << (n % 8));
    }
    old
}

/// The first clear bit at or after `goal` and below `limit`, wrapping around to 0.
pub fn find_zero_from(map: &[u8], goal: usize, limit: usize) -> Option<usize> {
    let limit = limit.min(map.len() * 8);
    let goal = if goal >= limit { 0 } else { goal };
    (goal..limit)
        .chain(0..goal)
        .find(|&n| map[n / 8] != 0xff && !bit_test(map, n))
}
