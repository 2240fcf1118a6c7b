//! Reading regular expressions written for Ruby (MCollective) and Go (Choria) the way those
//! engines read them, before Rust's `regex` crate compiles them.
//!
//! Patterns reach mco from `/regex/` filters and from DDL `validation` fields written years
//! ago for other engines. Where the engines agree and Rust's `regex` refuses or reads the
//! pattern differently, [`translate`] rewrites it:
//!
//! - a `{` that cannot start a counted repetition (`^{.+}$`, `a{x}`, `{3}` with nothing to
//!   repeat) is a literal brace, as in Go, Ruby and Python;
//! - `\Z` is Ruby's "end of text, or before a final newline"; `\A` and `\z` are kept;
//! - Ruby's hex-digit class `\h` / `\H`;
//! - inside a bracket class, a `[` that does not open a POSIX class (`[[:alpha:]]`) and the
//!   doubled `&&` / `~~` are literal, as in Go; Rust would read them as nested classes and set
//!   operations. POSIX classes themselves pass through unchanged (Rust reads them as Go does).
//!
//! Not for: bounding what a pattern may cost (that is [`crate::filter::compile_regex`], which
//! calls this first), nor for emulating engine features Rust's `regex` lacks entirely
//! (look-around, back-references): those still fail to compile, with the engine's message.
//! `^` and `$` keep Go's meaning (start and end of the text), not Ruby's per-line one, so a
//! validation anchored `^…$` cannot be passed by a second line.

/// Rewrites `pattern` from the Ruby/Go dialect into one Rust's `regex` reads the same way.
/// Pure text rewriting; compiling (and refusing) is left to the caller.
pub fn translate(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::with_capacity(pattern.len() + 8);
    // Whether the last thing written can take a repetition operator: false at the start,
    // after `(`, `(?flags:` or `|`, where Go, Ruby and Python read `{` as a literal.
    let mut repeatable = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' => {
                i = escape(&chars, i, &mut out, false);
                repeatable = true;
                continue;
            }
            '[' => {
                i = class(&chars, i, &mut out);
                repeatable = true;
                continue;
            }
            '(' => {
                out.push('(');
                i += 1;
                if chars.get(i) == Some(&'?') {
                    // A group's options run to its first `:`, `)`, `>`, `=` or `!`.
                    while let Some(&o) = chars.get(i) {
                        out.push(o);
                        i += 1;
                        if matches!(o, ':' | ')' | '>' | '=' | '!') {
                            break;
                        }
                    }
                }
                repeatable = false;
                continue;
            }
            '|' | '^' => repeatable = false,
            '{' => {
                match counted_repetition(&chars[i..]) {
                    Some(len) if repeatable => {
                        out.extend(&chars[i..i + len]);
                        i += len;
                    }
                    _ => {
                        out.push_str("\\{");
                        i += 1;
                        repeatable = true;
                    }
                }
                continue;
            }
            '}' => {
                out.push_str("\\}");
                i += 1;
                repeatable = true;
                continue;
            }
            _ => repeatable = true,
        }
        out.push(c);
        i += 1;
    }
    out
}

/// The length of a counted repetition `{n}`, `{n,}` or `{n,m}` at the start of `rest`, as Go
/// parses one; anything else is not a repetition.
fn counted_repetition(rest: &[char]) -> Option<usize> {
    let mut i = 1;
    let digits = |i: &mut usize| {
        let start = *i;
        while rest.get(*i).is_some_and(char::is_ascii_digit) {
            *i += 1;
        }
        *i > start
    };
    if !digits(&mut i) {
        return None;
    }
    if rest.get(i) == Some(&',') {
        i += 1;
        digits(&mut i);
    }
    (rest.get(i) == Some(&'}')).then_some(i + 1)
}

/// Copies the escape at `chars[i]` (a backslash), translated; returns the index after it.
fn escape(chars: &[char], i: usize, out: &mut String, in_class: bool) -> usize {
    let Some(&next) = chars.get(i + 1) else {
        // A trailing backslash: left for the compiler to refuse.
        out.push('\\');
        return i + 1;
    };
    match (next, in_class) {
        ('Z', false) => out.push_str(r"(?:\n?\z)"),
        ('h', false) => out.push_str("[0-9A-Fa-f]"),
        ('H', false) => out.push_str("[^0-9A-Fa-f]"),
        ('h', true) => out.push_str("0-9A-Fa-f"),
        ('x' | 'p' | 'P' | 'u', _) if chars.get(i + 2) == Some(&'{') => {
            // `\x{263a}`, `\p{Greek}`: the braces belong to the escape.
            let mut j = i;
            while let Some(&c) = chars.get(j) {
                out.push(c);
                j += 1;
                if c == '}' {
                    break;
                }
            }
            return j;
        }
        _ => {
            out.push('\\');
            out.push(next);
        }
    }
    i + 2
}

/// Copies the bracket class opening at `chars[i]`; returns the index after its `]`.
fn class(chars: &[char], i: usize, out: &mut String) -> usize {
    out.push('[');
    let mut j = i + 1;
    if chars.get(j) == Some(&'^') {
        out.push('^');
        j += 1;
    }
    // A `]` first in the class is a literal in every engine.
    if chars.get(j) == Some(&']') {
        out.push_str("\\]");
        j += 1;
    }
    while let Some(&c) = chars.get(j) {
        match c {
            ']' => {
                out.push(']');
                return j + 1;
            }
            '\\' => j = escape(chars, j, out, true),
            '[' if chars.get(j + 1) == Some(&':') => {
                // A POSIX class `[:alpha:]` runs to its `:]`.
                match (j + 2..chars.len().saturating_sub(1))
                    .find(|&k| chars[k] == ':' && chars[k + 1] == ']')
                {
                    Some(end) => {
                        out.extend(&chars[j..end + 2]);
                        j = end + 2;
                    }
                    None => {
                        out.push_str("\\[");
                        j += 1;
                    }
                }
            }
            '[' | '&' | '~' => {
                out.push('\\');
                out.push(c);
                j += 1;
            }
            _ => {
                out.push(c);
                j += 1;
            }
        }
    }
    // An unclosed class: left for the compiler to refuse.
    j
}

#[cfg(test)]
mod tests {
    use super::translate;
    use crate::filter::compile_regex;

    /// Pattern, subject, whether Ruby/Go match it; each row cites the documented behaviour.
    #[test]
    fn patterns_read_as_ruby_and_go_read_them() {
        let table: &[(&str, &str, bool)] = &[
            // Go regexp/syntax: "if the repeat cannot be parsed, { is a literal"; Onigmo and
            // Python's re do the same for a brace that is not a valid interval.
            (r"^{.+}$", "{a}", true),
            (r"^{.+}$", "a", false),
            (r"^\{.+\}$", "{a}", true),
            (r"a{x}", "a{x}", true),
            (r"a{,2}", "a{,2}", true),
            (r"{3}", "{3}", true),
            (r"(?:{3})", "{3}", true),
            (r"x|{3}", "{3}", true),
            (r"^a{2}$", "aa", true),
            (r"^a{2}$", "a{2}", false),
            (r"^a{1,}$", "aaa", true),
            (r"^a{1,2}$", "aaa", false),
            (r"^[{}]+$", "{}", true),
            (r"^\x{41}$", "A", true),
            (r"^\p{Lu}$", "A", true),
            // Ruby: \A start of string, \z end of string.
            (r"\Aab\z", "ab", true),
            (r"\Aab\z", "ab\n", false),
            (r"\Aab\z", "xab", false),
            // Ruby (Onigmo doc/RE): \Z "end of string, or before newline at the end".
            (r"\Aab\Z", "ab", true),
            (r"\Aab\Z", "ab\n", true),
            (r"\Aab\Z", "ab\n\n", false),
            (r"\Aab\Z", "abc", false),
            // Go and Ruby: POSIX bracket expressions inside a class.
            (r"^[[:alpha:]]+$", "abc", true),
            (r"^[[:alpha:]]+$", "ab1", false),
            (r"^[[:digit:][:space:]]+$", "1 2", true),
            (r"^[^[:space:]]+$", "a b", false),
            (r"^[[:upper:]]{2}$", "GB", true),
            // Go: inside a class `[` is a literal (no nested classes) and `&&` is two `&`.
            (r"^[[a]+$", "[a[", true),
            (r"^[a&&b]+$", "&", true),
            (r"^[]a]+$", "]a", true),
            // Ruby: \h is a hex digit, \H is not.
            (r"^\h+$", "09afAF", true),
            (r"^\h+$", "0g", false),
            (r"^[\h-]+$", "ab-12", true),
            (r"^\H$", "g", true),
            // Go: ^ and $ anchor the text, not lines (no (?m)), so a second line cannot pass.
            (r"^[a-z]+$", "abc\nx;y", false),
            // Escaped punctuation that Ruby filters use, such as `\/` and `\-`.
            (r"^a\/b\-c$", "a/b-c", true),
        ];
        for (pattern, subject, want) in table {
            let re = compile_regex(pattern)
                .unwrap_or_else(|e| panic!("{pattern} ({}): {e}", translate(pattern)));
            assert_eq!(
                re.is_match(subject),
                *want,
                "{pattern} ({}) on {subject:?}",
                translate(pattern)
            );
        }
    }

    #[test]
    fn what_no_engine_accepts_is_still_refused() {
        for bad in [r"^(", r"[a", r"a\", r"(?<=a)b", r"(a)\1"] {
            assert!(compile_regex(bad).is_err(), "{bad} ({})", translate(bad));
        }
    }
}
