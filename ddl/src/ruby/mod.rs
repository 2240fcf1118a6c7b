//! Converting MCollective's Ruby agent DDLs into Choria's JSON DDLs (`mco plugin convert`),
//! without running Ruby.
//!
//! An MCollective DDL is Ruby code calling a small DSL (`metadata`, `action`, `input`,
//! `output`, `display`, `summarize`/`aggregate`). Real DDLs use only a documented subset of
//! Ruby for it: literals (strings in both quote styles, symbols, numbers, `true`/`false`/`nil`,
//! arrays, hashes in `=>` and `key:` syntax, `/regex/`, `%w[...]`), comments and method calls
//! with or without parentheses and with `do ... end` or `{ ... }` blocks. [`lex`] and
//! [`parse`] read exactly that subset into a tree of calls; [`convert`](mod@convert) turns the tree into
//! the [`AgentDdl`](crate::AgentDdl) model and Choria's JSON. Anything else (a variable, `if`,
//! string interpolation, a method the DSL does not have) is a [`ConvertError`] naming the
//! line and column, never a guess.
//!
//! Only agent DDLs convert: data, discovery, validator, aggregate and connector plugin DDLs are
//! recognised (so the whole of MCollective's own DDLs parse) and refused with
//! [`ConvertErrorKind::NotAnAgent`], because mco has no JSON model for them to check a
//! conversion against.
//!
//! Not for: loading or checking JSON DDLs ([`crate::load`]); the file is read by the caller,
//! so this module does no I/O.
//!
//! ```
//! let ruby = r#"
//! metadata :name => "echo", :description => "Echoes", :author => "ops",
//!          :license => "Apache-2.0", :version => "1.0", :url => "https://example.net",
//!          :timeout => 5
//! action "echo", :description => "Echo a message" do
//!   display :always
//!   input :message, :prompt => "Message", :description => "What to echo",
//!         :type => :string, :validation => '^.+$', :optional => false, :maxlength => 100
//!   output :message, :description => "The message", :display_as => "Message"
//! end
//! "#;
//! let converted = mco_ddl::ruby::convert(ruby).unwrap();
//! assert_eq!(converted.ddl.actions[0].input["message"].maxlength, Some(100));
//! assert!(converted.json.starts_with("{\n  \"$schema\""));
//!
//! let err = mco_ddl::ruby::convert("metadata :name => ENV['USER']\n").unwrap_err();
//! assert_eq!((err.line, err.column), (1, 19));
//! assert!(err.reason.ends_with("is outside the DDL subset mco converts"));
//! ```

pub mod convert;
pub mod lex;
pub mod parse;

pub use convert::{convert, Converted};

/// Where something is in the Ruby source: 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    /// The line, from 1.
    pub line: usize,
    /// The column, from 1, counted in characters.
    pub column: usize,
}

/// What kind of problem a [`ConvertError`] is, for callers that treat them differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConvertErrorKind {
    /// Not valid Ruby as far as the subset goes: an unterminated string, a missing `end`.
    Syntax,
    /// Valid Ruby, perhaps, but outside the subset mco converts (a variable, `if`,
    /// interpolation, a method the DSL does not have).
    OutsideSubset,
    /// Inside the subset but not a DDL MCollective would load: an input without a `:type`,
    /// a string input without `:validation`, a timeout that is not a number.
    InvalidDdl,
    /// A DDL of another plugin type (data, discovery, validator, aggregate, connector).
    NotAnAgent,
}

/// Why a Ruby DDL could not be converted, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {reason}")]
pub struct ConvertError {
    /// What kind of problem.
    pub kind: ConvertErrorKind,
    /// The line, from 1.
    pub line: usize,
    /// The column, from 1.
    pub column: usize,
    /// What is wrong, as one sentence without the position.
    pub reason: String,
}

impl ConvertError {
    pub(crate) fn new(kind: ConvertErrorKind, at: Pos, reason: impl Into<String>) -> Self {
        ConvertError {
            kind,
            line: at.line,
            column: at.column,
            reason: reason.into(),
        }
    }

    /// The one wording of "not in the subset", so every such error reads the same.
    pub(crate) fn outside(at: Pos, what: impl std::fmt::Display) -> Self {
        ConvertError::new(
            ConvertErrorKind::OutsideSubset,
            at,
            format!("{what} is outside the DDL subset mco converts"),
        )
    }
}

/// Something the conversion dropped or read in a way the author may not expect; the
/// conversion still succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertWarning {
    /// The line, from 1.
    pub line: usize,
    /// The column, from 1.
    pub column: usize,
    /// What happened.
    pub message: String,
}

impl ConvertWarning {
    pub(crate) fn new(at: Pos, message: impl Into<String>) -> Self {
        ConvertWarning {
            line: at.line,
            column: at.column,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ConvertWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}
