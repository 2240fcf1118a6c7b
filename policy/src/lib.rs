//! Action policies: who may call which action, in MCollective's actionpolicy format.
//!
//! One file per agent (`<policy_dir>/<agent>.policy`), optionally a `default.policy` used for
//! agents without their own, and a `groups` file naming caller groups. A policy file holds
//! `policy default allow|deny` and rules, one per line, fields separated by tabs (shown as
//! `<TAB>`):
//!
//! ```text
//! policy default deny
//! allow<TAB>alice bob<TAB>*<TAB>*<TAB>*
//! allow<TAB>@ops<TAB>status restart<TAB>country=uk<TAB>role::web
//! deny<TAB>/^guest/<TAB>*<TAB>*<TAB>*
//! allow<TAB>*<TAB>status<TAB>(country=uk or country=de) and not environment=dev
//! ```
//!
//! Fields: decision; callers (names, `@group`, `/regex/`, or `*`); actions (names or `*`);
//! facts (space-separated fact filters that must all match, a compound expression, or `*`);
//! classes (space-separated names or `/regex/`, all of which must be present, or `*`; omitted
//! when the facts field is a compound expression). The first rule that matches decides; if
//! none does, the file's default does (deny if it has none). Fact and compound tests are
//! decided by the one filter evaluator in `mco_spec`, with the node's data plugins
//! (`fstat('/etc/x').present=true`). A rule whose test depends on a data-plugin call that
//! failed fails closed: a `deny` rule applies, an `allow` rule does not.
//!
//! This crate parses and decides; it does not log, audit or read files other than through
//! [`PolicySet::load_dir`]. It is its own crate so that its parser can be fuzzed without
//! building the daemon.

#![warn(missing_docs)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use mco_spec::compound::{DataSource, Expr};
use mco_spec::filter::{compile_regex, Filter, NodeView};
use mco_spec::CompiledFilter;
use regex::Regex;

/// Why a policy could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// A file could not be read.
    #[error("{file}: {source}")]
    Io {
        /// The file.
        file: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line could not be parsed.
    #[error("{file}:{line}: {reason}")]
    Syntax {
        /// The file.
        file: String,
        /// The 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The action may run.
    Allow,
    /// The action must not run.
    Deny,
}

/// Why a decision was made, for logs and audit lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Allow or deny.
    pub decision: Decision,
    /// Which rule decided: `file:line`, `file: default`, or the reason no file applied.
    pub reason: String,
}

#[derive(Debug, Clone)]
enum CallerMatcher {
    Any,
    Name(String),
    Group(String),
    Regex(Regex),
}

#[derive(Debug, Clone)]
enum NodeTest {
    Any,
    Filter(CompiledFilter),
}

#[derive(Debug, Clone)]
struct Rule {
    decision: Decision,
    callers: Vec<CallerMatcher>,
    actions: Option<Vec<String>>,
    node: NodeTest,
    line: usize,
}

/// One agent's policy file.
#[derive(Debug, Clone)]
pub struct Policy {
    file: String,
    default: Option<Decision>,
    rules: Vec<Rule>,
}

/// What a policy decision is about.
#[derive(Clone, Copy)]
pub struct PolicyRequest<'a> {
    /// The verified caller name.
    pub caller: &'a str,
    /// The action called.
    pub action: &'a str,
    /// The node the decision is made on.
    pub node: NodeView<'a>,
    /// Answers the data-plugin calls of rules' tests.
    pub data: &'a dyn DataSource,
}

impl Policy {
    /// Whether any rule's test calls a data plugin (so deciding may block on the node).
    pub fn uses_data_plugins(&self) -> bool {
        self.rules
            .iter()
            .any(|r| matches!(&r.node, NodeTest::Filter(f) if f.uses_data_plugins()))
    }

    /// Parses policy text; `file` names it in errors and verdicts.
    pub fn parse(text: &str, file: &str) -> Result<Policy, PolicyError> {
        let syntax = |line: usize, reason: String| PolicyError::Syntax {
            file: file.to_string(),
            line,
            reason,
        };
        let mut policy = Policy {
            file: file.to_string(),
            default: None,
            rules: Vec::new(),
        };
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            if let Some(rest) = trimmed.strip_prefix("policy default") {
                policy.default = Some(match rest.trim() {
                    "allow" => Decision::Allow,
                    "deny" => Decision::Deny,
                    other => return Err(syntax(line, format!("expected 'policy default allow' or 'policy default deny', found {other:?}"))),
                });
                continue;
            }
            let fields: Vec<&str> = raw
                .split('\t')
                .map(str::trim)
                .filter(|f| !f.is_empty())
                .collect();
            if fields.len() < 4 || fields.len() > 5 {
                return Err(syntax(
                    line,
                    format!(
                        "expected 4 or 5 tab-separated fields (decision, callers, actions, facts[, classes]), found {}",
                        fields.len()
                    ),
                ));
            }
            let decision = match fields[0] {
                "allow" => Decision::Allow,
                "deny" => Decision::Deny,
                other => {
                    return Err(syntax(
                        line,
                        format!("expected allow or deny, found {other:?}"),
                    ))
                }
            };
            let callers = fields[1]
                .split_whitespace()
                .map(|c| parse_caller(c).map_err(|reason| syntax(line, reason)))
                .collect::<Result<Vec<_>, _>>()?;
            let actions = (fields[2] != "*")
                .then(|| fields[2].split_whitespace().map(str::to_string).collect());
            let node = parse_node_test(fields[3], fields.get(4).copied())
                .map_err(|reason| syntax(line, reason))?;
            policy.rules.push(Rule {
                decision,
                callers,
                actions,
                node,
                line,
            });
        }
        Ok(policy)
    }

    /// Decides `request`, resolving `@group` callers with `groups`.
    pub fn decide(&self, request: &PolicyRequest<'_>, groups: &Groups) -> Verdict {
        for rule in &self.rules {
            let caller_ok = rule.callers.iter().any(|m| match m {
                CallerMatcher::Any => true,
                CallerMatcher::Name(n) => n == request.caller,
                CallerMatcher::Group(g) => groups.contains(g, request.caller),
                CallerMatcher::Regex(re) => re.is_match(request.caller),
            });
            let action_ok = rule
                .actions
                .as_ref()
                .is_none_or(|a| a.iter().any(|x| x == request.action));
            if !(caller_ok && action_ok) {
                continue;
            }
            let (node_ok, failure) = match &rule.node {
                NodeTest::Any => (true, None),
                NodeTest::Filter(f) => match f.evaluate(&request.node, request.data) {
                    Ok(matched) => (matched, None),
                    // Fail closed: an unknown test makes a deny rule apply and an allow
                    // rule not apply.
                    Err(e) => (rule.decision == Decision::Deny, Some(e)),
                },
            };
            if node_ok {
                return Verdict {
                    decision: rule.decision,
                    reason: match failure {
                        None => format!("{}:{}", self.file, rule.line),
                        Some(e) => format!(
                            "{}:{} (its test could not be decided: {e})",
                            self.file, rule.line
                        ),
                    },
                };
            }
        }
        Verdict {
            decision: self.default.unwrap_or(Decision::Deny),
            reason: format!("{}: default", self.file),
        }
    }
}

fn parse_caller(text: &str) -> Result<CallerMatcher, String> {
    if text == "*" {
        return Ok(CallerMatcher::Any);
    }
    if let Some(group) = text.strip_prefix('@') {
        return Ok(CallerMatcher::Group(group.to_string()));
    }
    if let Some(pattern) = text.strip_prefix('/').and_then(|t| t.strip_suffix('/')) {
        return compile_regex(pattern)
            .map(CallerMatcher::Regex)
            .map_err(|e| format!("invalid caller regex {text:?}: {e}"));
    }
    Ok(CallerMatcher::Name(text.to_string()))
}

fn parse_node_test(facts: &str, classes: Option<&str>) -> Result<NodeTest, String> {
    let mut filter = Filter::default();
    if facts != "*" {
        let as_facts: Result<Vec<_>, _> = facts
            .split_whitespace()
            .map(mco_spec::FactFilter::parse)
            .collect();
        match as_facts {
            Ok(list) => filter.fact = list,
            Err(_) => {
                Expr::parse(facts).map_err(|e| e.to_string())?;
                if classes.is_some_and(|c| c != "*") {
                    return Err("a compound facts field cannot be followed by classes".into());
                }
                filter.compound.push(facts.to_string());
            }
        }
    }
    if let Some(classes) = classes.filter(|c| *c != "*") {
        for class in classes.split_whitespace() {
            filter.add_class(class).map_err(|e| e.to_string())?;
        }
    }
    if filter.is_empty() {
        return Ok(NodeTest::Any);
    }
    filter
        .compile()
        .map(NodeTest::Filter)
        .map_err(|e| e.to_string())
}

/// Caller groups from a `groups` file: `name member member ...` per line.
#[derive(Debug, Clone, Default)]
pub struct Groups {
    members: HashMap<String, Vec<String>>,
}

impl Groups {
    /// Parses a groups file.
    pub fn parse(text: &str) -> Groups {
        let mut members = HashMap::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line.split_whitespace();
            if let Some(name) = words.next() {
                members
                    .entry(name.to_string())
                    .or_insert_with(Vec::new)
                    .extend(words.map(str::to_string));
            }
        }
        Groups { members }
    }

    /// Whether `caller` is in `group`.
    pub fn contains(&self, group: &str, caller: &str) -> bool {
        self.members
            .get(group)
            .is_some_and(|m| m.iter().any(|c| c == caller))
    }
}

/// Every agent's policy, as loaded from a policy directory.
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    policies: HashMap<String, Policy>,
    default: Option<Policy>,
    groups: Groups,
    /// What happens to an agent with no policy file and no `default.policy`.
    pub allow_unconfigured: bool,
    dir: PathBuf,
}

impl PolicySet {
    /// Loads `<dir>/<agent>.policy` files, `default.policy` and `groups`. A missing directory
    /// is an empty set.
    pub fn load_dir(dir: &Path, allow_unconfigured: bool) -> Result<PolicySet, PolicyError> {
        let mut set = PolicySet {
            allow_unconfigured,
            dir: dir.to_path_buf(),
            ..PolicySet::default()
        };
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(set),
            Err(source) => {
                return Err(PolicyError::Io {
                    file: dir.display().to_string(),
                    source,
                })
            }
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string();
            let read = || {
                std::fs::read_to_string(&path).map_err(|source| PolicyError::Io {
                    file: path.display().to_string(),
                    source,
                })
            };
            if name == "groups" {
                set.groups = Groups::parse(&read()?);
            } else if let Some(agent) = name.strip_suffix(".policy") {
                let policy = Policy::parse(&read()?, &path.display().to_string())?;
                if agent == "default" {
                    set.default = Some(policy);
                } else {
                    set.policies.insert(agent.to_string(), policy);
                }
            }
        }
        Ok(set)
    }

    /// The policy that decides for `agent`, if any.
    fn policy_for(&self, agent: &str) -> Option<&Policy> {
        self.policies.get(agent).or(self.default.as_ref())
    }

    /// Whether deciding for `agent` may call data plugins.
    pub fn uses_data_plugins(&self, agent: &str) -> bool {
        self.policy_for(agent)
            .is_some_and(Policy::uses_data_plugins)
    }

    /// Decides whether `request` may run an action of `agent`.
    pub fn decide(&self, agent: &str, request: &PolicyRequest<'_>) -> Verdict {
        match self.policy_for(agent) {
            Some(policy) => policy.decide(request, &self.groups),
            None if self.allow_unconfigured => Verdict {
                decision: Decision::Allow,
                reason: format!(
                    "no policy for agent {agent} in {}, unconfigured agents allowed",
                    self.dir.display()
                ),
            },
            None => Verdict {
                decision: Decision::Deny,
                reason: format!("no policy for agent {agent} in {}", self.dir.display()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mco_spec::compound::{DataError, NoData};
    use serde_json::json;

    const POLICY: &str = "# service policy\npolicy default deny\n\
allow\talice bob\t*\t*\t*\n\
allow\t@ops\tstatus restart\tcountry=uk\trole::web\n\
deny\t/^guest/\t*\t*\t*\n\
allow\t*\tstatus\t(country=uk or country=de) and not environment=dev\n\
deny\tcarol\tstop\t*\n\
allow\tcarol\t*\tcpus>=4\t*\n";

    fn decide(caller: &str, action: &str, facts: serde_json::Value, classes: &[&str]) -> Decision {
        let policy = Policy::parse(POLICY, "service.policy").unwrap();
        let groups = Groups::parse("ops dave erin\n# comment\n");
        let classes: Vec<String> = classes.iter().map(|c| c.to_string()).collect();
        let node = NodeView {
            identity: "web1",
            facts: &facts,
            classes: &classes,
            agents: &[],
        };
        policy
            .decide(
                &PolicyRequest {
                    caller,
                    action,
                    node,
                    data: &NoData,
                },
                &groups,
            )
            .decision
    }

    #[test]
    fn first_matching_rule_wins() {
        use Decision::*;
        let uk = json!({"country": "uk", "environment": "prod", "cpus": 2});
        let de_dev = json!({"country": "de", "environment": "dev", "cpus": 8});
        let table: Vec<(&str, &str, &serde_json::Value, &[&str], Decision)> = vec![
            ("alice", "stop", &uk, &[], Allow),
            ("bob", "restart", &de_dev, &[], Allow),
            ("dave", "restart", &uk, &["role::web"], Allow),
            // Without the class the @ops rule does not match and nothing later allows restart.
            ("dave", "restart", &uk, &[], Deny),
            ("dave", "stop", &uk, &["role::web"], Deny),
            ("erin", "status", &de_dev, &["role::web"], Deny),
            ("guest1", "status", &uk, &[], Deny),
            ("zed", "status", &uk, &[], Allow),
            ("zed", "status", &de_dev, &[], Deny),
            ("zed", "restart", &uk, &[], Deny),
            ("carol", "stop", &de_dev, &[], Deny),
            ("carol", "start", &de_dev, &[], Allow),
            ("carol", "start", &uk, &[], Deny),
        ];
        for (caller, action, facts, classes, want) in table {
            assert_eq!(
                decide(caller, action, facts.clone(), classes),
                want,
                "{caller} {action} {facts}"
            );
        }
    }

    #[test]
    fn default_allow_and_no_default() {
        let facts = json!({});
        let node = NodeView {
            identity: "n",
            facts: &facts,
            classes: &[],
            agents: &[],
        };
        let request = PolicyRequest {
            caller: "x",
            action: "a",
            node,
            data: &NoData,
        };
        let allow = Policy::parse("policy default allow\n", "p").unwrap();
        assert_eq!(
            allow.decide(&request, &Groups::default()).decision,
            Decision::Allow
        );
        let none = Policy::parse("", "p").unwrap();
        let verdict = none.decide(&request, &Groups::default());
        assert_eq!(verdict.decision, Decision::Deny);
        assert_eq!(verdict.reason, "p: default");
    }

    /// Answers `fstat('/etc/x')` as present and fails every other call.
    struct OnlyEtcX;

    impl DataSource for OnlyEtcX {
        fn query(&self, plugin: &str, query: Option<&str>) -> Result<serde_json::Value, DataError> {
            match (plugin, query) {
                ("fstat", Some("/etc/x")) => Ok(json!({"present": true})),
                _ => Err(DataError {
                    plugin: plugin.into(),
                    reason: "refused".into(),
                }),
            }
        }
    }

    #[test]
    fn data_plugin_rules_are_evaluated_and_fail_closed() {
        let facts = json!({"country": "uk"});
        let node = NodeView {
            identity: "n",
            facts: &facts,
            classes: &[],
            agents: &[],
        };
        let decide = |text: &str, data: &dyn DataSource| {
            let policy = Policy::parse(text, "p").unwrap();
            assert!(policy.uses_data_plugins());
            policy
                .decide(
                    &PolicyRequest {
                        caller: "alice",
                        action: "stop",
                        node,
                        data,
                    },
                    &Groups::default(),
                )
                .decision
        };
        let deny_present = "policy default allow\ndeny\t*\t*\tfstat('/etc/x').present=true\n";
        assert_eq!(decide(deny_present, &OnlyEtcX), Decision::Deny);
        // Without an answer the deny rule still applies: never fail open.
        assert_eq!(decide(deny_present, &NoData), Decision::Deny);
        let deny_absent = "policy default allow\ndeny\t*\t*\tnot fstat('/etc/y').present=true\n";
        assert_eq!(decide(deny_absent, &OnlyEtcX), Decision::Deny);
        let allow_present = "policy default deny\nallow\t*\t*\tfstat('/etc/x').present=true\n";
        assert_eq!(decide(allow_present, &OnlyEtcX), Decision::Allow);
        assert_eq!(decide(allow_present, &NoData), Decision::Deny);
        let allow_not = "policy default deny\nallow\t*\t*\tnot fstat('/etc/y').present=true\n";
        assert_eq!(decide(allow_not, &OnlyEtcX), Decision::Deny);
        // Where the failed call cannot change the answer, the rule is decided normally.
        let either =
            "policy default allow\ndeny\t*\t*\tcountry=de and fstat('/etc/y').present=true\n";
        assert_eq!(decide(either, &NoData), Decision::Allow);
    }

    #[test]
    fn syntax_errors_name_file_and_line() {
        for (text, needle) in [
            ("policy default maybe\n", "p:1"),
            (
                "\nallow alice * * *\n",
                "p:2: expected 4 or 5 tab-separated fields",
            ),
            ("permit\t*\t*\t*\n", "expected allow or deny"),
            ("allow\t/(/\t*\t*\n", "invalid caller regex"),
            ("allow\t*\t*\t(a=1\n", "syntax error"),
            (
                "allow\t*\t*\ta=1 or b=2\tweb\n",
                "cannot be followed by classes",
            ),
        ] {
            let err = Policy::parse(text, "p").unwrap_err().to_string();
            assert!(err.contains(needle), "{needle:?} not in {err:?}");
        }
    }

    #[test]
    fn policy_sets_fall_back_to_default_then_unconfigured() {
        let dir = std::env::temp_dir().join(format!("mco-policy-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("service.policy"), "allow\talice\t*\t*\t*\n").unwrap();
        let facts = json!({});
        let node = NodeView {
            identity: "n",
            facts: &facts,
            classes: &[],
            agents: &[],
        };
        let alice = PolicyRequest {
            caller: "alice",
            action: "stop",
            node,
            data: &NoData,
        };
        let set = PolicySet::load_dir(&dir, false).unwrap();
        assert_eq!(set.decide("service", &alice).decision, Decision::Allow);
        let verdict = set.decide("package", &alice);
        assert_eq!(verdict.decision, Decision::Deny);
        assert!(verdict.reason.contains("no policy for agent package"));
        assert_eq!(
            PolicySet::load_dir(&dir, true)
                .unwrap()
                .decide("package", &alice)
                .decision,
            Decision::Allow
        );
        std::fs::write(
            dir.join("default.policy"),
            "policy default deny\nallow\t*\tstatus\t*\t*\n",
        )
        .unwrap();
        let set = PolicySet::load_dir(&dir, true).unwrap();
        assert_eq!(set.decide("package", &alice).decision, Decision::Deny);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(PolicySet::load_dir(&dir, false)
            .unwrap()
            .policies
            .is_empty());
    }
}
