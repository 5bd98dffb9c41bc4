//! What several fuzz targets share: the sparse image encoding their inputs use (seeds
//! made by fuzz/make-ext2-seeds), so a few bytes can describe a multi-megabyte image.

/// The largest image an input may describe.
const MAX_IMAGE: usize = 4 << 20;

/// Decodes a sparse image: u32 size, then (u32 offset, u16 len, bytes) records, a length
/// with the high bit set being a run of the next byte. None when the input is too short
/// to hold a size or a record is cut.
pub fn sparse_image(data: &[u8]) -> Option<Vec<u8>> {
    let size = u32::from_le_bytes(data.get(..4)?.try_into().ok()?) as usize;
    let mut img = vec![0u8; size.min(MAX_IMAGE)];
    let mut rest = &data[4..];
    while rest.len() >= 6 {
        let off = u32::from_le_bytes(rest[..4].try_into().ok()?) as usize;
        let len = u16::from_le_bytes(rest[4..6].try_into().ok()?) as usize;
        rest = &rest[6..];
        if len & 0x8000 != 0 {
            let (&b, tail) = rest.split_first()?;
            rest = tail;
            let end = (off + (len & 0x7fff)).min(img.len());
            if off < end {
                img[off..end].fill(b);
            }
        } else {
            let bytes = rest.get(..len)?;
            rest = &rest[len..];
            let end = (off + len).min(img.len());
            if off < end {
                img[off..end].copy_from_slice(&bytes[..end - off]);
            }
        }
    }
    Some(img)
}
