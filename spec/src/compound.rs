//! Compound (`-S`) filter expressions: parsing and evaluation.
//!
//! ```text
//! (country=uk and /web/) or not environment=dev
//! fstat('/etc/hosts').size>=100 and service('nginx').status=running
//! ```
//!
//! Grammar (keywords are lowercase; `&&`, `||` and `!` are accepted too):
//!
//! ```text
//! expr      := and ( "or" and )*
//! and       := unary ( "and" unary )*
//! unary     := "not" unary | "(" expr ")" | statement
//! statement := NAME "(" [STRING] ")" [ "." FIELD ] [ OP value ]   data-plugin call
//!            | FACT OP value                                      fact comparison
//!            | CLASS | "/" REGEX "/" ["i"]                         class
//! OP        := = == != =~ < > <= >=
//! ```
//!
//! Fact comparisons mean exactly what `-F` means (they are compiled into the same fact test),
//! so `-S "cpus>=4"` and `-F cpus>=4` cannot disagree. Data-plugin calls are answered by a
//! [`DataSource`] supplied by whoever evaluates (the node); a call the source cannot answer
//! (an unknown plugin, a refused or failed query) is *unknown*, not false, and unknowns
//! follow Kleene's logic ([`Expr::evaluate`]), so `not fstat('/x').present` is not made true
//! by a failure. Clients check plugin names before sending so an operator's typo is an error,
//! not an empty result. Syntax errors carry the position.
//!
//! Every node parses the expressions of every broadcast, so an expression is bounded before
//! it is parsed: at most [`MAX_COMPOUND_BYTES`] long, [`MAX_COMPOUND_DEPTH`] nested
//! parentheses and `not`s, [`MAX_COMPOUND_TERMS`] statements (which also bounds the depth of
//! `and`/`or` chains), and the filter's share of [`crate::filter::MAX_FILTER_REGEXES`]. The
//! evaluator's recursion is bounded by the same numbers.

use std::fmt;

use regex::Regex;
use serde_json::Value;

use crate::filter::{
    compile_regex, CompiledFact, FactFilter, FactOperator, FilterError, NodeView,
    MAX_FILTER_REGEXES,
};

/// The longest compound expression accepted, in bytes.
pub const MAX_COMPOUND_BYTES: usize = 4096;

/// The deepest nesting of parentheses and `not` in one expression.
pub const MAX_COMPOUND_DEPTH: usize = 32;

/// The most statements (fact comparisons, classes, data-plugin calls) in one expression.
pub const MAX_COMPOUND_TERMS: usize = 128;

/// Why a data-plugin call could not be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("data plugin {plugin}: {reason}")]
pub struct DataError {
    /// The plugin called.
    pub plugin: String,
    /// Why it gave no answer.
    pub reason: String,
}

/// Answers data-plugin calls such as `fstat('/etc/hosts')` during evaluation.
pub trait DataSource {
    /// The result of plugin `plugin` called with `query` (a JSON object of outputs), or why
    /// there is none (unknown plugin, refused query, failure, time limit).
    fn query(&self, plugin: &str, query: Option<&str>) -> Result<Value, DataError>;
}

/// A [`DataSource`] that knows no plugins: every data-plugin statement is unknown.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoData;

impl DataSource for NoData {
    fn query(&self, plugin: &str, _query: Option<&str>) -> Result<Value, DataError> {
        Err(DataError {
            plugin: plugin.to_string(),
            reason: "data plugins cannot be answered here".into(),
        })
    }
}

/// A syntax error in a compound expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("syntax error at position {position} of {expression:?}: {message}")]
pub struct CompoundError {
    /// The expression.
    pub expression: String,
    /// The character offset (0-based) where the problem was found.
    pub position: usize,
    /// What was expected or wrong.
    pub message: String,
}

/// A parsed compound expression.
#[derive(Debug, Clone)]
pub enum Expr {
    /// Both sides must hold.
    And(Box<Expr>, Box<Expr>),
    /// Either side must hold.
    Or(Box<Expr>, Box<Expr>),
    /// The inner expression must not hold.
    Not(Box<Expr>),
    /// A fact comparison.
    Fact(CompiledFact),
    /// The node has a class equal to the name.
    Class(String),
    /// The node has a class matching the regex.
    ClassRegex(Regex),
    /// A data-plugin call, with an optional field and comparison.
    Data(DataCall),
}

/// A data-plugin call in a compound expression: `plugin('query').field OP value`.
#[derive(Debug, Clone)]
pub struct DataCall {
    /// The plugin name.
    pub plugin: String,
    /// The argument, if any.
    pub query: Option<String>,
    /// The output field and comparison; without one the call holds when the plugin answered.
    pub test: Option<CompiledFact>,
}

impl Expr {
    /// Parses one compound expression (with at most [`MAX_FILTER_REGEXES`] regexes).
    pub fn parse(expression: &str) -> Result<Expr, CompoundError> {
        let mut budget = MAX_FILTER_REGEXES;
        Expr::parse_within(expression, &mut budget)
    }

    /// Parses one compound expression that may compile at most `regex_budget` regexes, and
    /// takes the ones it compiles off the budget (a filter's expressions share one budget).
    pub fn parse_within(expression: &str, regex_budget: &mut usize) -> Result<Expr, CompoundError> {
        if expression.len() > MAX_COMPOUND_BYTES {
            return Err(CompoundError {
                expression: expression.chars().take(64).collect::<String>() + "...",
                position: MAX_COMPOUND_BYTES,
                message: format!(
                    "the expression is {} bytes long, more than the {MAX_COMPOUND_BYTES} allowed",
                    expression.len()
                ),
            });
        }
        let tokens = tokenize(expression)?;
        let mut parser = Parser {
            expression,
            tokens,
            next: 0,
            depth: 0,
            terms: 0,
            regex_budget,
        };
        let expr = parser.or()?;
        if let Some(token) = parser.peek() {
            return Err(parser.error(token.position, format!("unexpected {}", token.kind)));
        }
        Ok(expr)
    }

    /// The names of the data plugins the expression calls, so a client can check them.
    pub fn data_plugins(&self) -> Vec<&str> {
        let mut names = Vec::new();
        self.visit(&mut |e| {
            if let Expr::Data(call) = e {
                names.push(call.plugin.as_str());
            }
        });
        names
    }

    fn visit<'a>(&'a self, f: &mut dyn FnMut(&'a Expr)) {
        f(self);
        match self {
            Expr::And(a, b) | Expr::Or(a, b) => {
                a.visit(f);
                b.visit(f);
            }
            Expr::Not(inner) => inner.visit(f),
            _ => {}
        }
    }

    /// Whether the expression holds for a node; an expression whose value depends on a
    /// data-plugin call that could not be answered does not hold.
    pub fn matches(&self, node: &NodeView<'_>, data: &dyn DataSource) -> bool {
        self.evaluate(node, data).unwrap_or(false)
    }

    /// The expression's value for a node, or the failed data-plugin call it depends on.
    /// Unknowns follow Kleene's logic: `false and unknown` is false, `true or unknown` is
    /// true, anything else with an unknown is unknown (including `not unknown`).
    pub fn evaluate(&self, node: &NodeView<'_>, data: &dyn DataSource) -> Result<bool, DataError> {
        match self {
            Expr::And(a, b) => match a.evaluate(node, data) {
                Ok(false) => Ok(false),
                Ok(true) => b.evaluate(node, data),
                Err(e) => match b.evaluate(node, data) {
                    Ok(false) => Ok(false),
                    _ => Err(e),
                },
            },
            Expr::Or(a, b) => match a.evaluate(node, data) {
                Ok(true) => Ok(true),
                Ok(false) => b.evaluate(node, data),
                Err(e) => match b.evaluate(node, data) {
                    Ok(true) => Ok(true),
                    _ => Err(e),
                },
            },
            Expr::Not(inner) => inner.evaluate(node, data).map(|v| !v),
            Expr::Fact(fact) => Ok(fact.matches(node.facts)),
            Expr::Class(name) => Ok(node.classes.iter().any(|c| c == name)),
            Expr::ClassRegex(re) => Ok(node.classes.iter().any(|c| re.is_match(c))),
            Expr::Data(call) => {
                let result = data.query(&call.plugin, call.query.as_deref())?;
                Ok(match &call.test {
                    Some(test) => test.matches(&result),
                    None => !matches!(result, Value::Null | Value::Bool(false)),
                })
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum TokenKind {
    Open,
    Close,
    And,
    Or,
    Not,
    Dot,
    Op(FactOperator),
    Word(String),
    Quoted(String),
    Regex(String, bool),
}

impl fmt::Display for TokenKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenKind::Open => f.write_str("'('"),
            TokenKind::Close => f.write_str("')'"),
            TokenKind::And => f.write_str("'and'"),
            TokenKind::Or => f.write_str("'or'"),
            TokenKind::Not => f.write_str("'not'"),
            TokenKind::Dot => f.write_str("'.'"),
            TokenKind::Op(op) => write!(f, "operator '{op}'"),
            TokenKind::Word(w) => write!(f, "'{w}'"),
            TokenKind::Quoted(s) => write!(f, "string {s:?}"),
            TokenKind::Regex(r, _) => write!(f, "regex /{r}/"),
        }
    }
}

#[derive(Debug, Clone)]
struct Token {
    kind: TokenKind,
    position: usize,
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | ':' | '.' | '@')
}

fn tokenize(expression: &str) -> Result<Vec<Token>, CompoundError> {
    let error = |position: usize, message: String| CompoundError {
        expression: expression.to_string(),
        position,
        message,
    };
    let chars: Vec<(usize, char)> = expression.char_indices().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    // After an operator the next token is a value: a bare value may hold characters that are
    // otherwise syntax (`path=/a/b`, `v=1.2`), so it is read up to whitespace or ')'.
    let mut expect_value = false;
    while i < chars.len() {
        let (position, c) = chars[i];
        let next = chars.get(i + 1).map(|(_, c)| *c);
        let push = |tokens: &mut Vec<Token>, kind| tokens.push(Token { kind, position });
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if expect_value {
            expect_value = false;
            if c == '\'' || c == '"' {
                let (text, end) = quoted(&chars, i)
                    .ok_or_else(|| error(position, "unterminated string".into()))?;
                push(&mut tokens, TokenKind::Quoted(text));
                i = end;
            } else if c == '/' {
                let (pattern, insensitive, end) = regex_literal(&chars, i)
                    .ok_or_else(|| error(position, "unterminated regex".into()))?;
                push(&mut tokens, TokenKind::Regex(pattern, insensitive));
                i = end;
            } else {
                let start = i;
                while i < chars.len() && !chars[i].1.is_whitespace() && chars[i].1 != ')' {
                    i += 1;
                }
                let text: String = chars[start..i].iter().map(|(_, c)| *c).collect();
                push(&mut tokens, TokenKind::Word(text));
            }
            continue;
        }
        let two: String = [Some(c), next].iter().flatten().collect();
        let operator = match two.as_str() {
            "<=" | "=<" => Some((FactOperator::Le, 2)),
            ">=" | "=>" => Some((FactOperator::Ge, 2)),
            "==" => Some((FactOperator::Eq, 2)),
            "!=" => Some((FactOperator::Ne, 2)),
            "=~" => Some((FactOperator::Match, 2)),
            _ => match c {
                '=' => Some((FactOperator::Eq, 1)),
                '<' => Some((FactOperator::Lt, 1)),
                '>' => Some((FactOperator::Gt, 1)),
                _ => None,
            },
        };
        if let Some((op, len)) = operator {
            push(&mut tokens, TokenKind::Op(op));
            expect_value = true;
            i += len;
            continue;
        }
        match c {
            '(' => push(&mut tokens, TokenKind::Open),
            ')' => push(&mut tokens, TokenKind::Close),
            '!' => push(&mut tokens, TokenKind::Not),
            '.' => push(&mut tokens, TokenKind::Dot),
            '&' if next == Some('&') => {
                push(&mut tokens, TokenKind::And);
                i += 1;
            }
            '|' if next == Some('|') => {
                push(&mut tokens, TokenKind::Or);
                i += 1;
            }
            '\'' | '"' => {
                let (text, end) = quoted(&chars, i)
                    .ok_or_else(|| error(position, "unterminated string".into()))?;
                push(&mut tokens, TokenKind::Quoted(text));
                i = end;
                continue;
            }
            '/' => {
                let (pattern, insensitive, end) = regex_literal(&chars, i)
                    .ok_or_else(|| error(position, "unterminated regex".into()))?;
                push(&mut tokens, TokenKind::Regex(pattern, insensitive));
                i = end;
                continue;
            }
            c if is_word_char(c) && c != '.' => {
                let start = i;
                // A word may contain dots (fact paths), but a dot right after ')' is the
                // field accessor and is tokenized on its own above.
                while i < chars.len() && is_word_char(chars[i].1) {
                    i += 1;
                }
                let text: String = chars[start..i].iter().map(|(_, c)| *c).collect();
                let kind = match text.as_str() {
                    "and" => TokenKind::And,
                    "or" => TokenKind::Or,
                    "not" => TokenKind::Not,
                    _ => TokenKind::Word(text),
                };
                push(&mut tokens, kind);
                continue;
            }
            other => return Err(error(position, format!("unexpected character {other:?}"))),
        }
        i += 1;
    }
    if expect_value {
        return Err(error(
            expression.len(),
            "expected a value after the operator".into(),
        ));
    }
    Ok(tokens)
}

/// Reads a quoted string starting at `chars[start]`; returns the text and the index after it.
fn quoted(chars: &[(usize, char)], start: usize) -> Option<(String, usize)> {
    let quote = chars[start].1;
    let mut text = String::new();
    let mut i = start + 1;
    while i < chars.len() {
        match chars[i].1 {
            '\\' if i + 1 < chars.len() => {
                text.push(chars[i + 1].1);
                i += 2;
            }
            c if c == quote => return Some((text, i + 1)),
            c => {
                text.push(c);
                i += 1;
            }
        }
    }
    None
}

/// Reads `/pattern/` or `/pattern/i`; returns pattern, case-insensitivity, index after it.
fn regex_literal(chars: &[(usize, char)], start: usize) -> Option<(String, bool, usize)> {
    let mut pattern = String::new();
    let mut i = start + 1;
    while i < chars.len() {
        match chars[i].1 {
            '\\' if chars.get(i + 1).map(|c| c.1) == Some('/') => {
                pattern.push('/');
                i += 2;
            }
            '/' => {
                let insensitive = chars.get(i + 1).map(|c| c.1) == Some('i')
                    && chars.get(i + 2).is_none_or(|c| !is_word_char(c.1));
                return Some((pattern, insensitive, i + 1 + usize::from(insensitive)));
            }
            c => {
                pattern.push(c);
                i += 1;
            }
        }
    }
    None
}

struct Parser<'a> {
    expression: &'a str,
    tokens: Vec<Token>,
    next: usize,
    /// Parentheses and `not`s open around the current position.
    depth: usize,
    /// Statements read so far.
    terms: usize,
    /// Regexes this expression may still compile.
    regex_budget: &'a mut usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.next)
    }

    fn bump(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.next).cloned();
        self.next += 1;
        token
    }

    fn end_position(&self) -> usize {
        self.expression.len()
    }

    fn error(&self, position: usize, message: String) -> CompoundError {
        CompoundError {
            expression: self.expression.to_string(),
            position,
            message,
        }
    }

    fn or(&mut self) -> Result<Expr, CompoundError> {
        let mut left = self.and()?;
        while matches!(
            self.peek(),
            Some(Token {
                kind: TokenKind::Or,
                ..
            })
        ) {
            self.bump();
            let right = self.and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, CompoundError> {
        let mut left = self.unary()?;
        while matches!(
            self.peek(),
            Some(Token {
                kind: TokenKind::And,
                ..
            })
        ) {
            self.bump();
            let right = self.unary()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    /// Enters a parenthesis or `not` at `position`, refusing nesting beyond the limit.
    fn nest(&mut self, position: usize) -> Result<(), CompoundError> {
        self.depth += 1;
        if self.depth > MAX_COMPOUND_DEPTH {
            return Err(self.error(
                position,
                format!("nested more than {MAX_COMPOUND_DEPTH} levels deep"),
            ));
        }
        Ok(())
    }

    /// Counts a statement at `position`, refusing more than the limit.
    fn term(&mut self, position: usize) -> Result<(), CompoundError> {
        self.terms += 1;
        if self.terms > MAX_COMPOUND_TERMS {
            return Err(self.error(
                position,
                format!("more than {MAX_COMPOUND_TERMS} statements in one expression"),
            ));
        }
        Ok(())
    }

    /// Compiles a regex at `position` if the filter's regex budget allows one more.
    fn regex(&mut self, source: &str, position: usize) -> Result<Regex, CompoundError> {
        if *self.regex_budget == 0 {
            return Err(self.error(
                position,
                format!("more than {MAX_FILTER_REGEXES} regular expressions in one filter"),
            ));
        }
        *self.regex_budget -= 1;
        compile_regex(source).map_err(|e| self.error(position, format!("invalid regex: {e}")))
    }

    fn unary(&mut self) -> Result<Expr, CompoundError> {
        let Some(token) = self.bump() else {
            return Err(self.error(self.end_position(), "expected a statement".into()));
        };
        match token.kind {
            TokenKind::Not => {
                self.nest(token.position)?;
                let inner = self.unary()?;
                self.depth -= 1;
                Ok(Expr::Not(Box::new(inner)))
            }
            TokenKind::Open => {
                self.nest(token.position)?;
                let inner = self.or()?;
                self.depth -= 1;
                match self.bump() {
                    Some(Token {
                        kind: TokenKind::Close,
                        ..
                    }) => Ok(inner),
                    Some(other) => Err(self.error(
                        other.position,
                        format!("expected ')', found {}", other.kind),
                    )),
                    None => Err(self.error(self.end_position(), "expected ')'".into())),
                }
            }
            TokenKind::Regex(pattern, insensitive) => {
                self.term(token.position)?;
                let source = if insensitive {
                    format!("(?i){pattern}")
                } else {
                    pattern
                };
                self.regex(&source, token.position).map(Expr::ClassRegex)
            }
            TokenKind::Word(word) => {
                self.term(token.position)?;
                self.statement(word, token.position)
            }
            other => Err(self.error(
                token.position,
                format!("expected a statement, found {other}"),
            )),
        }
    }

    fn statement(&mut self, word: String, position: usize) -> Result<Expr, CompoundError> {
        match self.peek().map(|t| t.kind.clone()) {
            Some(TokenKind::Open) => self.data_call(word, position),
            Some(TokenKind::Op(op)) => {
                self.bump();
                let test = self.comparison(word, op, position)?;
                Ok(Expr::Fact(test))
            }
            _ => Ok(Expr::Class(word)),
        }
    }

    /// Reads the value after `fact OP` and compiles the comparison as `-F` would.
    fn comparison(
        &mut self,
        fact: String,
        op: FactOperator,
        position: usize,
    ) -> Result<CompiledFact, CompoundError> {
        let value = match self.bump() {
            Some(Token {
                kind: TokenKind::Word(w),
                ..
            })
            | Some(Token {
                kind: TokenKind::Quoted(w),
                ..
            }) => w,
            Some(Token {
                kind: TokenKind::Regex(r, insensitive),
                ..
            }) => {
                format!("/{r}/{}", if insensitive { "i" } else { "" })
            }
            Some(other) => {
                return Err(self.error(
                    other.position,
                    format!("expected a value, found {}", other.kind),
                ))
            }
            None => return Err(self.error(self.end_position(), "expected a value".into())),
        };
        let mut filter = FactFilter {
            fact,
            operator: op,
            value,
        };
        if let Some(pattern) = filter.value.strip_prefix('/') {
            if matches!(op, FactOperator::Eq | FactOperator::Match) {
                let (pattern, insensitive) = match pattern.strip_suffix("/i") {
                    Some(p) => (p, true),
                    None => (pattern.strip_suffix('/').unwrap_or(pattern), false),
                };
                filter.operator = FactOperator::Match;
                filter.value = if insensitive {
                    format!("(?i){pattern}")
                } else {
                    pattern.to_string()
                };
            }
        }
        if filter.operator == FactOperator::Match {
            if *self.regex_budget == 0 {
                return Err(self.error(
                    position,
                    format!("more than {MAX_FILTER_REGEXES} regular expressions in one filter"),
                ));
            }
            *self.regex_budget -= 1;
        }
        filter
            .compile_fact()
            .map_err(|e: FilterError| self.error(position, e.to_string()))
    }

    fn data_call(&mut self, plugin: String, position: usize) -> Result<Expr, CompoundError> {
        self.bump(); // '('
        let query = match self.peek().map(|t| t.kind.clone()) {
            Some(TokenKind::Quoted(q)) => {
                self.bump();
                Some(q)
            }
            _ => None,
        };
        match self.bump() {
            Some(Token {
                kind: TokenKind::Close,
                ..
            }) => {}
            Some(other) => {
                return Err(self.error(
                    other.position,
                    format!("expected a quoted argument and ')', found {}", other.kind),
                ))
            }
            None => return Err(self.error(self.end_position(), "expected ')'".into())),
        }
        let field = match self.peek().map(|t| t.kind.clone()) {
            Some(TokenKind::Dot) => {
                self.bump();
                match self.bump() {
                    Some(Token {
                        kind: TokenKind::Word(w),
                        ..
                    }) => Some(w),
                    Some(other) => {
                        return Err(self.error(
                            other.position,
                            format!("expected a field name, found {}", other.kind),
                        ))
                    }
                    None => {
                        return Err(self.error(self.end_position(), "expected a field name".into()))
                    }
                }
            }
            _ => None,
        };
        let test = match (field, self.peek().map(|t| t.kind.clone())) {
            (Some(field), Some(TokenKind::Op(op))) => {
                self.bump();
                Some(self.comparison(field, op, position)?)
            }
            (Some(field), _) => Some(
                FactFilter { fact: field, operator: FactOperator::Eq, value: "true".into() }
                    .compile_fact()
                    .map_err(|e| self.error(position, e.to_string()))?,
            ),
            (None, Some(TokenKind::Op(_))) => {
                return Err(self.error(position, format!("{plugin}(...) needs a field before the comparison, e.g. {plugin}('x').field=value")))
            }
            (None, _) => None,
        };
        Ok(Expr::Data(DataCall {
            plugin,
            query,
            test,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Plugins;

    impl DataSource for Plugins {
        fn query(&self, plugin: &str, query: Option<&str>) -> Result<Value, DataError> {
            match (plugin, query) {
                ("fstat", Some("/etc/hosts")) => {
                    Ok(json!({"present": true, "size": 200, "type": "file"}))
                }
                ("fstat", Some(_)) => Ok(json!({"present": false, "size": 0})),
                ("service", Some("nginx")) => Ok(json!({"status": "running"})),
                ("service", Some(_)) => Ok(json!({"status": "stopped"})),
                _ => Err(DataError {
                    plugin: plugin.into(),
                    reason: "unknown".into(),
                }),
            }
        }
    }

    fn eval(expression: &str) -> bool {
        let facts =
            json!({"country": "uk", "cpus": 4, "environment": "prod", "os": {"family": "Debian"}});
        let classes = vec!["webserver".to_string(), "role::web".to_string()];
        let node = NodeView {
            identity: "web1",
            facts: &facts,
            classes: &classes,
            agents: &[],
        };
        Expr::parse(expression)
            .unwrap_or_else(|e| panic!("{e}"))
            .matches(&node, &Plugins)
    }

    #[test]
    fn compound_expressions() {
        let table: &[(&str, bool)] = &[
            ("country=uk", true),
            ("country=de", false),
            ("cpus>=4", true),
            ("cpus>4", false),
            ("os.family=/deb/i", true),
            ("os.family=/deb/", false),
            ("webserver", true),
            ("database", false),
            ("/^role::/", true),
            ("/^ROLE/i", true),
            ("country=uk and webserver", true),
            ("country=uk and database", false),
            ("country=de or webserver", true),
            ("not country=de", true),
            ("!country=uk", false),
            ("(country=uk and /web/) or not environment=dev", true),
            ("(country=de and /web/) or not environment=prod", false),
            ("country=uk && (cpus<2 || webserver)", true),
            ("not (country=uk or country=de)", false),
            ("fstat('/etc/hosts').size>=100", true),
            ("fstat('/etc/hosts').size>=1000", false),
            ("fstat('/nope').present=true", false),
            ("fstat('/etc/hosts').present", true),
            ("service('nginx').status=running", true),
            ("service(\"nginx\").status=running and country=uk", true),
            ("service('apache').status=running", false),
            ("unknown('x').a=1", false),
            // An unanswerable call is unknown, not false: negating it does not select.
            ("not unknown('x').a=1", false),
            ("unknown('x').a=1 or country=uk", true),
            ("not (unknown('x').a=1 and country=de)", true),
            ("not (unknown('x').a=1 or country=de)", false),
            ("country = uk", true),
            ("country='uk'", true),
        ];
        for (expression, want) in table {
            assert_eq!(eval(expression), *want, "{expression}");
        }
    }

    #[test]
    fn syntax_errors_point_at_the_position() {
        let table: &[(&str, usize)] = &[
            ("country=uk and", 14),
            ("(country=uk", 11),
            ("country=uk)", 10),
            ("country=", 8),
            ("and x", 0),
            ("fstat('/x'", 10),
            ("fstat('/x').size>=", 18),
            ("a=1 # b", 4),
            ("fstat('x')=1", 0),
        ];
        for (expression, position) in table {
            let err = Expr::parse(expression).unwrap_err();
            assert_eq!(err.position, *position, "{expression}: {err}");
            assert!(
                err.to_string().contains("syntax error at position"),
                "{err}"
            );
        }
    }

    #[test]
    fn hostile_expressions_are_refused_before_they_cost_anything() {
        let deep = "(".repeat(20_000) + "a=1" + &")".repeat(20_000);
        assert!(Expr::parse(&deep)
            .unwrap_err()
            .message
            .contains("more than"));
        let nested = "(".repeat(MAX_COMPOUND_DEPTH + 1) + "a" + &")".repeat(MAX_COMPOUND_DEPTH + 1);
        assert!(Expr::parse(&nested).unwrap_err().message.contains("nested"));
        let ok = "(".repeat(MAX_COMPOUND_DEPTH) + "a" + &")".repeat(MAX_COMPOUND_DEPTH);
        assert!(Expr::parse(&ok).is_ok());
        let nots = "not ".repeat(MAX_COMPOUND_DEPTH + 1) + "a";
        assert!(Expr::parse(&nots).unwrap_err().message.contains("nested"));
        let long_chain = vec!["a"; MAX_COMPOUND_TERMS + 1].join(" and ");
        assert!(Expr::parse(&long_chain)
            .unwrap_err()
            .message
            .contains("statements"));
        let regexes = vec!["/a/"; MAX_FILTER_REGEXES + 1].join(" or ");
        assert!(Expr::parse(&regexes)
            .unwrap_err()
            .message
            .contains("regular expressions"));
        let huge = [r"/\w{200}/"; 2].join(" or ");
        assert!(Expr::parse(&huge).unwrap_err().message.contains("limit"));
        let facts = vec!["x=~a"; MAX_FILTER_REGEXES + 1].join(" or ");
        assert!(Expr::parse(&facts)
            .unwrap_err()
            .message
            .contains("regular expressions"));
        assert!(Expr::parse(&"a".repeat(MAX_COMPOUND_BYTES + 1))
            .unwrap_err()
            .message
            .contains("bytes"));
    }

    #[test]
    fn data_plugins_are_listed() {
        let expr =
            Expr::parse("fstat('/a').size>1 or (x=1 and service('y').status=running)").unwrap();
        assert_eq!(expr.data_plugins(), vec!["fstat", "service"]);
    }
}
