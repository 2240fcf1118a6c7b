//! Which bytes a JSON string cannot hold as they are: the one rule the request reader
//! ([`crate::request_reader`]) and the reply writer ([`crate::message::ReplyFields`]) use to
//! take or write a string without escaping.
//!
//! Not for: escaping or unescaping (serde_json does that for the strings that need it).

/// The position of the first byte of `bytes` that a JSON string cannot hold as it is: a
/// quote, a backslash or a control character. Eight bytes at a time: strings are most of
/// the bytes of a request and of a reply.
pub(crate) fn special_at(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const QUOTES: u64 = u64::from_ne_bytes([b'"'; 8]);
    const BACKSLASHES: u64 = u64::from_ne_bytes([b'\\'; 8]);
    const SPACES: u64 = u64::from_ne_bytes([0x20; 8]);
    let mut chunks = bytes.chunks_exact(8);
    let mut at = 0;
    for chunk in chunks.by_ref() {
        // Read as an array, not copied out of the slice: the copy became a call to `memcpy`
        // for every eight bytes where the compiler did not see the length. (Every chunk is
        // eight bytes; the default is never taken.)
        let word = u64::from_le_bytes(<[u8; 8]>::try_from(chunk).unwrap_or_default());
        // A byte's high bit is set where it is zero after the xor (quote, backslash) or
        // below 0x20; bits above the first such byte may be set wrongly by the borrow, the
        // lowest one is exact, and it is the one taken.
        let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
        let found = zero(word ^ QUOTES)
            | zero(word ^ BACKSLASHES)
            | (word.wrapping_sub(SPACES) & !word & HIGHS);
        if found != 0 {
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        .map(|i| at + i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_quote_backslash_or_control_character_is_found() {
        let slow = |b: &[u8]| b.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20);
        for len in 0..40 {
            for at in 0..len {
                for special in [
                    b'"', b'\\', 0x00, 0x1f, b' ', 0x7f, 0x80, 0xff, b'!', b'#', b'[',
                ] {
                    for filler in [b'a', 0xe9, b'~', b' '] {
                        let mut bytes = vec![filler; len];
                        bytes[at] = special;
                        // A second match later must not hide the first.
                        if at + 3 < len {
                            bytes[at + 3] = b'"';
                        }
                        assert_eq!(special_at(&bytes), slow(&bytes), "{bytes:?}");
                    }
                }
            }
        }
    }
}
