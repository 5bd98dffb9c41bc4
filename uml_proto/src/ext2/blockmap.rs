//! The classic ext2 block map: 12 direct block numbers in the inode, then one single,
//! one double and one triple indirect block, each a table of 32-bit block numbers.

/// Direct block slots in an inode.
pub const N_DIRECT: usize = 12;
/// Bytes of one block number in an indirect block.
pub const ADDR_LEN: usize = 4;

/// Where logical block `n` of a file is found: the slot in the inode's block array
/// (0..15), then the index in each level of indirect block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockPath {
    pub slot: usize,
    pub indices: Vec<usize>,
}

impl BlockPath {
    /// The path to logical block `n` with `per` block numbers per indirect block; None
    /// beyond the triple indirect block's reach.
    pub fn of(n: u64, per: u64) -> Option<BlockPath> {
        let mut n = n;
        if n < N_DIRECT as u64 {
            return Some(BlockPath {
                slot: n as usize,
                indices: vec![],
            });
        }
        n -= N_DIRECT as u64;
        let mut span = per;
        for depth in 1..=3usize {
            if n < span {
                let mut indices = vec![0; depth];
                let mut rest = n;
                for i in (0..depth).rev() {
                    indices[i] = (rest % per) as usize;
                    rest /= per;
                }
                return Some(BlockPath {
                    slot: N_DIRECT + depth - 1,
                    indices,
                });
            }
            n -= span;
            span = span.checked_mul(per)?;
        }
        None
    }

    /// How many logical blocks a block map with `per` numbers per block can address.
    pub fn max_blocks(per: u64) -> u64 {
        N_DIRECT as u64 + per + per * per + per * per * per
    }
}
