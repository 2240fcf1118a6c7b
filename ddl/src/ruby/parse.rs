//! The parser of the Ruby subset MCollective DDLs are written in: a file is a list of method
//! calls (`name args`, `name(args)`), each with an optional `do ... end` or `{ ... }` block of
//! further calls; arguments are literals, arrays, hashes and calls with parentheses
//! (`summary(:x)`). Trailing `key => value` and `key: value` arguments become one hash, as
//! Ruby passes them.
//!
//! Not for: knowing which calls the DSL has or what their arguments mean
//! ([`super::convert`](mod@super::convert)); tokens ([`super::lex`]).

use super::lex::{Tok, Token};
use super::{ConvertError, ConvertErrorKind, Pos};

/// A method call statement or argument: `action "x", :description => "y" do ... end`.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The method name.
    pub name: String,
    /// Where the name is.
    pub at: Pos,
    /// The arguments; trailing `key => value` pairs are one [`Value::Hash`] at the end.
    pub args: Vec<Node>,
    /// The block's calls, if the call has a block.
    pub block: Option<Vec<Call>>,
}

/// A value and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The value.
    pub value: Value,
    /// Where it starts.
    pub at: Pos,
}

/// A literal, or a call in argument position.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A string (adjacent literals joined, as Ruby joins them).
    Str(String),
    /// A symbol, by its name.
    Symbol(String),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// `true` or `false`.
    Bool(bool),
    /// `nil`.
    Nil,
    /// `[...]` or `%w[...]`.
    Array(Vec<Node>),
    /// `{...}` or trailing pairs: keys are symbols or strings, in source order.
    Hash(Vec<(Node, Node)>),
    /// `/source/flags`.
    Regex {
        /// The expression.
        source: String,
        /// Its flags.
        flags: String,
    },
    /// `name(args)`: in the DSL, an aggregate function.
    Call(Call),
}

impl Value {
    /// How the value reads in an error message.
    pub fn describe(&self) -> &'static str {
        match self {
            Value::Str(_) => "a string",
            Value::Symbol(_) => "a symbol",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Bool(_) => "a boolean",
            Value::Nil => "nil",
            Value::Array(_) => "an array",
            Value::Hash(_) => "a hash",
            Value::Regex { .. } => "a regular expression",
            Value::Call(_) => "a method call",
        }
    }
}

/// Ruby keywords: none is part of the subset except `do`, `end`, `true`, `false` and `nil`.
const KEYWORDS: &[&str] = &[
    "BEGIN", "END", "alias", "and", "begin", "break", "case", "class", "def", "defined?", "else",
    "elsif", "ensure", "for", "if", "in", "module", "next", "not", "or", "redo", "rescue", "retry",
    "return", "self", "super", "then", "undef", "unless", "until", "when", "while", "yield",
    "__FILE__", "__LINE__", "require", "load", "puts",
];

/// How deeply blocks, arrays, hashes and calls may nest: real DDLs nest three or four
/// levels, and a bound keeps a crafted file from exhausting the stack.
pub const MAX_NESTING: usize = 32;

/// What the parser reads when the tokens run out, whatever list it was given.
static END_OF_INPUT: Token = Token {
    tok: Tok::Eof,
    at: Pos { line: 1, column: 1 },
    spaced: true,
};

/// The calls of a whole file.
pub fn parse(tokens: &[Token]) -> Result<Vec<Call>, ConvertError> {
    let mut parser = Parser {
        tokens,
        index: 0,
        depth: 0,
    };
    parser.statements(None)
}

struct Parser<'a> {
    tokens: &'a [Token],
    index: usize,
    /// How many blocks, arrays, hashes and calls enclose the current token.
    depth: usize,
}

/// What closes the statements being read.
#[derive(Clone, Copy, PartialEq)]
enum Closer {
    /// `end`, of a `do` block that started at the position.
    End(Pos),
    /// `}`, of a brace block.
    Brace(Pos),
}

fn syntax(at: Pos, reason: impl Into<String>) -> ConvertError {
    ConvertError::new(ConvertErrorKind::Syntax, at, reason)
}

impl<'a> Parser<'a> {
    fn token(&self) -> &'a Token {
        // The lexer ends every list with Eof and the parser never moves past it.
        self.tokens
            .get(self.index)
            .or(self.tokens.last())
            .unwrap_or(&END_OF_INPUT)
    }

    /// Runs `read` one nesting level deeper, refusing to go beyond [`MAX_NESTING`].
    fn nested<T>(
        &mut self,
        at: Pos,
        read: impl FnOnce(&mut Self) -> Result<T, ConvertError>,
    ) -> Result<T, ConvertError> {
        if self.depth >= MAX_NESTING {
            return Err(ConvertError::outside(
                at,
                format!("nesting deeper than {MAX_NESTING} levels"),
            ));
        }
        self.depth += 1;
        let result = read(self);
        self.depth -= 1;
        result
    }

    fn tok(&self) -> &'a Tok {
        &self.token().tok
    }

    fn at(&self) -> Pos {
        self.token().at
    }

    fn advance(&mut self) -> &'a Token {
        let token = self.token();
        if token.tok != Tok::Eof {
            self.index += 1;
        }
        token
    }

    fn skip_newlines(&mut self) {
        while matches!(self.tok(), Tok::Newline) {
            self.advance();
        }
    }

    fn is_ident(&self, word: &str) -> bool {
        matches!(self.tok(), Tok::Ident(name) if name == word)
    }

    /// Calls up to `closer` (consumed) or the end of the file.
    fn statements(&mut self, closer: Option<Closer>) -> Result<Vec<Call>, ConvertError> {
        let mut calls = Vec::new();
        loop {
            while matches!(self.tok(), Tok::Newline | Tok::Semicolon) {
                self.advance();
            }
            match (self.tok(), closer) {
                (Tok::Eof, None) => return Ok(calls),
                (Tok::Eof, Some(Closer::End(at))) => {
                    return Err(syntax(at, "this `do` has no `end`"))
                }
                (Tok::Eof, Some(Closer::Brace(at))) => {
                    return Err(syntax(at, "this `{` has no `}`"))
                }
                (Tok::Ident(word), Some(Closer::End(_))) if word == "end" => {
                    self.advance();
                    return Ok(calls);
                }
                (Tok::RBrace, Some(Closer::Brace(_))) => {
                    self.advance();
                    return Ok(calls);
                }
                _ => {}
            }
            calls.push(self.statement()?);
            match self.tok() {
                Tok::Newline | Tok::Semicolon | Tok::Eof => {}
                Tok::RBrace if matches!(closer, Some(Closer::Brace(_))) => {}
                Tok::Ident(word) if word == "end" => {}
                other => {
                    return Err(syntax(
                        self.at(),
                        format!(
                            "expected the end of the statement, found {}",
                            other.describe()
                        ),
                    ))
                }
            }
        }
    }

    fn statement(&mut self) -> Result<Call, ConvertError> {
        let token = self.advance();
        let name = match &token.tok {
            Tok::Ident(name) if KEYWORDS.contains(&name.as_str()) => {
                return Err(ConvertError::outside(token.at, format!("`{name}`")))
            }
            Tok::Ident(name) if name == "end" || name == "do" => {
                return Err(syntax(
                    token.at,
                    format!("`{name}` without a block to close"),
                ))
            }
            Tok::Ident(name) if name.starts_with(|c: char| c.is_ascii_uppercase()) => {
                return Err(ConvertError::outside(
                    token.at,
                    format!("the constant `{name}`"),
                ))
            }
            Tok::Ident(name) => name.clone(),
            other => {
                return Err(syntax(
                    token.at,
                    format!(
                        "expected a DDL statement (a method call), found {}",
                        other.describe()
                    ),
                ))
            }
        };
        let mut call = Call {
            name,
            at: token.at,
            args: Vec::new(),
            block: None,
        };
        let next = self.token();
        match &next.tok {
            Tok::LParen if !next.spaced => {
                self.advance();
                call.args = self.arguments(true)?;
            }
            Tok::Newline | Tok::Semicolon | Tok::Eof | Tok::RBrace | Tok::LBrace => {}
            Tok::Ident(word) if word == "do" || word == "end" => {}
            _ => call.args = self.arguments(false)?,
        }
        let next = self.token();
        if self.is_ident("do") {
            self.advance();
            call.block = Some(self.nested(next.at, |p| p.statements(Some(Closer::End(next.at))))?);
        } else if next.tok == Tok::LBrace {
            self.advance();
            call.block =
                Some(self.nested(next.at, |p| p.statements(Some(Closer::Brace(next.at))))?);
        }
        Ok(call)
    }

    /// Arguments up to `)` (consumed) when `parenthesised`, else up to the end of the
    /// statement or its block; a line end after `,` or `=>` continues them.
    fn arguments(&mut self, parenthesised: bool) -> Result<Vec<Node>, ConvertError> {
        let mut args = Vec::new();
        let mut pairs: Vec<(Node, Node)> = Vec::new();
        let mut pairs_at = None;
        if parenthesised {
            self.skip_newlines();
            if self.tok() == &Tok::RParen {
                self.advance();
                return Ok(args);
            }
        }
        loop {
            let at = self.at();
            if let Tok::Label(key) = self.tok() {
                self.advance();
                self.skip_newlines();
                let key = Node {
                    value: Value::Symbol(key.clone()),
                    at,
                };
                pairs.push((key, self.value()?));
                pairs_at.get_or_insert(at);
            } else {
                let value = self.value()?;
                if self.tok() == &Tok::Arrow {
                    self.advance();
                    self.skip_newlines();
                    pairs.push((value, self.value()?));
                    pairs_at.get_or_insert(at);
                } else if !pairs.is_empty() {
                    return Err(syntax(
                        at,
                        "a positional argument after `key => value` ones",
                    ));
                } else {
                    args.push(value);
                }
            }
            if self.tok() != &Tok::Comma {
                break;
            }
            self.advance();
            self.skip_newlines();
            // A trailing comma before `)`.
            if parenthesised && self.tok() == &Tok::RParen {
                break;
            }
        }
        if let Some(at) = pairs_at {
            args.push(Node {
                value: Value::Hash(pairs),
                at,
            });
        }
        if parenthesised {
            self.skip_newlines();
            match self.advance() {
                Token {
                    tok: Tok::RParen, ..
                } => {}
                other => {
                    return Err(syntax(
                        other.at,
                        format!("expected `)`, found {}", other.tok.describe()),
                    ))
                }
            }
        }
        Ok(args)
    }

    fn value(&mut self) -> Result<Node, ConvertError> {
        let token = self.advance();
        let at = token.at;
        let value = match &token.tok {
            Tok::Str(text) => {
                // "a" "b" is "ab" in Ruby, also across a continued line.
                let mut text = text.clone();
                while let Tok::Str(more) = self.tok() {
                    text.push_str(more);
                    self.advance();
                }
                Value::Str(text)
            }
            Tok::Symbol(name) => Value::Symbol(name.clone()),
            Tok::Int(n) => Value::Int(*n),
            Tok::Float(n) => Value::Float(*n),
            Tok::Regex { source, flags } => Value::Regex {
                source: source.clone(),
                flags: flags.clone(),
            },
            Tok::Words(words) => Value::Array(
                words
                    .iter()
                    .map(|w| Node {
                        value: Value::Str(w.clone()),
                        at,
                    })
                    .collect(),
            ),
            Tok::LBracket => Value::Array(self.nested(at, Self::array)?),
            Tok::LBrace => Value::Hash(self.nested(at, |p| p.hash(at))?),
            Tok::Ident(word) if word == "true" => Value::Bool(true),
            Tok::Ident(word) if word == "false" => Value::Bool(false),
            Tok::Ident(word) if word == "nil" => Value::Nil,
            Tok::Ident(name) if KEYWORDS.contains(&name.as_str()) => {
                return Err(ConvertError::outside(at, format!("`{name}`")))
            }
            Tok::Ident(name)
                if self.tok() == &Tok::LParen
                    && !self.token().spaced
                    && !name.starts_with(|c: char| c.is_ascii_uppercase()) =>
            {
                self.advance();
                Value::Call(Call {
                    name: name.clone(),
                    at,
                    args: self.nested(at, |p| p.arguments(true))?,
                    block: None,
                })
            }
            Tok::Ident(name) => {
                return Err(ConvertError::outside(
                    at,
                    format!("`{name}` (a variable, constant or call without parentheses)"),
                ))
            }
            other => {
                return Err(syntax(
                    at,
                    format!("expected a value, found {}", other.describe()),
                ))
            }
        };
        Ok(Node { value, at })
    }

    /// The elements after `[`, up to `]` (consumed).
    fn array(&mut self) -> Result<Vec<Node>, ConvertError> {
        let mut items = Vec::new();
        loop {
            self.skip_newlines();
            if self.tok() == &Tok::RBracket {
                self.advance();
                return Ok(items);
            }
            items.push(self.value()?);
            self.element_end(&Tok::RBracket)?;
        }
    }

    /// After an element of an array or hash: `,` (consumed) or `close` (left to the loop).
    fn element_end(&mut self, close: &Tok) -> Result<(), ConvertError> {
        self.skip_newlines();
        match self.tok() {
            Tok::Comma => {
                self.advance();
                Ok(())
            }
            tok if tok == close => Ok(()),
            other => Err(syntax(
                self.at(),
                format!(
                    "expected `,` or {}, found {}",
                    close.describe(),
                    other.describe()
                ),
            )),
        }
    }

    /// The pairs after `{`, up to `}` (consumed).
    fn hash(&mut self, open: Pos) -> Result<Vec<(Node, Node)>, ConvertError> {
        let mut pairs = Vec::new();
        loop {
            self.skip_newlines();
            if self.tok() == &Tok::RBrace {
                self.advance();
                return Ok(pairs);
            }
            if self.tok() == &Tok::Eof {
                return Err(syntax(open, "this `{` has no `}`"));
            }
            let at = self.at();
            let key = if let Tok::Label(key) = self.tok() {
                self.advance();
                Node {
                    value: Value::Symbol(key.clone()),
                    at,
                }
            } else {
                let key = self.value()?;
                self.skip_newlines();
                if self.tok() != &Tok::Arrow {
                    return Err(syntax(
                        self.at(),
                        format!("expected `=>`, found {}", self.tok().describe()),
                    ));
                }
                self.advance();
                key
            };
            self.skip_newlines();
            pairs.push((key, self.value()?));
            self.element_end(&Tok::RBrace)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ruby::lex::tokenize;

    fn calls(text: &str) -> Vec<Call> {
        let (tokens, _) = tokenize(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        parse(&tokens).unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    fn error(text: &str) -> (usize, usize, String) {
        let (tokens, _) = tokenize(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        let e = parse(&tokens).unwrap_err();
        (e.line, e.column, e.reason)
    }

    fn values(call: &Call) -> Vec<&Value> {
        call.args.iter().map(|n| &n.value).collect()
    }

    #[test]
    fn bare_and_parenthesised_calls_take_the_same_arguments() {
        let bare = calls("metadata :name => \"x\",\n   :timeout => 2");
        let parens = calls("metadata(:name => \"x\", timeout: 2)");
        let strip = |calls: &[Call]| -> Vec<(String, Value)> {
            match &calls[0].args[0].value {
                Value::Hash(pairs) => pairs
                    .iter()
                    .map(|(k, v)| (format!("{:?}", k.value), v.value.clone()))
                    .collect(),
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(strip(&bare), strip(&parens));
        assert_eq!(bare[0].args.len(), 1);
    }

    #[test]
    fn blocks_nest_with_do_end_and_braces() {
        let program = calls(
            "action \"a\", :description => \"d\" do\n  display :always\n  summarize { aggregate summary(:x) }\nend\naction 'b', description: 'e' do; end",
        );
        assert_eq!(program.len(), 2);
        let block = program[0].block.as_ref().unwrap();
        assert_eq!(block[0].name, "display");
        assert_eq!(values(&block[0]), [&Value::Symbol("always".into())]);
        let summarize = block[1].block.as_ref().unwrap();
        let Value::Call(summary) = &summarize[0].args[0].value else {
            panic!("{summarize:?}")
        };
        assert_eq!(summary.name, "summary");
        assert_eq!(
            summary.at,
            Pos {
                line: 3,
                column: 25
            }
        );
        assert_eq!(program[1].block, Some(vec![]));
    }

    #[test]
    fn arrays_hashes_and_joined_strings() {
        let program =
            calls("x [1, 2.5,\n  true, nil, %w[a b]], {:k => 'v', n: -1}, \"a\" \\\n \"b\"");
        let args = values(&program[0]);
        let Value::Array(items) = args[0] else {
            panic!()
        };
        assert_eq!(items.len(), 5);
        assert_eq!(items[3].value, Value::Nil);
        let Value::Hash(pairs) = args[1] else {
            panic!()
        };
        assert_eq!(pairs[1].0.value, Value::Symbol("n".into()));
        assert_eq!(pairs[1].1.value, Value::Int(-1));
        assert_eq!(args[2], &Value::Str("ab".into()));
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = format!("x {}1{}", "[".repeat(MAX_NESTING), "]".repeat(MAX_NESTING));
        assert_eq!(calls(&deep).len(), 1);
        let deeper = format!("x {}1{}", "[".repeat(100_000), "]".repeat(100_000));
        let (line, column, reason) = error(&deeper);
        assert_eq!((line, column), (1, 3 + MAX_NESTING));
        assert!(
            reason.starts_with("nesting deeper than 32 levels"),
            "{reason}"
        );
        let blocks = "a do\n".repeat(MAX_NESTING + 1);
        assert!(error(&blocks).2.starts_with("nesting deeper"));
        // A token list without its end is read as ending.
        assert_eq!(parse(&[]).unwrap(), vec![]);
    }

    #[test]
    fn errors_name_the_line_and_column() {
        let outside = "is outside the DDL subset mco converts";
        let table: &[(&str, usize, usize, &str)] = &[
            ("metadata :a => b", 1, 16, "`b` (a variable"),
            ("\nif true\nend", 2, 1, "`if`"),
            ("x :a => ENV", 1, 9, "`ENV`"),
            ("Puppet :x", 1, 1, "the constant `Puppet`"),
            ("x :a => puts('y')", 1, 9, "`puts`"),
        ];
        for (text, line, column, start) in table {
            let (l, c, reason) = error(text);
            assert_eq!((l, c), (*line, *column), "{text}: {reason}");
            assert!(
                reason.starts_with(start) && reason.ends_with(outside),
                "{text}: {reason}"
            );
        }
        let syntax: &[(&str, usize, usize, &str)] = &[
            (
                "action 'a' do\n  display :ok\n",
                1,
                12,
                "this `do` has no `end`",
            ),
            (
                "x :a => 1, 2",
                1,
                12,
                "a positional argument after `key => value` ones",
            ),
            ("x(1, 2\ny", 2, 1, "expected `)`, found `y`"),
            ("x [1 2]", 1, 6, "expected `,` or `]`, found the number 2"),
            ("x 1, {:a 1}", 1, 10, "expected `=>`, found the number 1"),
            (
                "x {:a => 1}",
                1,
                4,
                "expected a DDL statement (a method call), found the symbol :a",
            ),
            ("end", 1, 1, "`end` without a block to close"),
            (
                "x 1 2",
                1,
                5,
                "expected the end of the statement, found the number 2",
            ),
            (
                "'x'",
                1,
                1,
                "expected a DDL statement (a method call), found a string",
            ),
        ];
        for (text, line, column, want) in syntax {
            assert_eq!(error(text), (*line, *column, want.to_string()), "{text}");
        }
    }
}
