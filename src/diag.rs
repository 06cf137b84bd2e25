//! Diagnostics: located problems in user content (documents, expressions, CSV files) and their
//! rendering for terminals and JSON.
//!
//! Problems in user content are values, not `Err`s: loaders and compilers return them in lists so
//! that a user sees every problem at once, each with the place it occurred and a hint to fix it.

use std::fmt;

use serde::Serialize;

/// How serious a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    Info,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        })
    }
}

/// An excerpt of an expression with the byte range of the offending token, for caret rendering.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExprSpan {
    pub text: String,
    pub offset: usize,
    pub len: usize,
}

/// A problem found in user content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Stable machine-readable code, e.g. `unknown_reference`.
    pub code: String,
    pub message: String,
    /// The file the problem is in, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// The YAML path, e.g. `nodes[3] (id queue_depth).expr`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// 1-based line, where known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// 1-based column, where known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<u32>,
    /// For expressions: the text and the offending token's byte range.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expr: Option<ExprSpan>,
    /// How to fix it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(code: &str, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(Severity::Error, code, message)
    }

    pub fn new(severity: Severity, code: &str, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity,
            code: code.to_string(),
            message: message.into(),
            file: None,
            path: None,
            line: None,
            column: None,
            expr: None,
            help: None,
        }
    }

    pub fn at_path(mut self, path: impl Into<String>) -> Diagnostic {
        self.path = Some(path.into());
        self
    }

    pub fn at_line(mut self, line: u32, column: u32) -> Diagnostic {
        self.line = Some(line);
        self.column = Some(column);
        self
    }

    pub fn in_file(mut self, file: impl Into<String>) -> Diagnostic {
        self.file = Some(file.into());
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    pub fn with_expr(mut self, text: &str, offset: usize, len: usize) -> Diagnostic {
        self.expr = Some(ExprSpan { text: text.to_string(), offset, len });
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// The location prefix: `file:line:col` plus the YAML path, whatever is known.
    pub fn location(&self) -> String {
        let mut out = String::new();
        if let Some(file) = &self.file {
            out.push_str(file);
        }
        if let Some(line) = self.line {
            if !out.is_empty() {
                out.push(':');
            }
            out.push_str(&format!("line {line}"));
            if let Some(col) = self.column {
                out.push_str(&format!(", column {col}"));
            }
        }
        if let Some(path) = &self.path {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(path);
        }
        out
    }

    /// Multi-line human rendering with a caret under the offending expression token.
    pub fn render(&self) -> String {
        let mut out = format!("{}[{}]: {}\n", self.severity, self.code, self.message);
        let loc = self.location();
        if !loc.is_empty() {
            out.push_str(&format!("  --> {loc}\n"));
        }
        if let Some(span) = &self.expr {
            // The caret is placed by character count so that non-ASCII text lines up.
            let prefix_chars = span.text.get(..span.offset).map_or(span.offset, |p| p.chars().count());
            let width = span.text.get(span.offset..span.offset + span.len).map_or(1, |p| p.chars().count()).max(1);
            out.push_str("   |\n");
            out.push_str(&format!("   | {}\n", span.text));
            out.push_str(&format!("   | {}{}\n", " ".repeat(prefix_chars), "^".repeat(width)));
        }
        if let Some(help) = &self.help {
            out.push_str(&format!("   = help: {help}\n"));
        }
        out
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let loc = self.location();
        if loc.is_empty() {
            write!(f, "{}: {}", self.severity, self.message)
        } else {
            write!(f, "{}: {}: {}", self.severity, loc, self.message)
        }
    }
}

/// A list of diagnostics that contains at least one error; the `Err` side of loading functions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn one(d: Diagnostic) -> Diagnostics {
        Diagnostics(vec![d])
    }

    pub fn render(&self) -> String {
        self.0.iter().map(Diagnostic::render).collect::<Vec<_>>().join("\n")
    }

    pub fn has_errors(&self) -> bool {
        self.0.iter().any(Diagnostic::is_error)
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Diagnostics {
        Diagnostics(vec![d])
    }
}
