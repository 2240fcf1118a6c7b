//! Filters: which nodes a request is for.
//!
//! A [`Filter`] is the wire model (`-F`, `-C`, `-I`, `-A`, `-W` on the command line). Before it
//! is used it is compiled into a [`CompiledFilter`], which holds parsed regexes and numbers; its
//! [`CompiledFilter::matches`] is the one evaluator that nodes, the registry and tests use, so a
//! filter means the same thing wherever it is decided.
//!
//! # Semantics
//!
//! - Every category that is not empty must pass; an empty filter matches every node.
//! - Facts (AND): `fact OP value` with `==` (also `=`), `!=`, `=~`, `<`, `>`, `<=`, `>=`
//!   (`=>` and `=<` are accepted too). A value written `/re/` (or `/re/i` for a
//!   case-insensitive match) makes the comparison a regex match. The fact name is a dotted
//!   path into nested facts (`os.family`, `disks.0.size`); a key that itself contains dots is
//!   found first. Numbers are compared as numbers when both sides are numbers (so `cpus>=4`
//!   and `load>1.5` mean what they say, and `>` is never `>=`), booleans as booleans,
//!   everything else as case-sensitive strings. An array fact matches when any element does
//!   (and `!=` when none is equal). A fact the node does not have matches nothing, not even
//!   `!=`.
//! - Classes (AND): each entry is an exact class name or a `/regex/` that some class matches.
//! - Identities (OR): exact or `/regex/`; the node matches if any entry does, so
//!   `-I /^web/ -I web1` selects web1 and every `web…` node.
//! - Agents (AND): exact or `/regex/` against the agents the node serves.
//! - Compound (`-S`, AND between expressions): boolean expressions over facts, classes and
//!   data plugins, parsed and evaluated by [`crate::compound`]; their fact comparisons are
//!   compiled into the same fact test as `-F`.
//!
//! # Wire format
//!
//! ```json
//! {"fact": [{"fact": "os.family", "operator": "=~", "value": "(?i)deb"}],
//!  "class": ["webserver"], "identity": ["/^web/", "db1"], "agent": ["rpcutil"], "compound": []}
//! ```

use std::cmp::Ordering;
use std::fmt;

use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::compound::{CompoundError, DataError, DataSource, Expr, NoData};

/// The most entries (facts, classes, identities, agents and compound expressions together)
/// one filter may have. A filter travels in every broadcast and is compiled by every node,
/// so what it may cost is bounded: these limits, [`MAX_FILTER_REGEXES`], the compound
/// limits in [`crate::compound`] and the compiled size of each regex.
pub const MAX_FILTER_ENTRIES: usize = 1024;

/// The most regular expressions one filter may hold, in all its parts.
pub const MAX_FILTER_REGEXES: usize = 32;

/// The longest regular expression accepted, in bytes.
pub const MAX_REGEX_BYTES: usize = 1024;

/// The most memory one compiled regex may take (the `regex` crate's `size_limit`); a
/// pattern that needs more, such as `\w{200}` (which is 200 copies of Unicode's word
/// class), is refused rather than built.
pub const REGEX_SIZE_LIMIT: usize = 256 * 1024;

/// The most memory one regex's lazy DFA may cache (the `regex` crate's `dfa_size_limit`).
pub const REGEX_DFA_SIZE_LIMIT: usize = 256 * 1024;

/// Compiles `pattern` within the bounds above: the one way mco builds a regex from a filter,
/// a policy or a DDL `validation`, so that no message can make a node build a huge automaton.
/// The pattern is read in the Ruby/Go dialect ([`crate::regex_dialect::translate`]); the
/// length bound applies to the pattern as written.
pub fn compile_regex(pattern: &str) -> Result<Regex, String> {
    if pattern.len() > MAX_REGEX_BYTES {
        return Err(format!(
            "longer than {MAX_REGEX_BYTES} bytes ({} bytes)",
            pattern.len()
        ));
    }
    RegexBuilder::new(&crate::regex_dialect::translate(pattern))
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_DFA_SIZE_LIMIT)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(limit) => format!(
                "the compiled regex would exceed the limit of {limit} bytes; use a smaller pattern"
            ),
            other => other.to_string(),
        })
}

/// Why a filter could not be parsed or compiled.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum FilterError {
    /// A fact filter string could not be parsed.
    #[error("invalid fact filter {input:?}: {reason}")]
    InvalidFact {
        /// What was given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A compound expression does not parse.
    #[error(transparent)]
    Compound(#[from] CompoundError),
    /// A regular expression does not compile.
    #[error("invalid regular expression {pattern:?} in {kind} filter: {reason}")]
    Regex {
        /// Which filter category it is in (fact, class, identity, agent).
        kind: &'static str,
        /// The pattern.
        pattern: String,
        /// The compiler's message.
        reason: String,
    },
    /// An entry is empty.
    #[error("empty {kind} filter")]
    Empty {
        /// Which filter category it is in.
        kind: &'static str,
    },
    /// The filter is larger than a node evaluates.
    #[error("filter too large: {what} (at most {limit})")]
    TooLarge {
        /// What is too large or too many.
        what: String,
        /// The limit.
        limit: usize,
    },
}

/// A comparison operator of a fact filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FactOperator {
    /// Equal.
    #[serde(rename = "==")]
    Eq,
    /// Not equal.
    #[serde(rename = "!=")]
    Ne,
    /// Regular expression match.
    #[serde(rename = "=~")]
    Match,
    /// Less than.
    #[serde(rename = "<")]
    Lt,
    /// Greater than.
    #[serde(rename = ">")]
    Gt,
    /// Less than or equal.
    #[serde(rename = "<=")]
    Le,
    /// Greater than or equal.
    #[serde(rename = ">=")]
    Ge,
}

impl FactOperator {
    /// The operator as written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            FactOperator::Eq => "==",
            FactOperator::Ne => "!=",
            FactOperator::Match => "=~",
            FactOperator::Lt => "<",
            FactOperator::Gt => ">",
            FactOperator::Le => "<=",
            FactOperator::Ge => ">=",
        }
    }
}

impl fmt::Display for FactOperator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One fact comparison. For [`FactOperator::Match`] the value is a regex (Rust `regex`
/// syntax; a leading `(?i)` makes it case-insensitive).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FactFilter {
    /// The fact name or dotted path.
    pub fact: String,
    /// The comparison.
    pub operator: FactOperator,
    /// The value to compare with.
    pub value: String,
}

impl FactFilter {
    /// Parses `fact OP value` as typed after `-F`.
    pub fn parse(input: &str) -> Result<FactFilter, FilterError> {
        let invalid = |reason: &str| FilterError::InvalidFact {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        let start = input
            .find(['=', '!', '<', '>'])
            .ok_or_else(|| invalid("expected fact, operator and value, e.g. country=uk"))?;
        let fact = input[..start].trim();
        if fact.is_empty() {
            return Err(invalid("missing fact name"));
        }
        if fact.contains(|c: char| c.is_whitespace() || matches!(c, '(' | ')' | '\'' | '"')) {
            return Err(invalid(
                "a fact name cannot contain spaces, parentheses or quotes",
            ));
        }
        let rest = &input[start..];
        // Longest operators first, so `<=` is not read as `<` followed by `=value`.
        const OPERATORS: [(&str, FactOperator); 10] = [
            ("<=", FactOperator::Le),
            (">=", FactOperator::Ge),
            ("=>", FactOperator::Ge),
            ("=<", FactOperator::Le),
            ("==", FactOperator::Eq),
            ("!=", FactOperator::Ne),
            ("=~", FactOperator::Match),
            ("<", FactOperator::Lt),
            (">", FactOperator::Gt),
            ("=", FactOperator::Eq),
        ];
        let (op_text, mut operator) = OPERATORS
            .iter()
            .find(|(text, _)| rest.starts_with(text))
            .copied()
            .ok_or_else(|| invalid("unknown operator"))?;
        let mut value = rest[op_text.len()..].trim().to_string();
        if value.is_empty() {
            return Err(invalid("missing value"));
        }
        if let Some((pattern, insensitive)) = slash_regex(&value) {
            if matches!(operator, FactOperator::Eq | FactOperator::Match) {
                operator = FactOperator::Match;
                value = if insensitive {
                    format!("(?i){pattern}")
                } else {
                    pattern.to_string()
                };
            }
        }
        let filter = FactFilter {
            fact: fact.to_string(),
            operator,
            value,
        };
        filter.compile_fact()?;
        Ok(filter)
    }

    /// Compiles the comparison into the fact test that `-F` and `-S` share.
    pub(crate) fn compile_fact(&self) -> Result<CompiledFact, FilterError> {
        if self.fact.is_empty() {
            return Err(FilterError::Empty { kind: "fact" });
        }
        let test = match self.operator {
            FactOperator::Match => {
                FactTest::Regex(compile_regex(&self.value).map_err(|reason| {
                    FilterError::Regex {
                        kind: "fact",
                        pattern: self.value.clone(),
                        reason,
                    }
                })?)
            }
            op => FactTest::Compare {
                op,
                text: self.value.clone(),
                number: parse_number(&self.value),
                boolean: parse_bool(&self.value),
            },
        };
        Ok(CompiledFact {
            path: self.fact.clone(),
            test,
        })
    }
}

impl fmt::Display for FactFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{}", self.fact, self.operator, self.value)
    }
}

/// Which nodes a request is for. See the [module docs](self) for the semantics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    /// Fact comparisons, all of which must match.
    #[serde(default)]
    pub fact: Vec<FactFilter>,
    /// Class names or `/regex/`, all of which must match.
    #[serde(default)]
    pub class: Vec<String>,
    /// Identities or `/regex/`, any of which must match.
    #[serde(default)]
    pub identity: Vec<String>,
    /// Agent names or `/regex/`, all of which must match.
    #[serde(default)]
    pub agent: Vec<String>,
    /// Compound (`-S`) expressions, all of which must hold.
    #[serde(default)]
    pub compound: Vec<String>,
}

impl Filter {
    /// Whether the filter has no entries at all (and so matches every node).
    pub fn is_empty(&self) -> bool {
        self.fact.is_empty()
            && self.class.is_empty()
            && self.identity.is_empty()
            && self.agent.is_empty()
            && self.compound.is_empty()
    }

    /// Adds a `-F` fact filter.
    pub fn add_fact(&mut self, input: &str) -> Result<(), FilterError> {
        self.fact.push(FactFilter::parse(input)?);
        Ok(())
    }

    /// Adds a `-C` class filter (name or `/regex/`).
    pub fn add_class(&mut self, input: &str) -> Result<(), FilterError> {
        self.class.push(checked_matcher("class", input)?);
        Ok(())
    }

    /// Adds a `-I` identity filter (name or `/regex/`).
    pub fn add_identity(&mut self, input: &str) -> Result<(), FilterError> {
        self.identity.push(checked_matcher("identity", input)?);
        Ok(())
    }

    /// Adds a `-A` agent filter (name or `/regex/`).
    pub fn add_agent(&mut self, input: &str) -> Result<(), FilterError> {
        self.agent.push(checked_matcher("agent", input)?);
        Ok(())
    }

    /// Adds a `-W` combined filter: whitespace-separated tokens, each a fact comparison if it
    /// contains an operator and a class otherwise (`-W "country=uk webserver"`).
    pub fn add_with(&mut self, input: &str) -> Result<(), FilterError> {
        let mut any = false;
        for token in input.split_whitespace() {
            any = true;
            if slash_regex(token).is_none() && token.contains(['=', '<', '>']) {
                self.add_fact(token)?;
            } else {
                self.add_class(token)?;
            }
        }
        if any {
            Ok(())
        } else {
            Err(FilterError::Empty { kind: "-W" })
        }
    }

    /// The identities, when the filter is nothing but exact (non-regex) identities: the case
    /// where a client knows its nodes without discovering them.
    pub fn plain_identities(&self) -> Option<&[String]> {
        let only_identities = self.fact.is_empty()
            && self.class.is_empty()
            && self.compound.is_empty()
            && !self.identity.is_empty();
        (only_identities && self.identity.iter().all(|i| slash_regex(i).is_none()))
            .then_some(self.identity.as_slice())
    }

    /// The identity filters, when there are some and all are exact names (no `/regex/`):
    /// a store can then look the names up instead of testing every node.
    pub fn exact_identities(&self) -> Option<&[String]> {
        (!self.identity.is_empty() && self.identity.iter().all(|i| slash_regex(i).is_none()))
            .then_some(self.identity.as_slice())
    }

    /// The agents, when the filter is nothing but exact agent names that
    /// [`Filter::into_compiled`] would accept (none empty, within [`MAX_FILTER_ENTRIES`]):
    /// the filter every call adds its agent to, which selects a node exactly when it serves
    /// each of them. A node decides such a filter by looking the names up, without compiling
    /// it. `None` for anything else, including a filter with no entries at all.
    pub fn plain_agents(&self) -> Option<&[String]> {
        let only_agents = self.fact.is_empty()
            && self.class.is_empty()
            && self.identity.is_empty()
            && self.compound.is_empty()
            && !self.agent.is_empty()
            && self.agent.len() <= MAX_FILTER_ENTRIES;
        (only_agents
            && self
                .agent
                .iter()
                .all(|a| !a.is_empty() && slash_regex(a).is_none()))
        .then_some(self.agent.as_slice())
    }

    /// Adds a `-S` compound expression, checking its syntax.
    pub fn add_compound(&mut self, input: &str) -> Result<(), FilterError> {
        Expr::parse(input)?;
        self.compound.push(input.to_string());
        Ok(())
    }

    /// How many entries the filter has in all its parts.
    pub fn entries(&self) -> usize {
        self.fact.len()
            + self.class.len()
            + self.identity.len()
            + self.agent.len()
            + self.compound.len()
    }

    /// Compiles the filter for evaluation; fails on bad regexes, compound syntax errors and
    /// filters over the limits ([`MAX_FILTER_ENTRIES`], [`MAX_FILTER_REGEXES`], the compound
    /// limits), which are checked before anything is compiled.
    pub fn compile(&self) -> Result<CompiledFilter, FilterError> {
        self.clone().into_compiled()
    }

    /// [`Filter::compile`], keeping the filter's names as the compiled filter's own rather
    /// than copying them: what a node does with each request's filter.
    pub fn into_compiled(self) -> Result<CompiledFilter, FilterError> {
        if self.entries() > MAX_FILTER_ENTRIES {
            return Err(FilterError::TooLarge {
                what: format!("{} entries", self.entries()),
                limit: MAX_FILTER_ENTRIES,
            });
        }
        let plain_regexes = self
            .fact
            .iter()
            .filter(|f| f.operator == FactOperator::Match)
            .count()
            + [&self.class, &self.identity, &self.agent]
                .iter()
                .flat_map(|list| list.iter())
                .filter(|m| slash_regex(m).is_some())
                .count();
        let too_many_regexes = |count: usize| FilterError::TooLarge {
            what: format!("{count} or more regular expressions"),
            limit: MAX_FILTER_REGEXES,
        };
        if plain_regexes > MAX_FILTER_REGEXES {
            return Err(too_many_regexes(plain_regexes));
        }
        let mut regex_budget = MAX_FILTER_REGEXES - plain_regexes;
        let compound = self
            .compound
            .iter()
            .map(|e| Expr::parse_within(e, &mut regex_budget))
            .collect::<Result<_, _>>()?;
        Ok(CompiledFilter {
            compound,
            facts: self
                .fact
                .iter()
                .map(FactFilter::compile_fact)
                .collect::<Result<_, _>>()?,
            classes: compile_matchers("class", self.class)?,
            identities: compile_matchers("identity", self.identity)?,
            agents: compile_matchers("agent", self.agent)?,
        })
    }
}

/// What the evaluator needs to know about a node.
#[derive(Debug, Clone, Copy)]
pub struct NodeView<'a> {
    /// The node's identity.
    pub identity: &'a str,
    /// The node's facts, a JSON object (possibly nested).
    pub facts: &'a Value,
    /// The node's classes.
    pub classes: &'a [String],
    /// The agents the node serves.
    pub agents: &'a [String],
}

/// A filter ready for evaluation: regexes compiled, numbers parsed.
#[derive(Debug, Clone)]
pub struct CompiledFilter {
    compound: Vec<Expr>,
    facts: Vec<CompiledFact>,
    classes: Vec<Matcher>,
    identities: Vec<Matcher>,
    agents: Vec<Matcher>,
}

impl CompiledFilter {
    /// Whether `node` is selected by this filter, where no data plugin can be answered. Use
    /// [`Self::matches_with`] where data plugins can be answered.
    pub fn matches(&self, node: &NodeView<'_>) -> bool {
        self.matches_with(node, &NoData)
    }

    /// Whether `node` is selected by this filter, answering data-plugin calls from `data`.
    /// A filter whose outcome depends on a data-plugin call that failed does not match: a
    /// filter is never widened by what a node could not find out.
    pub fn matches_with(&self, node: &NodeView<'_>, data: &dyn DataSource) -> bool {
        self.evaluate(node, data).unwrap_or(false)
    }

    /// The filter's value for `node`, or the data-plugin failure it depends on. This is
    /// the only filter evaluator in mco: [`Self::matches_with`] reads a failure as "no
    /// match"; an action policy reads it as "deny".
    ///
    /// Logic with unknowns is Kleene's: `false and unknown` is false, `true or unknown`
    /// true, `not unknown` unknown, so a failure only matters where it could change the
    /// answer.
    pub fn evaluate(&self, node: &NodeView<'_>, data: &dyn DataSource) -> Result<bool, DataError> {
        let simple = (self.identities.is_empty()
            || self.identities.iter().any(|m| m.is_match(node.identity)))
            && self
                .agents
                .iter()
                .all(|m| node.agents.iter().any(|a| m.is_match(a)))
            && self
                .classes
                .iter()
                .all(|m| node.classes.iter().any(|c| m.is_match(c)))
            && self.facts.iter().all(|f| f.matches(node.facts));
        if !simple {
            return Ok(false);
        }
        let mut unknown = None;
        for expr in &self.compound {
            match expr.evaluate(node, data) {
                Ok(true) => {}
                Ok(false) => return Ok(false),
                Err(e) => unknown = unknown.or(Some(e)),
            }
        }
        match unknown {
            Some(e) => Err(e),
            None => Ok(true),
        }
    }

    /// The data plugins the compound expressions call, so a client can refuse unknown ones.
    pub fn data_plugins(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.compound.iter().flat_map(Expr::data_plugins).collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// Whether the filter calls any data plugin (which only a live node can answer).
    pub fn uses_data_plugins(&self) -> bool {
        !self.data_plugins().is_empty()
    }

    /// Whether evaluating the filter reads the node's facts: a node that holds them behind a
    /// lock takes a snapshot only for filters that look at them.
    pub fn reads_facts(&self) -> bool {
        !self.facts.is_empty() || !self.compound.is_empty()
    }

    /// Whether evaluating the filter reads the node's classes.
    pub fn reads_classes(&self) -> bool {
        !self.classes.is_empty() || !self.compound.is_empty()
    }

    /// Whether evaluating the filter reads the node's agents.
    pub fn reads_agents(&self) -> bool {
        !self.agents.is_empty() || !self.compound.is_empty()
    }
}

#[derive(Debug, Clone)]
enum Matcher {
    Exact(String),
    Regex(Regex),
}

impl Matcher {
    fn is_match(&self, candidate: &str) -> bool {
        match self {
            Matcher::Exact(exact) => exact == candidate,
            Matcher::Regex(re) => re.is_match(candidate),
        }
    }
}

fn compile_matcher(kind: &'static str, input: String) -> Result<Matcher, FilterError> {
    if input.is_empty() {
        return Err(FilterError::Empty { kind });
    }
    match slash_regex(&input) {
        Some((pattern, insensitive)) => {
            let source = if insensitive {
                format!("(?i){pattern}")
            } else {
                pattern.to_string()
            };
            compile_regex(&source)
                .map(Matcher::Regex)
                .map_err(|reason| FilterError::Regex {
                    kind,
                    pattern: pattern.to_string(),
                    reason,
                })
        }
        None => Ok(Matcher::Exact(input)),
    }
}

fn checked_matcher(kind: &'static str, input: &str) -> Result<String, FilterError> {
    compile_matcher(kind, input.to_string())?;
    Ok(input.to_string())
}

fn compile_matchers(kind: &'static str, inputs: Vec<String>) -> Result<Vec<Matcher>, FilterError> {
    inputs
        .into_iter()
        .map(|i| compile_matcher(kind, i))
        .collect()
}

/// `/pattern/` or `/pattern/i` → (pattern, case-insensitive).
fn slash_regex(input: &str) -> Option<(&str, bool)> {
    let body = input.strip_prefix('/')?;
    if let Some(pattern) = body.strip_suffix("/i") {
        return Some((pattern, true));
    }
    body.strip_suffix('/').map(|pattern| (pattern, false))
}

/// One compiled fact comparison, shared by `-F` filters and `-S` expressions.
#[derive(Debug, Clone)]
pub struct CompiledFact {
    path: String,
    test: FactTest,
}

#[derive(Debug, Clone)]
enum FactTest {
    Regex(Regex),
    Compare {
        op: FactOperator,
        text: String,
        number: Option<Number>,
        boolean: Option<bool>,
    },
}

impl CompiledFact {
    /// Whether the fact (or data-plugin output) named by this comparison, looked up in
    /// `facts`, satisfies it.
    pub fn matches(&self, facts: &Value) -> bool {
        let Some(value) = lookup(facts, &self.path) else {
            return false;
        };
        match &self.test {
            FactTest::Compare {
                op: FactOperator::Ne,
                text,
                number,
                boolean,
            } => !any_scalar(value, &|v| {
                compare(v, FactOperator::Eq, text, *number, *boolean)
            }),
            FactTest::Compare {
                op,
                text,
                number,
                boolean,
            } => any_scalar(value, &|v| compare(v, *op, text, *number, *boolean)),
            FactTest::Regex(re) => any_scalar(value, &|v| {
                scalar_text(v).is_some_and(|text| re.is_match(&text))
            }),
        }
    }
}

/// Finds a fact by name, then by dotted path through objects and arrays (`os.family`,
/// `disks.0.size`). This is how every part of mco resolves a fact name.
pub fn lookup<'v>(facts: &'v Value, path: &str) -> Option<&'v Value> {
    if let Some(direct) = facts.get(path) {
        return Some(direct);
    }
    let mut current = facts;
    for segment in path.split('.') {
        current = match current {
            Value::Object(map) => map.get(segment)?,
            Value::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

/// Applies `test` to a scalar, or to each element of an array (or each key of an object).
fn any_scalar(value: &Value, test: &dyn Fn(&Value) -> bool) -> bool {
    match value {
        Value::Array(items) => items
            .iter()
            .any(|item| !item.is_array() && any_scalar(item, test)),
        Value::Object(map) => map.keys().any(|k| test(&Value::String(k.clone()))),
        scalar => test(scalar),
    }
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some(String::new()),
        _ => None,
    }
}

fn compare(
    fact: &Value,
    op: FactOperator,
    text: &str,
    number: Option<Number>,
    boolean: Option<bool>,
) -> bool {
    let ordering = match fact {
        Value::Bool(b) => match (op, boolean) {
            (FactOperator::Eq, Some(want)) => return *b == want,
            _ => return false,
        },
        Value::Number(n) => match (value_number(n), number) {
            (Some(have), Some(want)) => have.cmp(want),
            _ => return op == FactOperator::Eq && n.to_string() == text,
        },
        Value::String(s) => match (parse_number(s), number) {
            (Some(have), Some(want)) => have.cmp(want),
            // A number on one side only: equality by text, never an ordering.
            (Some(_), None) | (None, Some(_)) => {
                return op == FactOperator::Eq && s == text;
            }
            (None, None) => Some(s.as_str().cmp(text)),
        },
        _ => return false,
    };
    let Some(ordering) = ordering else {
        return false;
    };
    match op {
        FactOperator::Eq => ordering == Ordering::Equal,
        FactOperator::Lt => ordering == Ordering::Less,
        FactOperator::Gt => ordering == Ordering::Greater,
        FactOperator::Le => ordering != Ordering::Greater,
        FactOperator::Ge => ordering != Ordering::Less,
        FactOperator::Ne | FactOperator::Match => false,
    }
}

/// A number from a fact or filter: integers are kept exact, everything else is a float.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Number {
    Int(i128),
    Float(f64),
}

impl Number {
    fn cmp(self, other: Number) -> Option<Ordering> {
        match (self, other) {
            (Number::Int(a), Number::Int(b)) => Some(a.cmp(&b)),
            (a, b) => a.as_f64().partial_cmp(&b.as_f64()),
        }
    }

    fn as_f64(self) -> f64 {
        match self {
            Number::Int(i) => i as f64,
            Number::Float(f) => f,
        }
    }
}

fn value_number(n: &serde_json::Number) -> Option<Number> {
    if let Some(i) = n.as_i64() {
        Some(Number::Int(i as i128))
    } else if let Some(u) = n.as_u64() {
        Some(Number::Int(u as i128))
    } else {
        n.as_f64().map(Number::Float)
    }
}

/// Parses decimal numbers only: `4`, `-2`, `1.5`, `1e3`. Not `inf`, `NaN`, hex or empty.
fn parse_number(text: &str) -> Option<Number> {
    let t = text.trim();
    let first = t.chars().next()?;
    if !(first.is_ascii_digit() || ((first == '-' || first == '+' || first == '.') && t.len() > 1))
    {
        return None;
    }
    if !t
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E'))
    {
        return None;
    }
    if let Ok(i) = t.parse::<i128>() {
        return Some(Number::Int(i));
    }
    t.parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
        .map(Number::Float)
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "yes" | "y" | "t" => Some(true),
        "false" | "no" | "n" | "f" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn facts() -> Value {
        json!({
            "country": "uk",
            "cpus": 4,
            "load": 1.5,
            "memory_mb": "2048",
            "release": "12.5",
            "virtual": true,
            "roles": ["web", "cache"],
            "os": {"family": "Debian", "release": {"major": "12"}},
            "dotted.key": "literal",
            "disks": [{"size": 100}],
            "nothing": null
        })
    }

    fn matches_fact(filter: &str) -> bool {
        let mut f = Filter::default();
        f.add_fact(filter).unwrap();
        let facts = facts();
        let node = NodeView {
            identity: "web1",
            facts: &facts,
            classes: &[],
            agents: &[],
        };
        f.compile().unwrap().matches(&node)
    }

    #[test]
    fn fact_filters() {
        let table: &[(&str, bool)] = &[
            ("country=uk", true),
            ("country==uk", true),
            ("country=de", false),
            ("country!=de", true),
            ("country!=uk", false),
            ("country=UK", false),
            ("country=/^u/", true),
            ("country=/^U/", false),
            ("country=/^U/i", true),
            ("country=~^u", true),
            ("cpus=4", true),
            ("cpus=4.0", true),
            ("cpus>3", true),
            ("cpus>4", false),
            ("cpus>=4", true),
            ("cpus<5", true),
            ("cpus<=3", false),
            ("cpus=>4", true),
            ("cpus=<4", true),
            // Choria evaluated `>` with a float as `>=`.
            ("load>1.5", false),
            ("load>=1.5", true),
            ("load<1.5", false),
            ("load>1.4", true),
            // Numbers in strings compare as numbers: "2048" > "300" though "2" < "3".
            ("memory_mb>300", true),
            ("memory_mb<300", false),
            ("release>12.10", true),
            ("release>9", true),
            ("virtual=true", true),
            ("virtual=yes", true),
            ("virtual=false", false),
            ("virtual>0", false),
            ("roles=web", true),
            ("roles=cache", true),
            ("roles=db", false),
            ("roles!=db", true),
            ("roles!=web", false),
            ("roles=/^ca/", true),
            ("os.family=Debian", true),
            ("os.family=/deb/i", true),
            ("os.release.major>=12", true),
            ("os.release.major>12", false),
            ("dotted.key=literal", true),
            ("disks.0.size>=100", true),
            ("disks.1.size>=100", false),
            ("missing=x", false),
            ("missing!=x", false),
            ("os.missing=x", false),
            ("country<zz", true),
            ("country>zz", false),
            ("cpus>four", false),
            ("nothing=x", false),
        ];
        for (filter, want) in table {
            assert_eq!(matches_fact(filter), *want, "{filter}");
        }
    }

    #[test]
    fn fact_parsing() {
        let table: &[(&str, &str, FactOperator, &str)] = &[
            ("a=b", "a", FactOperator::Eq, "b"),
            ("a == b", "a", FactOperator::Eq, "b"),
            ("a!=b", "a", FactOperator::Ne, "b"),
            ("a<=1", "a", FactOperator::Le, "1"),
            ("a=<1", "a", FactOperator::Le, "1"),
            ("a>=1", "a", FactOperator::Ge, "1"),
            ("a=>1", "a", FactOperator::Ge, "1"),
            ("a<1", "a", FactOperator::Lt, "1"),
            ("a>1", "a", FactOperator::Gt, "1"),
            ("a=~x.*", "a", FactOperator::Match, "x.*"),
            ("a=/x/", "a", FactOperator::Match, "x"),
            ("a=/x/i", "a", FactOperator::Match, "(?i)x"),
            ("os.family=debian", "os.family", FactOperator::Eq, "debian"),
            ("url=http://a=b", "url", FactOperator::Eq, "http://a=b"),
        ];
        for (input, fact, op, value) in table {
            let parsed = FactFilter::parse(input).unwrap();
            assert_eq!(
                (parsed.fact.as_str(), parsed.operator, parsed.value.as_str()),
                (*fact, *op, *value),
                "{input}"
            );
        }
        for bad in [
            "country", "=uk", "country=", "a=/[/", "a=~(", "(a=1", "a b=1", "f('x')=1",
        ] {
            assert!(FactFilter::parse(bad).is_err(), "{bad}");
        }
    }

    fn node_matches(filter: &Filter, identity: &str, classes: &[&str], agents: &[&str]) -> bool {
        let classes: Vec<String> = classes.iter().map(|s| s.to_string()).collect();
        let agents: Vec<String> = agents.iter().map(|s| s.to_string()).collect();
        let facts = facts();
        filter.compile().unwrap().matches(&NodeView {
            identity,
            facts: &facts,
            classes: &classes,
            agents: &agents,
        })
    }

    #[test]
    fn a_plain_agent_filter_selects_exactly_the_nodes_its_compiled_form_selects() {
        let served = ["rpcutil", "service", "package"];
        let lists: &[&[&str]] = &[
            &["rpcutil"],
            &["rpcutil", "service"],
            &["puppet"],
            &["rpcutil", "puppet"],
            &["rpcutil", "rpcutil"],
        ];
        for list in lists {
            let filter = Filter {
                agent: list.iter().map(|a| a.to_string()).collect(),
                ..Filter::default()
            };
            let names = filter.plain_agents().expect("exact names only");
            let looked_up = names.iter().all(|a| served.contains(&a.as_str()));
            assert_eq!(
                looked_up,
                node_matches(&filter, "web1", &[], &served),
                "{list:?}"
            );
        }
        // Anything else is compiled: a regex, an empty name (which compiling refuses), other
        // parts, no entries at all, more entries than a filter may have.
        let with = |change: &dyn Fn(&mut Filter)| {
            let mut filter = Filter {
                agent: vec!["rpcutil".into()],
                ..Filter::default()
            };
            change(&mut filter);
            filter
        };
        let compiled_instead = [
            with(&|f| f.agent.push("/^rpc/".into())),
            with(&|f| f.agent.push("/^RPC/i".into())),
            with(&|f| f.agent.push(String::new())),
            with(&|f| f.identity.push("web1".into())),
            with(&|f| f.class.push("web".into())),
            with(&|f| f.fact.push(FactFilter::parse("country=uk").unwrap())),
            with(&|f| f.compound.push("country=uk".into())),
            with(&|f| f.agent.clear()),
            with(&|f| f.agent = vec!["rpcutil".into(); MAX_FILTER_ENTRIES + 1]),
        ];
        for filter in &compiled_instead {
            assert_eq!(filter.plain_agents(), None, "{filter:?}");
        }
        assert!(compiled_instead[2].compile().is_err());
        assert!(compiled_instead[8].compile().is_err());
    }

    #[test]
    fn identity_filters_are_ored() {
        let mut f = Filter::default();
        f.add_identity("/^web/").unwrap();
        f.add_identity("web1").unwrap();
        // MCollective required exactly one entry to match, so web1 was missed.
        assert!(node_matches(&f, "web1", &[], &[]));
        assert!(node_matches(&f, "web2", &[], &[]));
        assert!(!node_matches(&f, "db1", &[], &[]));
        let mut g = Filter::default();
        g.add_identity("db1").unwrap();
        g.add_identity("db2").unwrap();
        assert!(node_matches(&g, "db2", &[], &[]));
        assert!(!node_matches(&g, "db3", &[], &[]));
    }

    #[test]
    fn class_and_agent_filters_are_anded() {
        let classes = ["webserver", "base::ntp"];
        let table: &[(&[&str], bool)] = &[
            (&["webserver"], true),
            (&["webserver", "base::ntp"], true),
            (&["webserver", "database"], false),
            (&["/^base::/"], true),
            (&["/SERVER/i"], true),
            (&["web"], false),
        ];
        for (entries, want) in table {
            let mut f = Filter::default();
            for e in *entries {
                f.add_class(e).unwrap();
            }
            assert_eq!(node_matches(&f, "n", &classes, &[]), *want, "{entries:?}");
        }
        let mut f = Filter::default();
        f.add_agent("rpcutil").unwrap();
        assert!(node_matches(&f, "n", &[], &["rpcutil", "service"]));
        f.add_agent("/^pack/").unwrap();
        assert!(!node_matches(&f, "n", &[], &["rpcutil", "service"]));
        assert!(node_matches(&f, "n", &[], &["rpcutil", "package"]));
    }

    #[test]
    fn with_filter_splits_facts_and_classes() {
        let mut f = Filter::default();
        f.add_with("country=uk webserver cpus>=2 /^base/").unwrap();
        assert_eq!(f.fact.len(), 2);
        assert_eq!(f.class, vec!["webserver", "/^base/"]);
        assert!(node_matches(&f, "n", &["webserver", "base::x"], &[]));
        assert!(!node_matches(&f, "n", &["webserver"], &[]));
        assert!(Filter::default().add_with("  ").is_err());
    }

    #[test]
    fn empty_filter_matches_everything() {
        assert!(node_matches(&Filter::default(), "any", &[], &[]));
    }

    #[test]
    fn all_categories_must_pass() {
        let mut f = Filter::default();
        f.add_fact("country=uk").unwrap();
        f.add_class("webserver").unwrap();
        f.add_identity("/^web/").unwrap();
        assert!(node_matches(&f, "web1", &["webserver"], &[]));
        assert!(!node_matches(&f, "db1", &["webserver"], &[]));
        assert!(!node_matches(&f, "web1", &[], &[]));
    }

    #[test]
    fn compound_filters_are_anded_with_the_rest() {
        let mut f = Filter::default();
        f.add_compound("country=uk or country=de").unwrap();
        f.add_compound("not /^db/").unwrap();
        assert!(node_matches(&f, "n", &["webserver"], &[]));
        assert!(!node_matches(&f, "n", &["dbserver"], &[]));
        f.add_identity("other").unwrap();
        assert!(!node_matches(&f, "n", &["webserver"], &[]));
        assert!(Filter::default().add_compound("(a=1").is_err());
        let wire = Filter {
            compound: vec!["x=".into()],
            ..Filter::default()
        };
        assert!(matches!(wire.compile(), Err(FilterError::Compound(_))));
    }

    #[test]
    fn plain_identities_only_for_exact_identity_filters() {
        let mut f = Filter::default();
        f.add_identity("a").unwrap();
        f.add_identity("b").unwrap();
        assert_eq!(f.plain_identities().unwrap(), ["a", "b"]);
        f.add_identity("/c/").unwrap();
        assert!(f.plain_identities().is_none());
        let mut g = Filter::default();
        g.add_identity("a").unwrap();
        g.add_fact("x=1").unwrap();
        assert!(g.plain_identities().is_none());
    }

    #[test]
    fn bad_regexes_are_errors() {
        assert!(Filter::default().add_class("/[/").is_err());
        assert!(Filter::default().add_identity("/(/").is_err());
        assert!(Filter::default().add_identity("").is_err());
        // A filter received over the wire is checked when compiled.
        let f = Filter {
            class: vec!["/[/".into()],
            ..Filter::default()
        };
        assert!(f.compile().is_err());
    }

    #[test]
    fn numbers_parse_strictly() {
        for n in ["1", "-2", "1.5", "1e3", "+4", ".5"] {
            assert!(parse_number(n).is_some(), "{n}");
        }
        for n in ["", "inf", "NaN", "infinity", "0x10", "1.2.3.x", "-", "abc"] {
            assert!(parse_number(n).is_none(), "{n}");
        }
    }
}
