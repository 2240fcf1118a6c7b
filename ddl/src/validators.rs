//! String validators named by a DDL input's `validation`.
//!
//! A `validation` is either the name of a validator (a bare lowercase word such as
//! `shellsafe` or `service_name`) or a regular expression that the value must match somewhere
//! (anchor it with `^…$` to match the whole value, as DDLs usually do), read in the Ruby/Go
//! dialect by [`mco_spec::filter::compile_regex`]. A validator name mco does not know (a
//! plugin's own, such as `*_fqdn`) is [`Validation::Unsupported`]: as in Choria, the DDL loads
//! with a warning and the value is checked only by its type and length, so the agent itself
//! must validate it. `mco plugin lint` reports it.

use std::net::{Ipv4Addr, Ipv6Addr};

use mco_spec::filter::compile_regex;
use regex::Regex;

/// A parsed `validation` rule.
#[derive(Debug, Clone)]
pub enum Validation {
    /// No shell metacharacters: `` ` `` `$` `;` `|` `&` `<` `>` and no line breaks or NULs.
    ShellSafe,
    /// A dotted-quad IPv4 address.
    Ipv4Address,
    /// An IPv6 address.
    Ipv6Address,
    /// An IPv4 or IPv6 address.
    IpAddress,
    /// A named validator defined by a regular expression (`service_name`, ...).
    Named(&'static str, Regex),
    /// A regular expression from the DDL.
    Regex(Regex),
    /// A validator name mco does not know; not enforced (Choria: "Unsupported validator").
    Unsupported(String),
}

/// Named validators that real DDLs use, with the patterns their plugins define.
const NAMED: &[(&str, &str)] = &[
    // choria-plugins/service-agent's validator.
    ("service_name", r"^[a-zA-Z.\-_\d:@]+$"),
    // Puppet environment and variable names.
    ("puppet_variable", r"^[a-zA-Z0-9_]+$"),
    // A host name with an optional port.
    ("puppet_server_address", r"^[a-zA-Z0-9_.\-]+(:\d{1,5})?$"),
    // Comma-separated Puppet tags (class names may contain `::`).
    ("puppet_tags", r"^[a-zA-Z0-9_:.\-]+(,[a-zA-Z0-9_:.\-]+)*$"),
];

impl Validation {
    /// Parses a DDL `validation` string.
    pub fn parse(rule: &str) -> Result<Validation, String> {
        match rule {
            "shellsafe" => return Ok(Validation::ShellSafe),
            "ipv4address" => return Ok(Validation::Ipv4Address),
            "ipv6address" => return Ok(Validation::Ipv6Address),
            "ipaddress" => return Ok(Validation::IpAddress),
            _ => {}
        }
        if let Some((name, pattern)) = NAMED.iter().find(|(name, _)| *name == rule) {
            let regex = compile_regex(pattern).map_err(|e| format!("validator {name}: {e}"))?;
            return Ok(Validation::Named(name, regex));
        }
        let bare_word = !rule.is_empty()
            && rule
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if bare_word && rule.chars().next().is_some_and(|c| c.is_ascii_lowercase()) {
            return Ok(Validation::Unsupported(rule.to_string()));
        }
        compile_regex(rule)
            .map(Validation::Regex)
            .map_err(|e| format!("invalid regular expression {rule:?}: {e}"))
    }

    /// The validator names mco enforces.
    pub fn known_names() -> Vec<&'static str> {
        ["shellsafe", "ipv4address", "ipv6address", "ipaddress"]
            .into_iter()
            .chain(NAMED.iter().map(|(n, _)| *n))
            .collect()
    }

    /// Checks `value`; the error says why it was refused.
    pub fn check(&self, value: &str) -> Result<(), String> {
        match self {
            Validation::Unsupported(_) => Ok(()),
            Validation::ShellSafe => match value.chars().find(|c| {
                matches!(
                    c,
                    '`' | '$' | ';' | '|' | '&' | '<' | '>' | '\n' | '\r' | '\0'
                )
            }) {
                Some(c) => Err(format!("{c:?} is not allowed in a shell-safe value")),
                None => Ok(()),
            },
            Validation::Ipv4Address => value
                .parse::<Ipv4Addr>()
                .map(|_| ())
                .map_err(|_| format!("{value:?} is not an IPv4 address")),
            Validation::Ipv6Address => value
                .parse::<Ipv6Addr>()
                .map(|_| ())
                .map_err(|_| format!("{value:?} is not an IPv6 address")),
            Validation::IpAddress => {
                if value.parse::<Ipv4Addr>().is_ok() || value.parse::<Ipv6Addr>().is_ok() {
                    Ok(())
                } else {
                    Err(format!("{value:?} is not an IP address"))
                }
            }
            Validation::Named(name, regex) => {
                if regex.is_match(value) {
                    Ok(())
                } else {
                    Err(format!("{value:?} is not a valid {name}"))
                }
            }
            Validation::Regex(regex) => {
                if regex.is_match(value) {
                    Ok(())
                } else {
                    Err(format!("{value:?} does not match {}", regex.as_str()))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validators() {
        let table: &[(&str, &str, bool)] = &[
            ("shellsafe", "httpd", true),
            ("shellsafe", "nginx-1.2_3", true),
            ("shellsafe", "a b", true),
            ("shellsafe", "a;b", false),
            ("shellsafe", "a`id`", false),
            ("shellsafe", "$(id)", false),
            ("shellsafe", "a|b", false),
            ("shellsafe", "a&&b", false),
            ("shellsafe", "a>b", false),
            ("shellsafe", "a<b", false),
            ("shellsafe", "a\nb", false),
            ("shellsafe", "a\rb", false),
            ("ipv4address", "192.168.1.1", true),
            ("ipv4address", "256.1.1.1", false),
            ("ipv4address", "::1", false),
            ("ipv6address", "::1", true),
            ("ipv6address", "fe80::1", true),
            ("ipv6address", "1.2.3.4", false),
            ("ipaddress", "1.2.3.4", true),
            ("ipaddress", "::1", true),
            ("ipaddress", "host", false),
            ("service_name", "httpd", true),
            ("service_name", "getty@tty1", true),
            ("service_name", "a.service", true),
            ("service_name", "a b", false),
            ("service_name", "a;b", false),
            ("service_name", "", false),
            ("puppet_variable", "production", true),
            ("puppet_variable", "prod-1", false),
            ("puppet_server_address", "puppet.example.net:8140", true),
            ("puppet_server_address", "puppet;x", false),
            ("puppet_tags", "apache,role::web", true),
            ("puppet_tags", "a b", false),
            ("^.+$", "x", true),
            ("^.+$", "", false),
            (".+", "x", true),
            (r"^\w+$", "abc", true),
            (r"^\w+$", "a-b", false),
        ];
        for (rule, value, ok) in table {
            let v = Validation::parse(rule).unwrap();
            assert_eq!(v.check(value).is_ok(), *ok, "{rule} {value:?}");
        }
    }

    #[test]
    fn unknown_names_are_not_enforced_and_bad_regexes_are_refused() {
        let unknown = Validation::parse("host_fqdn").unwrap();
        assert!(matches!(&unknown, Validation::Unsupported(n) if n == "host_fqdn"));
        assert!(unknown.check("anything; at all").is_ok());
        assert!(Validation::parse("^(").is_err());
        // Read in the Go/Ruby dialect: a brace that starts no repetition is a literal.
        assert!(Validation::parse("^{.+}$").unwrap().check("{a}").is_ok());
    }
}
