//! Diagnostics: located problems in user content (documents, expressions, CSV files) and their
//! rendering for terminals and JSON.
//!
//! Problems in user content are values, not `Err`s: loaders and compilers return them in lists so
//! that a user sees every problem at once, each with the place it occurred and a hint to fix it.
//!
//! Diagnostics never echo large input: every text a diagnostic carries is [`bounded`] (quoted
//! input cut to [`EXCERPT`] characters with "…", the whole text to [`MAX_TEXT`]), and an
//! expression is kept as a window around the offending token.

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
            code: excerpt(code, EXCERPT),
            message: bounded(&message.into()),
            file: None,
            path: None,
            line: None,
            column: None,
            expr: None,
            help: None,
        }
    }

    pub fn at_path(mut self, path: impl Into<String>) -> Diagnostic {
        self.path = Some(bounded(&path.into()));
        self
    }

    pub fn at_line(mut self, line: u32, column: u32) -> Diagnostic {
        self.line = Some(line);
        self.column = Some(column);
        self
    }

    pub fn in_file(mut self, file: impl Into<String>) -> Diagnostic {
        self.file = Some(bounded(&file.into()));
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(bounded(&help.into()));
        self
    }

    /// The expression and the offending token's byte range; a long expression is kept as a
    /// window of about [`EXCERPT`] characters around the token, with "…" where it was cut.
    pub fn with_expr(mut self, text: &str, offset: usize, len: usize) -> Diagnostic {
        self.expr = Some(expr_window(text, offset, len));
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

/// Most characters of user input one quote in a message may show.
pub const EXCERPT: usize = 80;
/// Most characters of one text a diagnostic or an error carries (message, help, path).
pub const MAX_TEXT: usize = 500;

/// `s` cut to `max` characters, with "…" where it was cut.
pub fn excerpt(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some((end, _)) => format!("{}…", &s[..end]),
    }
}

/// `s` cut to about `max` characters in its middle: its first two thirds and last third, joined
/// by "…", so that both the start of a long name and its end (a path's file name, an id's
/// suffix) stay readable.
pub fn middle_excerpt(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        return s.to_string();
    }
    let (head, tail) = (max * 2 / 3, max - max * 2 / 3);
    let head_end = s.char_indices().nth(head).map_or(s.len(), |(i, _)| i);
    let tail_start = s.char_indices().nth(n - tail).map_or(s.len(), |(i, _)| i);
    format!("{}…{}", &s[..head_end], &s[tail_start..])
}

/// A text fit to show a user however large the input it quotes: every `` `quoted` `` span and
/// every unbroken run of characters longer than [`EXCERPT`] (an unquoted path, with a `/` or `\`,
/// longer than 4 × [`EXCERPT`]) is cut in its middle to that many characters with "…"
/// ([`middle_excerpt`]), and the whole to [`MAX_TEXT`]. Texts within those bounds come back
/// unchanged.
pub fn bounded(s: &str) -> String {
    if s.len() <= EXCERPT {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len().min(MAX_TEXT * 4));
    let mut rest = s;
    while !rest.is_empty() {
        // The next quoted span or word, whichever comes first, and the text before it.
        // A quoted piece is the request's own text (a name, an expression): 80 characters.
        let cut = |piece: &str, quoted: bool| {
            let path = !quoted && piece.contains(['/', '\\']);
            middle_excerpt(piece, if path { 4 * EXCERPT } else { EXCERPT })
        };
        if let Some(q) = rest.strip_prefix('`') {
            match q.find('`') {
                Some(end) => {
                    out.push('`');
                    out.push_str(&cut(&q[..end], true));
                    out.push('`');
                    rest = &q[end + 1..];
                }
                None => {
                    out.push('`');
                    out.push_str(&cut(q, true));
                    rest = "";
                }
            }
            continue;
        }
        let word_end = rest.find(|c: char| c.is_whitespace() || c == '`').unwrap_or(rest.len());
        if word_end == 0 {
            let c = rest.chars().next().expect("not empty");
            out.push(c);
            rest = &rest[c.len_utf8()..];
        } else {
            out.push_str(&cut(&rest[..word_end], false));
            rest = &rest[word_end..];
        }
        if out.len() > MAX_TEXT * 4 {
            break;
        }
    }
    excerpt(&out, MAX_TEXT)
}

/// A window of about [`EXCERPT`] characters of `text` around `offset..offset + len`.
fn expr_window(text: &str, offset: usize, len: usize) -> ExprSpan {
    let offset = offset.min(text.len());
    if text.chars().count() <= EXCERPT {
        return ExprSpan { text: text.to_string(), offset, len };
    }
    let floor = |mut i: usize| {
        i = i.min(text.len());
        while !text.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    // At most EXCERPT/4 bytes before the token, EXCERPT/4 of the token, EXCERPT/2 after it.
    let len = len.min(EXCERPT / 4);
    let start = floor(offset.saturating_sub(EXCERPT / 4));
    let end = floor(offset + len + EXCERPT / 2);
    let (head, tail) = (if start > 0 { "…" } else { "" }, if end < text.len() { "…" } else { "" });
    let window = format!("{head}{}{tail}", &text[start..end]);
    let token_end = floor(offset + len).min(end);
    ExprSpan { text: window, offset: head.len() + offset - start, len: token_end.saturating_sub(offset) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_quotes_and_words_are_cut_and_short_texts_kept() {
        let short = "parameter `k` is not declared";
        assert_eq!(bounded(short), short);
        let long = "x".repeat(1_000_000);
        let m = bounded(&format!("session `{long}` not found; did you mean `s1`?"));
        assert_eq!(m, format!("session `{}…{}` not found; did you mean `s1`?", "x".repeat(53), "x".repeat(27)));
        let m = bounded(&format!("cannot read {long}y here"));
        assert_eq!(m, format!("cannot read {}…{}y here", "x".repeat(53), "x".repeat(26)));
        // A path keeps up to 4 × EXCERPT characters, and its file name when cut.
        let path = format!("/srv/{}/data/flow.redb", "deep/".repeat(40));
        assert_eq!(bounded(&format!("{path} is in use by pid 7")), format!("{path} is in use by pid 7"));
        let path = format!("/srv/{}/data/flow.redb", "deep/".repeat(100));
        let m = bounded(&format!("{path} is in use by pid 7"));
        assert!(
            m.starts_with("/srv/deep/") && m.contains('…') && m.ends_with("/data/flow.redb is in use by pid 7"),
            "{m}"
        );
        assert_eq!(m.chars().count(), 4 * EXCERPT + 1 + " is in use by pid 7".len());
        // Quoted, a piece of the request (an expression with a division) keeps 80.
        let m = bounded(&format!("expression `{}` is wrong", "a / b + ".repeat(100).replace(' ', "")));
        assert_eq!(m.chars().count(), EXCERPT + 1 + "expression `` is wrong".len(), "{m}");
        let many = "word ".repeat(10_000);
        assert_eq!(bounded(&many).chars().count(), MAX_TEXT + 1);
    }

    #[test]
    fn an_expression_window_keeps_the_caret_on_its_token() {
        let text = format!("{} + bad_name + {}", "a + ".repeat(10_000), "b + ".repeat(10_000));
        let offset = text.find("bad_name").unwrap();
        let d = Diagnostic::error("unknown_reference", "x").with_expr(&text, offset, 8);
        let e = d.expr.unwrap();
        assert!(e.text.chars().count() <= EXCERPT + 2, "{}", e.text);
        assert_eq!(&e.text[e.offset..e.offset + e.len], "bad_name");
        assert!(e.text.starts_with('…') && e.text.ends_with('…'));
    }
}
