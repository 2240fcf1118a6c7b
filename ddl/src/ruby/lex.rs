//! The tokenizer of the Ruby subset MCollective DDLs are written in: literals, identifiers,
//! `=>`, punctuation and line ends, each with its position; comments and line continuations
//! are dropped here.
//!
//! Literals are decoded as Ruby decodes them (single quotes keep backslashes except before
//! `\` and `'`; double quotes read escapes), because the converted DDL must say what
//! MCollective saw. What the subset has no place for (operators, `=`, `.`, string
//! interpolation) is refused here with its position, so the parser never sees it.
//!
//! Not for: deciding what a token means in the DSL ([`super::parse`], [`super::convert`](mod@super::convert)).

use super::{ConvertError, ConvertErrorKind, ConvertWarning, Pos};

/// One token.
#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// An identifier or keyword: `metadata`, `do`, `end`, `true`, `summary`.
    Ident(String),
    /// `key:` in a hash or argument list (Ruby's symbol-key shorthand).
    Label(String),
    /// `:name` or `:"name"`.
    Symbol(String),
    /// A string literal, decoded (also a heredoc's body).
    Str(String),
    /// An integer literal.
    Int(i64),
    /// A float literal.
    Float(f64),
    /// `/source/flags`: the source with `\/` read as `/`, other escapes kept for the regex.
    Regex {
        /// The expression.
        source: String,
        /// The flags after the closing slash (`i`, `m`, `x`).
        flags: String,
    },
    /// `%w[...]` (strings) or `%i[...]` (symbols, kept as their names).
    Words(Vec<String>),
    /// `=>`.
    Arrow,
    /// `,`.
    Comma,
    /// `;`.
    Semicolon,
    /// `(`.
    LParen,
    /// `)`.
    RParen,
    /// `[`.
    LBracket,
    /// `]`.
    RBracket,
    /// `{`.
    LBrace,
    /// `}`.
    RBrace,
    /// The end of a line (not one continued by a backslash).
    Newline,
    /// The end of the input.
    Eof,
}

impl Tok {
    /// How the token reads in an error message.
    pub fn describe(&self) -> String {
        match self {
            Tok::Ident(name) => format!("`{name}`"),
            Tok::Label(name) => format!("`{name}:`"),
            Tok::Symbol(name) => format!("the symbol :{name}"),
            Tok::Str(_) => "a string".into(),
            Tok::Int(n) => format!("the number {n}"),
            Tok::Float(n) => format!("the number {n}"),
            Tok::Regex { .. } => "a regular expression".into(),
            Tok::Words(_) => "a %w list".into(),
            Tok::Arrow => "`=>`".into(),
            Tok::Comma => "`,`".into(),
            Tok::Semicolon => "`;`".into(),
            Tok::LParen => "`(`".into(),
            Tok::RParen => "`)`".into(),
            Tok::LBracket => "`[`".into(),
            Tok::RBracket => "`]`".into(),
            Tok::LBrace => "`{`".into(),
            Tok::RBrace => "`}`".into(),
            Tok::Newline => "the end of the line".into(),
            Tok::Eof => "the end of the file".into(),
        }
    }
}

/// A token and where it starts; `spaced` says whether whitespace came before it, which is
/// how Ruby tells `f (x)` from `f(x)` and a call's block from a hash argument.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    /// The token.
    pub tok: Tok,
    /// Where it starts.
    pub at: Pos,
    /// Whether whitespace (or a line start) precedes it.
    pub spaced: bool,
}

/// The tokens of `text`, ending with [`Tok::Eof`], and warnings about literals Ruby reads in
/// a surprising way.
pub fn tokenize(text: &str) -> Result<(Vec<Token>, Vec<ConvertWarning>), ConvertError> {
    let mut lexer = Lexer {
        chars: text.chars().collect(),
        index: 0,
        line: 1,
        column: 1,
        tokens: Vec::new(),
        warnings: Vec::new(),
        heredocs: Vec::new(),
    };
    lexer.run()?;
    Ok((lexer.tokens, lexer.warnings))
}

/// A heredoc whose body starts on the line after its `<<ID`.
struct PendingHeredoc {
    /// The index of its [`Tok::Str`] in the token list, filled in when the body is read.
    token: usize,
    terminator: String,
    /// `<<-` and `<<~` allow an indented terminator.
    indented_end: bool,
    /// `<<~` strips the body's common indentation.
    squiggly: bool,
    /// `<<-'ID'`: no escapes and no interpolation.
    literal: bool,
    at: Pos,
}

struct Lexer {
    chars: Vec<char>,
    index: usize,
    line: usize,
    column: usize,
    tokens: Vec<Token>,
    warnings: Vec<ConvertWarning>,
    heredocs: Vec<PendingHeredoc>,
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

impl Lexer {
    fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            column: self.column,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.index).copied()
    }

    fn peek_at(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.index + ahead).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.chars.get(self.index).copied()?;
        self.index += 1;
        if c == '\n' {
            self.line += 1;
            self.column = 1;
        } else {
            self.column += 1;
        }
        Some(c)
    }

    fn at_line_start(&self) -> bool {
        self.index == 0 || self.chars.get(self.index - 1) == Some(&'\n')
    }

    fn push(&mut self, tok: Tok, at: Pos, spaced: bool) {
        self.tokens.push(Token { tok, at, spaced });
    }

    fn syntax(at: Pos, reason: impl Into<String>) -> ConvertError {
        ConvertError::new(ConvertErrorKind::Syntax, at, reason)
    }

    fn run(&mut self) -> Result<(), ConvertError> {
        let mut spaced = true;
        while let Some(c) = self.peek() {
            let at = self.pos();
            match c {
                ' ' | '\t' | '\r' => {
                    self.bump();
                    spaced = true;
                    continue;
                }
                '\\' if self.peek_at(1) == Some('\n') => {
                    // A continued line: the statement goes on.
                    self.bump();
                    self.bump();
                    spaced = true;
                    continue;
                }
                '\\' if self.peek_at(1) == Some('\r') && self.peek_at(2) == Some('\n') => {
                    self.bump();
                    self.bump();
                    self.bump();
                    spaced = true;
                    continue;
                }
                // A byte-order mark some editors write: not part of the program.
                '\u{feff}' if self.index == 0 => {
                    self.index += 1;
                    continue;
                }
                '#' => {
                    while self.peek().is_some_and(|c| c != '\n') {
                        self.bump();
                    }
                    continue;
                }
                '=' if self.at_line_start() && self.starts_with("=begin") => {
                    self.block_comment(at)?;
                    spaced = true;
                    continue;
                }
                '\n' => {
                    self.bump();
                    self.push(Tok::Newline, at, spaced);
                    self.read_heredoc_bodies()?;
                    spaced = true;
                    continue;
                }
                _ => {}
            }
            let tok = self.token(c, at)?;
            self.push(tok, at, spaced);
            spaced = false;
        }
        if let Some(heredoc) = self.heredocs.first() {
            return Err(Self::syntax(
                heredoc.at,
                format!("the heredoc ending in {} has no body", heredoc.terminator),
            ));
        }
        let at = self.pos();
        self.push(Tok::Eof, at, spaced);
        Ok(())
    }

    fn starts_with(&self, word: &str) -> bool {
        word.chars()
            .enumerate()
            .all(|(i, c)| self.peek_at(i) == Some(c))
    }

    /// `=begin` ... `=end`, each at the start of a line.
    fn block_comment(&mut self, at: Pos) -> Result<(), ConvertError> {
        loop {
            while self.peek().is_some_and(|c| c != '\n') {
                self.bump();
            }
            if self.bump().is_none() {
                return Err(Self::syntax(at, "=begin without =end"));
            }
            if self.starts_with("=end") {
                while self.peek().is_some_and(|c| c != '\n') {
                    self.bump();
                }
                return Ok(());
            }
        }
    }

    fn token(&mut self, c: char, at: Pos) -> Result<Tok, ConvertError> {
        let next = self.peek_at(1);
        Ok(match c {
            '\'' => {
                self.bump();
                Tok::Str(self.single_quoted(at)?)
            }
            '"' => {
                self.bump();
                Tok::Str(self.double_quoted(at, '"')?)
            }
            ':' if next == Some('"') => {
                self.bump();
                self.bump();
                Tok::Symbol(self.double_quoted(at, '"')?)
            }
            ':' if next == Some('\'') => {
                self.bump();
                self.bump();
                Tok::Symbol(self.single_quoted(at)?)
            }
            ':' if next.is_some_and(is_ident_start) => {
                self.bump();
                let mut name = self.ident();
                // Ruby allows `:valid?`, `:save!` and `:name=` as symbols.
                if let Some(end @ ('?' | '!' | '=')) = self.peek() {
                    if !(end == '=' && self.peek_at(1) == Some('>')) {
                        self.bump();
                        name.push(end);
                    }
                }
                Tok::Symbol(name)
            }
            '=' if next == Some('>') => {
                self.bump();
                self.bump();
                Tok::Arrow
            }
            '=' => return Err(ConvertError::outside(at, "an assignment (`=`)")),
            ',' => self.single(Tok::Comma),
            ';' => self.single(Tok::Semicolon),
            '(' => self.single(Tok::LParen),
            ')' => self.single(Tok::RParen),
            '[' => self.single(Tok::LBracket),
            ']' => self.single(Tok::RBracket),
            '{' => self.single(Tok::LBrace),
            '}' => self.single(Tok::RBrace),
            '/' => {
                self.bump();
                self.regex(at)?
            }
            '%' if matches!(next, Some('w' | 'W' | 'i' | 'I')) => {
                self.bump();
                self.bump();
                self.words(at)?
            }
            '<' if next == Some('<') => self.heredoc(at)?,
            '-' if next.is_some_and(|c| c.is_ascii_digit()) => {
                self.bump();
                self.number(at, true)?
            }
            c if c.is_ascii_digit() => self.number(at, false)?,
            c if is_ident_start(c) => {
                let mut name = self.ident();
                if let Some(end @ ('?' | '!')) = self.peek() {
                    self.bump();
                    name.push(end);
                }
                if self.peek() == Some(':') && self.peek_at(1) != Some(':') {
                    self.bump();
                    Tok::Label(name)
                } else {
                    Tok::Ident(name)
                }
            }
            '@' | '$' => return Err(ConvertError::outside(at, "a variable")),
            '.' => return Err(ConvertError::outside(at, "a method call with `.`")),
            other => return Err(ConvertError::outside(at, format!("`{other}`"))),
        })
    }

    fn single(&mut self, tok: Tok) -> Tok {
        self.bump();
        tok
    }

    fn ident(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek().filter(|c| is_ident_char(*c)) {
            self.bump();
            name.push(c);
        }
        name
    }

    fn single_quoted(&mut self, at: Pos) -> Result<String, ConvertError> {
        let mut text = String::new();
        loop {
            match self.bump() {
                None => return Err(Self::syntax(at, "this string is not closed")),
                Some('\'') => return Ok(text),
                Some('\\') => match self.peek() {
                    Some(c @ ('\\' | '\'')) => {
                        self.bump();
                        text.push(c);
                    }
                    _ => text.push('\\'),
                },
                Some(c) => text.push(c),
            }
        }
    }

    /// A double-quoted string (or symbol) up to `close`, with Ruby's escapes.
    fn double_quoted(&mut self, at: Pos, close: char) -> Result<String, ConvertError> {
        let mut text = String::new();
        loop {
            let here = self.pos();
            match self.bump() {
                None => return Err(Self::syntax(at, "this string is not closed")),
                Some(c) if c == close => return Ok(text),
                Some('#') if matches!(self.peek(), Some('{' | '@' | '$')) => {
                    return Err(ConvertError::outside(
                        here,
                        "string interpolation (`#{...}`)",
                    ))
                }
                Some('\\') => self.escape(here, &mut text)?,
                Some(c) => text.push(c),
            }
        }
    }

    /// The escape after a backslash in a double-quoted string, as Ruby reads it.
    fn escape(&mut self, at: Pos, text: &mut String) -> Result<(), ConvertError> {
        let Some(c) = self.bump() else {
            return Err(Self::syntax(at, "this string is not closed"));
        };
        let decoded = match c {
            'n' => '\n',
            't' => '\t',
            'r' => '\r',
            's' => ' ',
            '0' => '\0',
            'e' => '\u{1b}',
            'a' => '\u{7}',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'v' => '\u{b}',
            // A backslash before a line end joins the lines.
            '\n' => return Ok(()),
            'u' => return self.unicode_escape(at, text),
            'x' => {
                let mut value = 0u32;
                let mut digits = 0;
                while let Some(d) = self
                    .peek()
                    .and_then(|c| c.to_digit(16))
                    .filter(|_| digits < 2)
                {
                    self.bump();
                    value = value * 16 + d;
                    digits += 1;
                }
                match char::from_u32(value).filter(|_| digits > 0 && value < 0x80) {
                    Some(c) => c,
                    None => return Err(ConvertError::outside(at, "this \\x escape")),
                }
            }
            '\\' | '"' | '\'' | '#' => c,
            other => {
                // Ruby drops the backslash of an escape it does not know, so "^\w+$" is the
                // regex "^w+$": what MCollective used, but rarely what the author meant.
                self.warnings.push(ConvertWarning::new(
                    at,
                    format!(
                        "\"\\{other}\" in a double-quoted string is {other:?} in Ruby (the \
                         backslash is dropped, as MCollective read it); use single quotes or \
                         a /regex/ to keep it"
                    ),
                ));
                other
            }
        };
        text.push(decoded);
        Ok(())
    }

    fn unicode_escape(&mut self, at: Pos, text: &mut String) -> Result<(), ConvertError> {
        let braced = self.peek() == Some('{');
        if braced {
            self.bump();
        }
        let mut value = 0u32;
        let mut digits = 0;
        while let Some(d) = self.peek().and_then(|c| c.to_digit(16)) {
            if !braced && digits == 4 {
                break;
            }
            self.bump();
            value = value.saturating_mul(16).saturating_add(d);
            digits += 1;
        }
        if braced && self.bump() != Some('}') {
            return Err(ConvertError::outside(at, "this \\u{...} escape"));
        }
        match char::from_u32(value).filter(|_| digits > 0 && (braced || digits == 4)) {
            Some(c) => {
                text.push(c);
                Ok(())
            }
            None => Err(Self::syntax(at, "this \\u escape is not a character")),
        }
    }

    fn regex(&mut self, at: Pos) -> Result<Tok, ConvertError> {
        let mut source = String::new();
        loop {
            let here = self.pos();
            match self.bump() {
                None | Some('\n') => {
                    return Err(Self::syntax(at, "this regular expression is not closed"))
                }
                Some('/') => break,
                Some('#') if self.peek() == Some('{') => {
                    return Err(ConvertError::outside(
                        here,
                        "interpolation in a regular expression",
                    ))
                }
                Some('\\') => match self.bump() {
                    Some('/') => source.push('/'),
                    Some(c) => {
                        source.push('\\');
                        source.push(c);
                    }
                    None => return Err(Self::syntax(at, "this regular expression is not closed")),
                },
                Some(c) => source.push(c),
            }
        }
        let mut flags = String::new();
        while let Some(c) = self.peek().filter(char::is_ascii_alphabetic) {
            self.bump();
            flags.push(c);
        }
        Ok(Tok::Regex { source, flags })
    }

    /// `%w[a b]` and its relatives, after the `%w`.
    fn words(&mut self, at: Pos) -> Result<Tok, ConvertError> {
        let open = match self.bump() {
            Some(c) if !c.is_alphanumeric() && !c.is_whitespace() => c,
            _ => return Err(ConvertError::outside(at, "this % literal")),
        };
        let close = match open {
            '[' => ']',
            '(' => ')',
            '{' => '}',
            '<' => '>',
            other => other,
        };
        let mut words = Vec::new();
        let mut word = String::new();
        let mut depth = 0;
        loop {
            match self.bump() {
                None => return Err(Self::syntax(at, "this %w list is not closed")),
                Some(c) if c == close && depth == 0 => break,
                Some('#') if self.peek() == Some('{') => {
                    return Err(ConvertError::outside(at, "interpolation in a %W list"))
                }
                Some(c) if c.is_whitespace() => {
                    if !word.is_empty() {
                        words.push(std::mem::take(&mut word));
                    }
                }
                Some('\\') => match self.bump() {
                    Some(c) => word.push(c),
                    None => return Err(Self::syntax(at, "this %w list is not closed")),
                },
                Some(c) => {
                    if c == open && open != close {
                        depth += 1;
                    } else if c == close {
                        depth -= 1;
                    }
                    word.push(c);
                }
            }
        }
        if !word.is_empty() {
            words.push(word);
        }
        Ok(Tok::Words(words))
    }

    fn number(&mut self, at: Pos, negative: bool) -> Result<Tok, ConvertError> {
        let mut digits = String::new();
        if negative {
            digits.push('-');
        }
        let mut float = false;
        let mut exponent = false;
        loop {
            let next = self.peek_at(1);
            let digit_next = next.is_some_and(|c| c.is_ascii_digit());
            match self.peek() {
                Some(c) if c.is_ascii_digit() => digits.push(c),
                // Ruby's digit separator: 1_000.
                Some('_') if digit_next => {}
                Some('.') if !float && digit_next => {
                    float = true;
                    digits.push('.');
                }
                Some(c @ ('e' | 'E')) if !exponent => {
                    let signed = matches!(next, Some('-' | '+'))
                        && self.peek_at(2).is_some_and(|c| c.is_ascii_digit());
                    if !digit_next && !signed {
                        return Err(ConvertError::outside(
                            at,
                            "this number (only decimal integers and floats are)",
                        ));
                    }
                    float = true;
                    exponent = true;
                    digits.push(c);
                    if signed {
                        self.bump();
                        digits.extend(next);
                    }
                }
                Some(c) if is_ident_char(c) || c == '.' => {
                    return Err(ConvertError::outside(
                        at,
                        "this number (only decimal integers and floats are)",
                    ))
                }
                _ => break,
            }
            self.bump();
        }
        let unsigned = digits.trim_start_matches('-');
        if !float && unsigned.len() > 1 && unsigned.starts_with('0') {
            // Ruby reads 010 as octal 8: refuse rather than convert a surprise.
            return Err(ConvertError::outside(at, "an octal number"));
        }
        if float {
            digits
                .parse()
                .map(Tok::Float)
                .map_err(|_| Self::syntax(at, format!("{digits} is not a number")))
        } else {
            digits
                .parse()
                .map(Tok::Int)
                .map_err(|_| Self::syntax(at, format!("{digits} is too large")))
        }
    }

    /// `<<ID`, `<<-ID`, `<<~ID` and their quoted forms: the token now, the body after the
    /// line ends (MCollective's own plugin DDLs write their `usage` text this way).
    fn heredoc(&mut self, at: Pos) -> Result<Tok, ConvertError> {
        self.bump();
        self.bump();
        let (indented_end, squiggly) = match self.peek() {
            Some('-') => (true, false),
            Some('~') => (true, true),
            _ => (false, false),
        };
        if indented_end {
            self.bump();
        }
        let (terminator, literal) = match self.peek() {
            Some(quote @ ('\'' | '"')) => {
                self.bump();
                let mut name = String::new();
                loop {
                    match self.bump() {
                        Some(c) if c == quote => break,
                        Some('\n') | None => {
                            return Err(Self::syntax(at, "this heredoc is not named"))
                        }
                        Some(c) => name.push(c),
                    }
                }
                (name, quote == '\'')
            }
            Some(c) if is_ident_start(c) => (self.ident(), false),
            _ => return Err(ConvertError::outside(at, "`<<`")),
        };
        self.heredocs.push(PendingHeredoc {
            token: self.tokens.len(),
            terminator,
            indented_end,
            squiggly,
            literal,
            at,
        });
        Ok(Tok::Str(String::new()))
    }

    /// The bodies of the heredocs opened on the line that just ended, in order.
    fn read_heredoc_bodies(&mut self) -> Result<(), ConvertError> {
        for heredoc in std::mem::take(&mut self.heredocs) {
            let mut lines = Vec::new();
            loop {
                if self.peek().is_none() {
                    return Err(Self::syntax(
                        heredoc.at,
                        format!("the heredoc has no {} line to end it", heredoc.terminator),
                    ));
                }
                let here = self.pos();
                let mut line = String::new();
                while let Some(c) = self.peek().filter(|c| *c != '\n') {
                    self.bump();
                    line.push(c);
                }
                self.bump();
                // Lines of a file written on Windows end in \r\n.
                if line.ends_with('\r') {
                    line.pop();
                }
                let end = if heredoc.indented_end {
                    line.trim()
                } else {
                    line.as_str()
                };
                if end == heredoc.terminator {
                    break;
                }
                // Escapes and interpolation in a heredoc are read like a double-quoted
                // string's; the subset keeps its bodies plain text instead.
                if !heredoc.literal && (line.contains("#{") || line.contains('\\')) {
                    return Err(ConvertError::outside(
                        here,
                        "interpolation or an escape in a heredoc",
                    ));
                }
                lines.push(line);
            }
            if heredoc.squiggly {
                let indent = lines
                    .iter()
                    .filter(|l| !l.trim().is_empty())
                    .map(|l| l.len() - l.trim_start().len())
                    .min()
                    .unwrap_or(0);
                for line in &mut lines {
                    *line = line.chars().skip(indent).collect();
                }
            }
            let mut body = lines.join("\n");
            if !lines.is_empty() {
                body.push('\n');
            }
            if let Some(token) = self.tokens.get_mut(heredoc.token) {
                token.tok = Tok::Str(body);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(text: &str) -> Vec<Tok> {
        tokenize(text)
            .unwrap_or_else(|e| panic!("{text:?}: {e}"))
            .0
            .into_iter()
            .map(|t| t.tok)
            .collect()
    }

    fn error(text: &str) -> (usize, usize, String) {
        let e = tokenize(text).unwrap_err();
        (e.line, e.column, e.reason)
    }

    #[test]
    fn literals_decode_as_ruby_reads_them() {
        use Tok::*;
        let table: Vec<(&str, Tok)> = vec![
            (r"'^[\w\-\.]+$'", Str(r"^[\w\-\.]+$".into())),
            (r"'it\'s \\ here'", Str(r"it's \ here".into())),
            (r#""tab\there\n""#, Str("tab\there\n".into())),
            (
                r#""q\"uote \u00e9 \u{1F600} \x41""#,
                Str("q\"uote é 😀 A".into()),
            ),
            (":shellsafe", Symbol("shellsafe".into())),
            (":\"odd name\"", Symbol("odd name".into())),
            ("42", Int(42)),
            ("-7", Int(-7)),
            ("1_000", Int(1000)),
            ("2.5", Float(2.5)),
            ("1e3", Float(1000.0)),
            (
                r"/^\d+\/x$/i",
                Regex {
                    source: r"^\d+/x$".into(),
                    flags: "i".into(),
                },
            ),
            (
                "%w[a b  c]",
                Words(vec!["a".into(), "b".into(), "c".into()]),
            ),
            ("%i(x y)", Words(vec!["x".into(), "y".into()])),
            ("optional:", Label("optional".into())),
            ("=>", Arrow),
        ];
        for (text, want) in table {
            assert_eq!(toks(text), vec![want, Eof], "{text}");
        }
    }

    #[test]
    fn comments_and_continuations_are_dropped() {
        let text = "# heading\nmetadata :a, # trailing\n  \\\n  :b\n=begin\nanything\n=end\nend";
        assert_eq!(
            toks(text),
            vec![
                Tok::Newline,
                Tok::Ident("metadata".into()),
                Tok::Symbol("a".into()),
                Tok::Comma,
                Tok::Newline,
                Tok::Symbol("b".into()),
                Tok::Newline,
                Tok::Newline,
                Tok::Ident("end".into()),
                Tok::Eof,
            ]
        );
    }

    #[test]
    fn windows_line_ends_and_a_byte_order_mark_are_read() {
        assert_eq!(
            toks("\u{feff}a :b, \\\r\n :c\r\nd <<X\r\nbody\r\nX\r\n"),
            vec![
                Tok::Ident("a".into()),
                Tok::Symbol("b".into()),
                Tok::Comma,
                Tok::Symbol("c".into()),
                Tok::Newline,
                Tok::Ident("d".into()),
                Tok::Str("body\n".into()),
                Tok::Newline,
                Tok::Eof,
            ]
        );
    }

    #[test]
    fn positions_are_lines_and_columns_from_one() {
        let (tokens, _) = tokenize("a\n  :b => 'x'").unwrap();
        let at: Vec<(usize, usize)> = tokens.iter().map(|t| (t.at.line, t.at.column)).collect();
        assert_eq!(at, [(1, 1), (1, 2), (2, 3), (2, 6), (2, 9), (2, 12)]);
    }

    #[test]
    fn heredocs_are_read_after_their_line() {
        let text = "usage <<-USAGE, :x\n  Some text\n  more\n  USAGE\nend";
        assert_eq!(
            toks(text),
            vec![
                Tok::Ident("usage".into()),
                Tok::Str("  Some text\n  more\n".into()),
                Tok::Comma,
                Tok::Symbol("x".into()),
                Tok::Newline,
                Tok::Ident("end".into()),
                Tok::Eof,
            ]
        );
        assert_eq!(
            toks("x <<~EOS\n    a\n      b\n  EOS\n")[1],
            Tok::Str("a\n  b\n".into())
        );
    }

    #[test]
    fn unknown_escapes_warn_that_ruby_drops_the_backslash() {
        let (tokens, warnings) = tokenize("x \"^\\w+$\"").unwrap();
        assert_eq!(tokens[1].tok, Tok::Str("^w+$".into()));
        assert_eq!((warnings[0].line, warnings[0].column), (1, 5));
        assert!(warnings[0].message.contains("backslash is dropped"));
    }

    #[test]
    fn what_the_subset_lacks_is_refused_where_it_is() {
        let outside = "is outside the DDL subset mco converts";
        let table = [
            ("x \"a #{b}\"", 1, 6, "string interpolation"),
            ("\nname = 'x'", 2, 6, "an assignment"),
            ("x @foo", 1, 3, "a variable"),
            ("x\n  a.b", 2, 4, "a method call with `.`"),
            ("x 010", 1, 3, "an octal number"),
            ("x 0x1f", 1, 3, "this number"),
            ("x 1 + 2", 1, 5, "`+`"),
            ("x /a#{b}/", 1, 5, "interpolation in a regular expression"),
        ];
        for (text, line, column, what) in table {
            let (l, c, reason) = error(text);
            assert_eq!((l, c), (line, column), "{text}: {reason}");
            assert!(
                reason.starts_with(what) && reason.ends_with(outside),
                "{text}: {reason}"
            );
        }
        let syntax = [
            ("x 'open", 1, 3, "this string is not closed"),
            ("\n\nx \"open", 3, 3, "this string is not closed"),
            ("x /open\n", 1, 3, "this regular expression is not closed"),
            (
                "x <<-EOS\nbody\n",
                1,
                3,
                "the heredoc has no EOS line to end it",
            ),
            ("=begin\nnever ends", 1, 1, "=begin without =end"),
        ];
        for (text, line, column, want) in syntax {
            assert_eq!(error(text), (line, column, want.to_string()), "{text}");
        }
    }
}
