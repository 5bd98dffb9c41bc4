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
    first_zero(map, goal, limit).or_else(|| first_zero(map, 0, goal))
}

/// The first clear bit in `from..to`, skipping full bytes whole.
fn first_zero(map: &[u8], from: usize, to: usize) -> Option<usize> {
    let mut n = from;
    while n < to {
        if n.is_multiple_of(8) && map[n / 8] == 0xff {
            n += 8;
            continue;
        }
        if !bit_test(map, n) {
            return Some(n);
        }
        n += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_zero_wraps_and_respects_the_limit() {
        let mut map = vec![0xffu8; 8];
        assert_eq!(find_zero_from(&map, 0, 64), None);
        bit_clear(&mut map, 3);
        bit_clear(&mut map, 41);
        assert_eq!(find_zero_from(&map, 0, 64), Some(3));
        assert_eq!(find_zero_from(&map, 4, 64), Some(41));
        assert_eq!(find_zero_from(&map, 42, 64), Some(3), "wraps to the start");
        assert_eq!(find_zero_from(&map, 4, 41), Some(3), "not past the limit");
        assert_eq!(
            find_zero_from(&map, 100, 64),
            Some(3),
            "a goal past the limit"
        );
        bit_clear(&mut map, 63);
        assert_eq!(find_zero_from(&map, 42, 64), Some(63));
    }
}
