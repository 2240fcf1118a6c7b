//! Which bytes each kind of name may hold, as one table: the request id, the collective,
//! agent and action names, a node identity, a subject. Every node checks every request's id,
//! names and reply subject; looking each byte up in a table, without a branch per byte, is
//! a few instructions a byte where testing it against each allowed range was three times
//! as many.
//!
//! Not for: a name's other rules (its length, dots at its ends, the reply prefix), which
//! its checker in [`crate::subjects`] and [`crate::message`] applies.

/// Letters, digits and `-`: a request id.
pub(crate) const ID: u8 = 1;
/// Letters, digits, `_` and `-`: a collective, agent or action name (a subject token).
pub(crate) const TOKEN: u8 = 1 << 1;
/// A token's bytes and `.`: a node identity.
pub(crate) const IDENTITY: u8 = 1 << 2;
/// Any byte but ASCII whitespace, control characters, DEL and the wildcards `*` and `>`: a
/// subject one can publish to.
pub(crate) const SUBJECT: u8 = 1 << 3;
/// `.`, for finding empty subject tokens.
const DOT: u8 = 1 << 4;

static CLASSES: [u8; 256] = classes();

const fn classes() -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut index = 0;
    while index < 256 {
        let byte = index as u8;
        let alnum = byte.is_ascii_alphanumeric();
        let mut class = 0;
        if alnum || byte == b'-' {
            class |= ID;
        }
        if alnum || byte == b'-' || byte == b'_' {
            class |= TOKEN | IDENTITY;
        }
        if byte == b'.' {
            class |= IDENTITY | DOT;
        }
        if byte > b' ' && byte != 0x7f && byte != b'*' && byte != b'>' {
            class |= SUBJECT;
        }
        table[index] = class;
        index += 1;
    }
    table
}

/// Whether every byte of `bytes` is of `class` (one of the constants above); true when
/// there are none.
pub(crate) fn all_of(bytes: &[u8], class: u8) -> bool {
    // No early exit: the loop has no branch but its own, and the names are short (their
    // length is checked first, or bounded by the message's).
    bytes
        .iter()
        .fold(class, |all, &b| all & CLASSES[usize::from(b)])
        == class
}

/// [`all_of`], and no two dots in a row (an empty token of a subject or an identity), in one
/// pass.
pub(crate) fn all_of_without_empty_token(bytes: &[u8], class: u8) -> bool {
    let (mut all, mut previous, mut doubled) = (class, 0u8, 0u8);
    for &b in bytes {
        let this = CLASSES[usize::from(b)];
        all &= this;
        doubled |= previous & this;
        previous = this & DOT;
    }
    all == class && doubled == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_says_what_the_character_tests_say() {
        for b in 0..=255u8 {
            let alnum = b.is_ascii_alphanumeric();
            let is = |class: u8| all_of(&[b], class);
            assert_eq!(is(ID), alnum || b == b'-', "{b}");
            assert_eq!(is(TOKEN), alnum || b == b'-' || b == b'_', "{b}");
            assert_eq!(
                is(IDENTITY),
                alnum || b == b'-' || b == b'_' || b == b'.',
                "{b}"
            );
            let subject = !(b <= b' ' || b == 0x7f || b == b'*' || b == b'>');
            assert_eq!(is(SUBJECT), subject, "{b}");
        }
        assert!(all_of(b"", TOKEN));
        assert!(!all_of(b"rpc util", TOKEN));
    }

    #[test]
    fn two_dots_in_a_row_anywhere_are_found() {
        for (text, want) in [
            ("a.b.c", true),
            ("a..b", false),
            ("..", false),
            ("ab..", false),
            ("..ab", false),
            (".a.b.", true),
            ("a.b..c.d", false),
            ("", true),
            ("abcdefghij.klmnopq..r", false),
        ] {
            assert_eq!(
                all_of_without_empty_token(text.as_bytes(), SUBJECT),
                want,
                "{text}"
            );
        }
        // A byte outside the class fails whatever the dots.
        assert!(!all_of_without_empty_token(b"a.b*", SUBJECT));
        assert!(!all_of_without_empty_token(b"web 1", IDENTITY));
    }
}
