//! MCollective's inventory report scripts, for `mco inventory --script FILE`: the documented
//! `inventory do ... end` form, read without running Ruby.
//!
//! ```ruby
//! inventory do
//!   format "%-20s %s %s"
//!   fields { [ identity, facts["os"], classes.join(",") ] }
//! end
//! ```
//!
//! A field is `identity`, `facts["NAME"]` (a dotted name reaches into structured facts),
//! `classes`, `agents`, `collectives` or a string, optionally followed by `.join("SEP")`,
//! `.sort`, `.size`/`.length`, `.upcase` or `.downcase`. Values print as Ruby's `to_s` prints
//! them (nil as nothing, a list as `["a", "b"]`). `format` takes Ruby's `%s`, `%d`, `%f` with
//! flags, width and precision, and `%%`.
//!
//! Not for: arbitrary Ruby, or `formatted_inventory` (its page layouts come from the formatr
//! gem): anything outside the form above is an error naming its line, never a guess.

use serde_json::Value;

/// A script that does not read as the subset above.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ScriptError {
    /// The 1-based line.
    pub line: usize,
    /// What is wrong there.
    pub message: String,
}

/// A report: the format and the fields of each line.
#[derive(Debug, PartialEq)]
pub struct InventoryScript {
    format: Vec<Piece>,
    fields: Vec<Field>,
}

/// What one node reports, as the fields see it.
#[derive(Debug, Default)]
pub struct NodeView<'a> {
    /// The node's identity.
    pub identity: &'a str,
    /// Its facts (a JSON object).
    pub facts: Option<&'a Value>,
    /// Its classes.
    pub classes: Option<&'a Value>,
    /// Its agents.
    pub agents: Option<&'a Value>,
    /// Its collectives.
    pub collectives: Option<&'a Value>,
}

impl InventoryScript {
    /// Reads a script.
    pub fn parse(text: &str) -> Result<InventoryScript, ScriptError> {
        let tokens = tokenize(text)?;
        Parser { tokens, at: 0 }.script()
    }

    /// The line of one node.
    pub fn line(&self, node: &NodeView<'_>) -> String {
        let values: Vec<Shown> = self.fields.iter().map(|f| f.eval(node)).collect();
        let mut next = values.iter();
        let mut out = String::new();
        for piece in &self.format {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Directive(d) => {
                    let value = next.next().cloned().unwrap_or(Shown::Nil);
                    out.push_str(&d.apply(&value));
                }
            }
        }
        out
    }
}

/// A value as Ruby holds it for printing.
#[derive(Debug, Clone, PartialEq)]
enum Shown {
    Nil,
    Text(String),
    Number(f64),
    List(Vec<Shown>),
}

impl Shown {
    fn of_json(value: Option<&Value>) -> Shown {
        match value {
            None | Some(Value::Null) => Shown::Nil,
            Some(Value::String(s)) => Shown::Text(s.clone()),
            Some(Value::Number(n)) => Shown::Number(n.as_f64().unwrap_or_default()),
            Some(Value::Bool(b)) => Shown::Text(b.to_string()),
            Some(Value::Array(a)) => {
                Shown::List(a.iter().map(|v| Shown::of_json(Some(v))).collect())
            }
            Some(object) => Shown::Text(object.to_string()),
        }
    }

    /// Ruby's `to_s`.
    fn to_text(&self) -> String {
        match self {
            Shown::Nil => String::new(),
            Shown::Text(t) => t.clone(),
            Shown::Number(n) => number_text(*n),
            Shown::List(items) => format!(
                "[{}]",
                items
                    .iter()
                    .map(Shown::inspect)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    /// Ruby's `inspect`, as a list prints its items.
    fn inspect(&self) -> String {
        match self {
            Shown::Nil => "nil".into(),
            Shown::Text(t) => format!("{t:?}"),
            other => other.to_text(),
        }
    }
}

fn number_text(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        n.to_string()
    }
}

#[derive(Debug, PartialEq)]
enum Source {
    Identity,
    Fact(String),
    Classes,
    Agents,
    Collectives,
    Literal(String),
}

#[derive(Debug, PartialEq)]
enum Method {
    Join(String),
    Sort,
    Size,
    Upcase,
    Downcase,
}

#[derive(Debug, PartialEq)]
struct Field {
    source: Source,
    methods: Vec<Method>,
}

impl Field {
    fn eval(&self, node: &NodeView<'_>) -> Shown {
        let mut value = match &self.source {
            Source::Identity => Shown::Text(node.identity.to_string()),
            Source::Fact(name) => Shown::of_json(fact(node.facts, name)),
            Source::Classes => Shown::of_json(node.classes),
            Source::Agents => Shown::of_json(node.agents),
            Source::Collectives => Shown::of_json(node.collectives),
            Source::Literal(s) => Shown::Text(s.clone()),
        };
        for method in &self.methods {
            value = match (method, value) {
                (Method::Join(sep), Shown::List(items)) => Shown::Text(
                    items
                        .iter()
                        .map(Shown::to_text)
                        .collect::<Vec<_>>()
                        .join(sep),
                ),
                (Method::Sort, Shown::List(mut items)) => {
                    items.sort_by_key(Shown::to_text);
                    Shown::List(items)
                }
                (Method::Size, Shown::List(items)) => Shown::Number(items.len() as f64),
                (Method::Size, Shown::Text(t)) => Shown::Number(t.chars().count() as f64),
                (Method::Upcase, Shown::Text(t)) => Shown::Text(t.to_uppercase()),
                (Method::Downcase, Shown::Text(t)) => Shown::Text(t.to_lowercase()),
                // Ruby would raise NoMethodError here (nil.join, "x".sort); one missing fact
                // must not end a report of the whole fleet, so the field prints empty.
                _ => Shown::Nil,
            };
        }
        value
    }
}

/// A fact by its exact name, else by a dotted path into structured facts.
fn fact<'a>(facts: Option<&'a Value>, name: &str) -> Option<&'a Value> {
    let facts = facts?;
    facts
        .get(name)
        .or_else(|| mco_spec::filter::lookup(facts, name))
}

#[derive(Debug, PartialEq)]
enum Piece {
    Text(String),
    Directive(Directive),
}

#[derive(Debug, PartialEq)]
struct Directive {
    left: bool,
    zero: bool,
    plus: bool,
    width: Option<usize>,
    precision: Option<usize>,
    kind: char,
}

impl Directive {
    fn apply(&self, value: &Shown) -> String {
        let body = match self.kind {
            'd' | 'i' => match numeric(value) {
                Some(n) => {
                    let n = n.trunc() as i64;
                    if self.plus && n >= 0 {
                        format!("+{n}")
                    } else {
                        n.to_string()
                    }
                }
                None => value.to_text(),
            },
            'f' => match numeric(value) {
                Some(n) => {
                    let text = format!("{n:.*}", self.precision.unwrap_or(6));
                    if self.plus && n >= 0.0 {
                        format!("+{text}")
                    } else {
                        text
                    }
                }
                None => value.to_text(),
            },
            _ => {
                let text = value.to_text();
                match self.precision {
                    Some(p) => text.chars().take(p).collect(),
                    None => text,
                }
            }
        };
        let width = self.width.unwrap_or(0);
        let len = body.chars().count();
        if len >= width {
            return body;
        }
        let pad = width - len;
        if self.left {
            format!("{body}{}", " ".repeat(pad))
        } else if self.zero && self.kind != 's' {
            // Zeros go after the sign.
            let (sign, digits) = match body.strip_prefix(['-', '+']) {
                Some(rest) => (&body[..1], rest),
                None => ("", body.as_str()),
            };
            format!("{sign}{}{digits}", "0".repeat(pad))
        } else {
            format!("{}{body}", " ".repeat(pad))
        }
    }
}

fn numeric(value: &Shown) -> Option<f64> {
    match value {
        Shown::Number(n) => Some(*n),
        Shown::Text(t) => t.trim().parse().ok(),
        _ => None,
    }
}

fn parse_format(text: &str, line: usize) -> Result<Vec<Piece>, ScriptError> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            literal.push(c);
            continue;
        }
        if chars.peek() == Some(&'%') {
            chars.next();
            literal.push('%');
            continue;
        }
        let mut d = Directive {
            left: false,
            zero: false,
            plus: false,
            width: None,
            precision: None,
            kind: 's',
        };
        while let Some(&flag) = chars.peek() {
            match flag {
                '-' => d.left = true,
                '0' => d.zero = true,
                '+' => d.plus = true,
                ' ' => {}
                _ => break,
            }
            chars.next();
        }
        let number = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| {
            let mut digits = String::new();
            while let Some(&c) = chars.peek().filter(|c| c.is_ascii_digit()) {
                digits.push(c);
                chars.next();
            }
            digits.parse::<usize>().ok()
        };
        d.width = number(&mut chars);
        if chars.peek() == Some(&'.') {
            chars.next();
            d.precision = Some(number(&mut chars).unwrap_or(0));
        }
        match chars.next() {
            Some(kind @ ('s' | 'd' | 'i' | 'f')) => d.kind = kind,
            other => {
                return Err(ScriptError {
                    line,
                    message: format!(
                        "format directive %{} is not one mco prints (%s, %d, %i, %f, %%)",
                        other.map(String::from).unwrap_or_default()
                    ),
                })
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Text(std::mem::take(&mut literal)));
        }
        pieces.push(Piece::Directive(d));
    }
    if !literal.is_empty() {
        pieces.push(Piece::Text(literal));
    }
    Ok(pieces)
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Text(String),
    Punct(char),
}

fn tokenize(text: &str) -> Result<Vec<(Token, usize)>, ScriptError> {
    let mut tokens = Vec::new();
    let mut line = 1;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' => line += 1,
            c if c.is_whitespace() => {}
            '#' => {
                while chars.peek().is_some_and(|c| *c != '\n') {
                    chars.next();
                }
            }
            '"' | '\'' => {
                let start = line;
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None => {
                            return Err(ScriptError {
                                line: start,
                                message: "a string that does not end".into(),
                            })
                        }
                        Some(q) if q == c => break,
                        Some('\n') => {
                            line += 1;
                            s.push('\n');
                        }
                        Some('#') if c == '"' && chars.peek() == Some(&'{') => {
                            return Err(ScriptError {
                                line,
                                message: "string interpolation (#{...}) is outside the inventory script subset mco reads".into(),
                            })
                        }
                        Some('\\') => {
                            let escaped = chars.next().unwrap_or('\\');
                            match (c, escaped) {
                                ('"', 't') => s.push('\t'),
                                ('"', 'n') => s.push('\n'),
                                ('"', 'e') => s.push('\u{1b}'),
                                // Single quotes keep a backslash unless it escapes ' or \.
                                ('\'', e) if e != '\'' && e != '\\' => {
                                    s.push('\\');
                                    s.push(e);
                                }
                                (_, e) => s.push(e),
                            }
                        }
                        Some(other) => s.push(other),
                    }
                }
                tokens.push((Token::Text(s), start));
            }
            c if c.is_ascii_alphanumeric() || c == '_' => {
                let mut word = String::from(c);
                while let Some(&n) = chars
                    .peek()
                    .filter(|n| n.is_ascii_alphanumeric() || **n == '_' || **n == '?')
                {
                    word.push(n);
                    chars.next();
                }
                tokens.push((Token::Word(word), line));
            }
            '{' | '}' | '[' | ']' | '(' | ')' | ',' | '.' => tokens.push((Token::Punct(c), line)),
            other => {
                return Err(ScriptError {
                    line,
                    message: format!("{other:?} is outside the inventory script subset mco reads"),
                })
            }
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<(Token, usize)>,
    at: usize,
}

impl Parser {
    fn line(&self) -> usize {
        self.tokens
            .get(self.at)
            .or_else(|| self.tokens.last())
            .map(|(_, l)| *l)
            .unwrap_or(1)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).map(|(t, _)| t.clone());
        self.at += 1;
        token
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at).map(|(t, _)| t)
    }

    fn error<T>(&self, message: impl Into<String>) -> Result<T, ScriptError> {
        Err(ScriptError {
            line: self.line(),
            message: message.into(),
        })
    }

    fn expect(&mut self, wanted: &Token, what: &str) -> Result<(), ScriptError> {
        match self.peek() {
            Some(t) if t == wanted => {
                self.at += 1;
                Ok(())
            }
            Some(t) => {
                let found = describe(t);
                self.error(format!("expected {what}, found {found}"))
            }
            None => self.error(format!("expected {what}, found the end of the script")),
        }
    }

    fn script(mut self) -> Result<InventoryScript, ScriptError> {
        match self.next() {
            Some(Token::Word(w)) if w == "inventory" => {}
            Some(Token::Word(w)) if w == "formatted_inventory" => {
                self.at -= 1;
                return self.error(
                    "formatted_inventory (formatr page layouts) is not supported: use inventory do ... end with format and fields",
                );
            }
            _ => {
                self.at = self.at.saturating_sub(1);
                return self.error("an inventory script starts with `inventory do`");
            }
        }
        self.expect(&Token::Word("do".into()), "`do` after `inventory`")?;
        let mut format = None;
        let mut fields = None;
        loop {
            let line = self.line();
            match self.next() {
                Some(Token::Word(w)) if w == "end" => break,
                Some(Token::Word(w)) if w == "format" => {
                    let parenthesised = self.peek() == Some(&Token::Punct('('));
                    if parenthesised {
                        self.at += 1;
                    }
                    let Some(Token::Text(text)) = self.next() else {
                        self.at -= 1;
                        return self.error("format takes a string");
                    };
                    if parenthesised {
                        self.expect(&Token::Punct(')'), "`)`")?;
                    }
                    format = Some((parse_format(&text, line)?, line));
                }
                Some(Token::Word(w)) if w == "fields" => {
                    let close = match self.next() {
                        Some(Token::Punct('{')) => Token::Punct('}'),
                        Some(Token::Word(w)) if w == "do" => Token::Word("end".into()),
                        _ => {
                            self.at -= 1;
                            return self
                                .error("fields takes a block: fields { [ identity, ... ] }");
                        }
                    };
                    self.expect(&Token::Punct('['), "`[` opening the list of fields")?;
                    let mut list = vec![self.field()?];
                    while self.peek() == Some(&Token::Punct(',')) {
                        self.at += 1;
                        list.push(self.field()?);
                    }
                    self.expect(&Token::Punct(']'), "`]` closing the list of fields")?;
                    self.expect(&close, "the end of the fields block")?;
                    fields = Some(list);
                }
                Some(other) => {
                    self.at -= 1;
                    return self.error(format!(
                        "{} is outside the inventory script subset mco reads (format, fields, end)",
                        describe(&other)
                    ));
                }
                None => return self.error("`inventory do` without its `end`"),
            }
        }
        if let Some(extra) = self.peek() {
            let found = describe(extra);
            return self.error(format!("{found} after the inventory block's end"));
        }
        let Some((format, format_line)) = format else {
            return self.error("the inventory block has no format \"...\"");
        };
        let Some(fields) = fields else {
            return self.error("the inventory block has no fields { [ ... ] }");
        };
        let directives = format
            .iter()
            .filter(|p| matches!(p, Piece::Directive(_)))
            .count();
        if directives != fields.len() {
            return Err(ScriptError {
                line: format_line,
                message: format!(
                    "the format has {directives} directives for {} fields",
                    fields.len()
                ),
            });
        }
        Ok(InventoryScript { format, fields })
    }

    fn field(&mut self) -> Result<Field, ScriptError> {
        let source = match self.next() {
            Some(Token::Text(t)) => Source::Literal(t),
            Some(Token::Word(w)) => match w.as_str() {
                "identity" => Source::Identity,
                "classes" => Source::Classes,
                "agents" => Source::Agents,
                "collectives" => Source::Collectives,
                "facts" => {
                    self.expect(&Token::Punct('['), "`[` after facts")?;
                    let Some(Token::Text(name)) = self.next() else {
                        self.at -= 1;
                        return self.error("facts[...] takes a fact's name as a string");
                    };
                    self.expect(&Token::Punct(']'), "`]` after the fact's name")?;
                    Source::Fact(name)
                }
                other => {
                    self.at -= 1;
                    return self.error(format!(
                        "`{other}` is not a field mco knows (identity, facts[\"NAME\"], classes, agents, collectives, or a string)"
                    ));
                }
            },
            Some(other) => {
                self.at -= 1;
                return self.error(format!("expected a field, found {}", describe(&other)));
            }
            None => return self.error("expected a field, found the end of the script"),
        };
        let mut methods = Vec::new();
        while self.peek() == Some(&Token::Punct('.')) {
            self.at += 1;
            let method = match self.next() {
                Some(Token::Word(w)) => w,
                _ => {
                    self.at -= 1;
                    return self.error("expected a method name after `.`");
                }
            };
            methods.push(match method.as_str() {
                "join" => {
                    let mut sep = String::new();
                    if self.peek() == Some(&Token::Punct('(')) {
                        self.at += 1;
                        let Some(Token::Text(s)) = self.next() else {
                            self.at -= 1;
                            return self.error("join takes a string: join(\", \")");
                        };
                        sep = s;
                        self.expect(&Token::Punct(')'), "`)` after join's separator")?;
                    }
                    Method::Join(sep)
                }
                "sort" => Method::Sort,
                "size" | "length" | "count" => Method::Size,
                "upcase" => Method::Upcase,
                "downcase" => Method::Downcase,
                other => {
                    self.at -= 1;
                    return self.error(format!(
                        "`.{other}` is not a method mco reads (join, sort, size, length, upcase, downcase)"
                    ));
                }
            });
        }
        Ok(Field { source, methods })
    }
}

fn describe(token: &Token) -> String {
    match token {
        Token::Word(w) => format!("`{w}`"),
        Token::Text(t) => format!("the string {t:?}"),
        Token::Punct(c) => format!("`{c}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node<'a>(facts: &'a Value, classes: &'a Value, agents: &'a Value) -> NodeView<'a> {
        NodeView {
            identity: "web1",
            facts: Some(facts),
            classes: Some(classes),
            agents: Some(agents),
            collectives: None,
        }
    }

    #[test]
    fn mcollectives_documented_example_reads_and_prints() {
        let script = InventoryScript::parse(
            "# report\ninventory do\n    format \"%s:\\t\\t%s\\t\\t%s\"\n\n    fields { [ identity, facts[\"serialnumber\"], facts[\"productname\"] ] }\nend\n",
        )
        .unwrap();
        let facts = json!({"serialnumber": "XYZ1", "productname": "ProLiant"});
        let (c, a) = (json!([]), json!([]));
        assert_eq!(
            script.line(&node(&facts, &c, &a)),
            "web1:\t\tXYZ1\t\tProLiant"
        );
    }

    #[test]
    fn methods_lists_and_widths_print_as_ruby_prints_them() {
        let script = InventoryScript::parse(
            "inventory do\n  format('%-6s|%5s|%03d|%.2f|%s|%s|%s%%')\n  fields do [ identity, facts['os.family'].upcase, classes.size, facts['load'], classes, agents.sort.join(','), facts['missing'] ] end\nend",
        )
        .unwrap();
        let facts = json!({"os": {"family": "debian"}, "load": 0.5});
        let classes = json!(["web", "base"]);
        let agents = json!(["rpcutil", "puppet"]);
        assert_eq!(
            script.line(&node(&facts, &classes, &agents)),
            "web1  |DEBIAN|002|0.50|[\"web\", \"base\"]|puppet,rpcutil|%"
        );
    }

    #[test]
    fn a_method_on_nothing_prints_nothing_rather_than_ending_the_report() {
        let script = InventoryScript::parse(
            "inventory do\nformat \"%s;%s\"\nfields { [ facts['none'].join(','), identity ] }\nend",
        )
        .unwrap();
        let (f, c, a) = (json!({}), json!([]), json!([]));
        assert_eq!(script.line(&node(&f, &c, &a)), ";web1");
    }

    #[test]
    fn what_is_outside_the_subset_is_an_error_on_its_line() {
        let cases: &[(&str, usize, &str)] = &[
            (
                "inventory do\n  format \"%s\"\n  fields { [ hostname ] }\nend",
                3,
                "`hostname` is not a field",
            ),
            (
                "inventory do\n  format \"%s %s\"\n  fields { [ identity ] }\nend",
                2,
                "2 directives for 1 fields",
            ),
            (
                "inventory do\n  format \"%x\"\n  fields { [ identity ] }\nend",
                2,
                "%x",
            ),
            ("inventory do\n  puts identity\nend", 2, "`puts` is outside"),
            (
                "inventory do\n  format \"#{identity}\"\nend",
                2,
                "interpolation",
            ),
            (
                "formatted_inventory do\n  page_length 20\nend",
                1,
                "formatted_inventory",
            ),
            (
                "inventory do\n  format \"%s\"\n  fields { [ identity.reverse ] }\nend",
                3,
                "`.reverse`",
            ),
            (
                "inventory do\n  format \"%s\"\n  fields { [ identity ] }\n",
                3,
                "without its `end`",
            ),
            ("inventory do\n  format \"%s\n", 2, "does not end"),
            (
                "inventory do\n  fields { [ identity ] }\nend",
                3,
                "no format",
            ),
            ("puts 'x'", 1, "starts with `inventory do`"),
            ("inventory do\n  x = 1\nend", 2, "'=' is outside"),
        ];
        for (script, line, says) in cases {
            let err = InventoryScript::parse(script).unwrap_err();
            assert_eq!(err.line, *line, "{script:?}: {err}");
            assert!(err.message.contains(says), "{script:?}: {err}");
        }
    }
}
