//! YAML parsing into a positioned tree: every node carries the line and column where it starts,
//! so the document reader can say where a problem is without a second pass.
//!
//! Two readers produce the same tree:
//! - `fast`: a single pass over the bytes for the YAML that models are written in (block and
//!   flow collections, plain and quoted one-line scalars, comments). It recognises exactly that
//!   subset and gives up (returns `None`) on anything else or anything doubtful, never guessing.
//! - `compat`: yaml_serde, the parser of record (syntax, duplicate keys, tags, anchors and
//!   aliases, scalar typing, every error message), plus one walk of the same libyaml event
//!   stream for positions. It reads whatever `fast` gives up on, and produces every error.
//!
//! `fast` types plain scalars with yaml_serde's own rules (`scalar`), and a differential test
//! holds the two readers to the same tree, positions included, on every input `fast` accepts.
//! The document text is parsed once per request: [`parse_count`] counts parses per thread so
//! tests can check it.

mod compat;
mod fast;
mod scalar;

use std::cell::Cell;

pub use yaml_serde::Number;

use crate::diag::Diagnostic;

/// 1-based line and column (columns count characters, as libyaml does).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Pos {
    pub line: u32,
    pub column: u32,
}

/// A YAML node and where it starts.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub pos: Pos,
    pub value: Value,
}

/// A YAML value, typed as yaml_serde types it.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Sequence(Vec<Node>),
    /// Entries in document order; keys are unique.
    Mapping(Vec<(Node, Node)>),
    /// A node with a non-standard tag (`!name value`).
    Tagged(Box<(String, Node)>),
}

/// A parsed document.
#[derive(Clone, Debug, PartialEq)]
pub struct YamlDoc {
    pub root: Node,
}

impl Node {
    pub fn null(pos: Pos) -> Node {
        Node { pos, value: Value::Null }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match &self.value {
            Value::Number(n) => n.as_f64(),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match &self.value {
            Value::Number(n) => n.as_i64(),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self.value {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.value, Value::Null)
    }

    pub fn as_sequence(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Sequence(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_mapping(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            Value::Mapping(m) => Some(m),
            _ => None,
        }
    }

    /// The entry of a mapping whose key is the string `key`.
    pub fn entry(&self, key: &str) -> Option<&(Node, Node)> {
        self.as_mapping()?.iter().find(|(k, _)| k.as_str() == Some(key))
    }

    /// The value of a mapping's string key `key`.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|(_, v)| v)
    }

    /// "a number", "a map", …: what a value is, for error messages.
    pub fn kind(&self) -> &'static str {
        self.value.kind()
    }

    /// The same value as a yaml_serde tree (for JSON conversion and for writing YAML).
    pub fn to_serde(&self) -> yaml_serde::Value {
        self.value.to_serde()
    }
}

impl Value {
    /// The same value as a yaml_serde tree.
    pub fn to_serde(&self) -> yaml_serde::Value {
        use yaml_serde::Value as Y;
        match self {
            Value::Null => Y::Null,
            Value::Bool(b) => Y::Bool(*b),
            Value::Number(n) => Y::Number(n.clone()),
            Value::String(s) => Y::String(s.clone()),
            Value::Sequence(items) => Y::Sequence(items.iter().map(Node::to_serde).collect()),
            Value::Mapping(entries) => {
                let mut m = yaml_serde::Mapping::with_capacity(entries.len());
                for (k, v) in entries {
                    m.insert(k.to_serde(), v.to_serde());
                }
                Y::Mapping(m)
            }
            Value::Tagged(t) => Y::Tagged(Box::new(yaml_serde::value::TaggedValue {
                tag: yaml_serde::value::Tag::new(t.0.clone()),
                value: t.1.to_serde(),
            })),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "nothing",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Sequence(_) => "a list",
            Value::Mapping(_) => "a map",
            Value::Tagged(_) => "a tagged value",
        }
    }
}

thread_local! {
    static PARSES: Cell<u64> = const { Cell::new(0) };
}

/// How many documents this thread has parsed so far (tests check that a request parses once).
pub fn parse_count() -> u64 {
    PARSES.with(Cell::get)
}

/// What a document may be, checked in one linear pass over the text before either reader runs:
/// libyaml's scanner is quadratic in flow nesting (`a: [[[[…]]]]` 40,000 deep took seconds), so
/// a document over these limits is refused before it is parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest document, in bytes.
    pub max_bytes: usize,
    /// Deepest nesting of flow collections (`[` and `{`).
    pub max_depth: u32,
    /// Most model nodes (entries of `nodes:`), checked when the declarations are read
    /// ([`crate::model::source::Source::parse_with`]).
    pub max_nodes: usize,
}

impl Limits {
    /// 16 MiB, 128 levels (yaml_serde's own recursion limit), 100,000 nodes.
    pub const DEFAULT: Limits = Limits { max_bytes: 16 << 20, max_depth: 128, max_nodes: 100_000 };
}

impl Default for Limits {
    fn default() -> Limits {
        Limits::DEFAULT
    }
}

/// Parses one YAML document. Duplicate keys, syntax errors and an empty document are errors with
/// line and column.
pub fn parse(text: &str) -> Result<YamlDoc, Diagnostic> {
    parse_with(text, &Limits::DEFAULT)
}

/// [`parse`] within `limits` (a document over them is refused before it is parsed).
pub fn parse_with(text: &str, limits: &Limits) -> Result<YamlDoc, Diagnostic> {
    PARSES.with(|p| p.set(p.get() + 1));
    // Editors on some systems start UTF-8 files with a byte-order mark, which yaml_serde would
    // read as a second document.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    check_limits(text, limits)?;
    let root = match fast::parse(text) {
        Some(root) => root,
        None => compat::parse(text)?,
    };
    if root.is_null() {
        return Err(Diagnostic::error("yaml_empty", "the document is empty")
            .with_help("a model needs at least `grid` and `nodes`"));
    }
    Ok(YamlDoc { root })
}

/// Brackets outside comments, open at once, allowed per level of `Limits::max_depth` (see
/// `check_limits`): 128 levels give 8,192, where libyaml's quadratic scan takes well under a
/// second, against seconds at 40,000.
const RAW_DEPTH_SLACK: u32 = 64;

/// Refuses a document over `limits` in two passes over its bytes. Flow collections are counted
/// where one can start (after indentation, `- `, `? `, `: `, `,`, `[` or `{`), outside comments
/// and quoted scalars, so brackets inside plain text do not count.
fn check_limits(text: &str, limits: &Limits) -> Result<(), Diagnostic> {
    if text.len() > limits.max_bytes {
        return Err(Diagnostic::error(
            "document_too_large",
            format!("the document is {} bytes, over the limit of {} bytes", text.len(), limits.max_bytes),
        )
        .with_help("split the model, or read long series from files (`file:`) or stored telemetry (`series:`)"));
    }
    let b = text.as_bytes();
    let blank = |i: usize| b.get(i).is_none_or(|c| matches!(c, b' ' | b'\t' | b'\r' | b'\n'));
    let too_deep = |line: u32, line_start: usize, i: usize| {
        let column = text[line_start..i].chars().count() as u32 + 1;
        Err(Diagnostic::error(
            "document_too_deep",
            format!("collections are nested more than {} deep here", limits.max_depth),
        )
        .at_line(line, column)
        .with_help("a model needs only a few levels; write the values out flat"))
    };
    let (mut depth, mut line, mut line_start, mut may_start, mut i) = (0u32, 1u32, 0usize, true, 0usize);
    while i < b.len() {
        match b[i] {
            b'\n' => (line, line_start, may_start) = (line + 1, i + 1, true),
            b' ' | b'\t' | b'\r' => {}
            b'#' if i == 0 || blank(i - 1) => {
                while i + 1 < b.len() && b[i + 1] != b'\n' {
                    i += 1;
                }
            }
            b'[' | b'{' if may_start => {
                depth += 1;
                if depth > limits.max_depth {
                    return too_deep(line, line_start, i);
                }
            }
            b']' | b'}' => (depth, may_start) = (depth.saturating_sub(1), false),
            b',' if depth > 0 => may_start = true,
            b'-' | b'?' if blank(i + 1) => may_start = true,
            b':' if blank(i + 1) || depth > 0 => may_start = true,
            q @ (b'\'' | b'"') if may_start => {
                // Skip the quoted scalar ('' and \x escapes), counting its lines.
                i += 1;
                while i < b.len() {
                    match b[i] {
                        b'\\' if q == b'"' => i += 1,
                        b'\'' if q == b'\'' && b.get(i + 1) == Some(&b'\'') => i += 1,
                        c if c == q => break,
                        b'\n' => (line, line_start) = (line + 1, i + 1),
                        _ => {}
                    }
                    i += 1;
                }
                may_start = false;
            }
            _ => may_start = false,
        }
        i += 1;
    }
    // Then a bound a misreading of quotes cannot switch off (a `'` opening a line of a block
    // scalar or of a plain scalar's continuation is text, not a quoted scalar): libyaml cannot
    // nest deeper than the brackets open at once, counted everywhere (a `#` inside quotes is no
    // comment, so comments are not skipped either). Brackets in text and comments count too,
    // hence the slack.
    let (mut raw, mut line, mut line_start) = (0u32, 1u32, 0usize);
    for (i, c) in b.iter().enumerate() {
        match c {
            b'\n' => (line, line_start) = (line + 1, i + 1),
            b'[' | b'{' => {
                raw += 1;
                if raw > RAW_DEPTH_SLACK * limits.max_depth {
                    return too_deep(line, line_start, i);
                }
            }
            b']' | b'}' => raw = raw.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(doc: &YamlDoc, path: &[&str]) -> Pos {
        let mut n = &doc.root;
        for p in path {
            n = match p.parse::<usize>() {
                Ok(i) => &n.as_sequence().unwrap()[i],
                Err(_) => n.get(p).unwrap(),
            };
        }
        n.pos
    }

    #[test]
    fn locates_block_and_flow_values() {
        let text = "grid:\n  bins: 3\nnodes:\n  - id: a\n    expr: \"x\"\n  - {id: b, kind: expr}\n";
        let doc = parse(text).unwrap();
        assert_eq!(at(&doc, &["nodes", "0", "expr"]), Pos { line: 5, column: 11 });
        assert_eq!(at(&doc, &["nodes", "1", "kind"]), Pos { line: 6, column: 19 });
        assert_eq!(doc.root.get("grid").unwrap().entry("bins").unwrap().0.pos, Pos { line: 2, column: 3 });
    }

    #[test]
    fn syntax_errors_have_a_line() {
        let err = parse("grid:\n  bins: [1, 2\nnodes: 3\n").unwrap_err();
        assert_eq!(err.code, "yaml_syntax");
        assert!(err.line.is_some(), "{err:?}");
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let err = parse("a: 1\na: 2\n").unwrap_err();
        assert!(err.message.contains("duplicate"), "{}", err.message);
        assert_eq!((err.line, err.column), (Some(2), Some(1)));
    }

    /// Flow nesting past the limit is refused before either reader runs (libyaml's scanner is
    /// quadratic in it), at the bracket that goes too deep; so is a document over the size limit.
    #[test]
    fn deep_flow_nesting_and_large_documents_are_refused_before_parsing() {
        let n = 40_000;
        let err = parse(&format!("a: {}{}\n", "[".repeat(n), "]".repeat(n))).unwrap_err();
        assert_eq!((err.code.as_str(), err.line, err.column), ("document_too_deep", Some(1), Some(132)), "{err:?}");
        // 200 KB of maps opened and never closed, after a multi-line quoted scalar.
        let err = parse(&format!("t: \"x\n y\"\na: {}", "{a: ".repeat(50_000))).unwrap_err();
        assert_eq!((err.code.as_str(), err.line), ("document_too_deep", Some(3)), "{err:?}");
        let limits = Limits { max_bytes: 10, ..Limits::DEFAULT };
        assert_eq!(parse_with("a: 12345678\n", &limits).unwrap_err().code, "document_too_large");
        assert!(parse_with("a: 1234\n", &limits).is_ok());
    }

    /// The limit counts collections, not brackets in text: quoted scalars, comments and plain
    /// scalars may hold any number; nesting up to the limit reads (in the parser of record: the
    /// fast reader gives up past 64) and one more level does not.
    #[test]
    fn the_nesting_limit_counts_only_collections() {
        let b = "[".repeat(300);
        let text = format!("a: \"{b}\"\nb: '{b}''{b}' # {b}\nc: x{b}\nd: [\"{b}\", '{b}']\ne: |\n  x{b}\n");
        assert!(parse(&text).is_ok(), "{:?}", parse(&text));
        let deep = |n: usize| format!("a: {}1{}\n", "[".repeat(n), "]".repeat(n));
        let limits = Limits { max_depth: 100, ..Limits::DEFAULT };
        assert!(parse_with(&deep(100), &limits).is_ok(), "{:?}", parse_with(&deep(100), &limits));
        assert_eq!(parse_with(&deep(101), &limits).unwrap_err().code, "document_too_deep");
        assert_eq!(parse(&deep(129)).unwrap_err().code, "document_too_deep");
    }

    /// A quote opening a line of a block scalar is text: it must not hide the nesting after it.
    #[test]
    fn a_quote_in_a_block_scalar_does_not_hide_deep_nesting() {
        let n = 40_000;
        let text = format!("d: |\n  'tis text\na: {}{}\n", "[".repeat(n), "]".repeat(n));
        let err = parse(&text).unwrap_err();
        assert_eq!((err.code.as_str(), err.line), ("document_too_deep", Some(3)), "{err:?}");
        // Nor does a `#` inside a quoted scalar after it.
        let text = format!("d: |\n  'tis text\na: [\" #\", {}{}]\n", "[".repeat(n), "]".repeat(n));
        let err = parse(&text).unwrap_err();
        assert_eq!((err.code.as_str(), err.line), ("document_too_deep", Some(3)), "{err:?}");
    }

    #[test]
    fn counts_parses() {
        let before = parse_count();
        parse("a: 1\n").unwrap();
        let _ = parse("a: [\n");
        assert_eq!(parse_count() - before, 2);
    }

    /// The fast reader and the parser of record give the same tree, positions included, on
    /// every input the fast reader accepts.
    fn agree(text: &str) -> bool {
        let Some(f) = fast::parse(text) else { return false };
        match compat::parse(text) {
            Ok(c) => assert_eq!(f, c, "the readers disagree on:\n{text}"),
            Err(e) => panic!("the fast reader accepted what the parser of record rejects ({e:?}):\n{text}"),
        }
        true
    }

    #[test]
    fn fast_reader_agrees_on_the_shipped_documents() {
        // Templates with folded descriptions (`>-`) are read by the parser of record.
        for text in [
            include_str!("../../templates/order-system.yaml"),
            include_str!("../../templates/order-pipeline.yaml"),
            include_str!("../../templates/capacity-whatif.yaml"),
        ] {
            agree(text);
        }
        for text in [
            include_str!("../../tests/data/fixtures/constraint-proportional/model.yaml"),
            include_str!("../../tests/data/fixtures/expr-functions/model.yaml"),
            include_str!("../../tests/data/fixtures/feedback-loop/model.yaml"),
            include_str!("../../tests/data/fixtures/hello/model.yaml"),
            include_str!("../../tests/data/fixtures/pmf-expected/model.yaml"),
            include_str!("../../tests/data/fixtures/router-weight/model.yaml"),
            include_str!("../../tests/data/fixtures/self-shift-initial/model.yaml"),
            include_str!("../../tests/data/fixtures/self-shift-queue/model.yaml"),
            include_str!("../../tests/data/fixtures/topology-backpressure/model.yaml"),
            include_str!("../../tests/data/fixtures/topology-dispatch/model.yaml"),
            include_str!("../../tests/data/fixtures/topology-retry-echo/model.yaml"),
            include_str!("../../tests/data/fixtures/topology-simple-queue/model.yaml"),
            include_str!("../../tests/data/fixtures/topology-wip-limit/model.yaml"),
        ] {
            assert!(agree(text), "the fast reader gave up on a shipped document:\n{text}");
        }
        for text in [crate::model::generate::chain(50, 24), crate::model::generate::topology(20, 24)] {
            assert!(agree(&text), "the fast reader gave up on a generated model");
        }
    }

    #[test]
    fn fast_reader_agrees_on_tricky_scalars_and_layouts() {
        let accepted = [
            "a: 1\nb: -2\nc: 0x1F\nd: 010\ne: 1.5\nf: .inf\ng: -.inf\nh: .nan\ni: 1e3\nj: +1\nk: 1_000\n",
            "a: ~\nb: null\nc: Null\nd: true\ne: False\nf: yes\ng: 18446744073709551615\nh: -9223372036854775808\n",
            "a: b c  # comment\nb: a#b\nc: 'it''s'\nd: \"x y\"\ne: http://x:80/y\nf: file:data/x.csv\n",
            "a:\n- 1\n- x: 2\n  y: 3\n-\n- 4\n",
            "a:\n  - 1\n  -   x: 2\n      y: 3\nb: [1, [2, 3], {c: 4}]\nc: {d: [],\n  e: {}}\n",
            "key:\n  scalar on the next line\nother: \"é😀\" # ünïcode\nünï: x\n",
            "\"quoted key\": 1\n'single': 2\n1: int key\ntrue: bool key\n",
            "a:\nb: # nothing\nc:\n  # only a comment\nd: -x\ne: [a, b c, 'd', \"e\"]\n",
            "nodes:\n  - {id: a, kind: expr, expr: \"SHIFT(a, 1) + {{k}}\"}\n  - {id: b, values: [1, 2.5, -3]}\n",
        ];
        for text in accepted {
            assert!(agree(text), "the fast reader gave up on:\n{text}");
        }
        let declined = [
            "a: 1\r\n",
            "a:\t1\n",
            "--- \na: 1\n",
            "%YAML 1.2\n---\na: 1\n",
            "a: &x 1\nb: *x\n",
            "a: !t 1\n",
            "a: |\n  x\n",
            "a: >\n  x\n",
            "a: \"x\\ny\"\n",
            "a: b\n  c\n",
            "? a\n: b\n",
            "a: [1,]\n",
            "a: {b}\n",
            "a: b: c\n",
            "a: 1\na: 2\n",
            "a: 99999999999999999999\n",
            "",
            "# only\n",
            "a: [b: c]\n",
            "[a]: b\n",
            "- - 4\n",
            "a: {b:c}\n",
            "a: \"x\"y\n",
            "a:\n- b\n c\n",
            "a: @x\n",
            "a: `x\n",
        ];
        for text in declined {
            assert!(!agree(text), "the fast reader should leave this to the parser of record:\n{text:?}");
        }
    }

    mod differential {
        use proptest::prelude::*;
        use proptest::strategy::ValueTree;
        use proptest::test_runner::{Config, TestRng, TestRunner};

        use super::agree;

        fn line() -> impl Strategy<Value = String> {
            let indent =
                prop_oneof![4 => Just(""), 4 => Just("  "), 2 => Just("    "), 1 => Just(" "), 1 => Just("      ")];
            let entry =
                prop_oneof![6 => Just(""), 3 => Just("- "), 1 => Just("-   "), 1 => Just("- - "), 1 => Just("-")];
            let key = prop_oneof![
                Just("a"),
                Just("b"),
                Just("c"),
                Just("k y"),
                Just("\"q\""),
                Just("'s'"),
                Just("1"),
                Just("true"),
                Just("~"),
                Just("a#b"),
                Just("x:y"),
                Just("é"),
                Just(""),
            ];
            let sep = prop_oneof![8 => Just(": "), 2 => Just(":"), 1 => Just(" : "), 1 => Just(""), 1 => Just(":  ")];
            let value = prop_oneof![
                Just("1"),
                Just("-2"),
                Just("0x1F"),
                Just("010"),
                Just("1.5"),
                Just(".inf"),
                Just(".nan"),
                Just("1e3"),
                Just("abc"),
                Just("a b"),
                Just("a#b"),
                Just("a #c"),
                Just("\"x\""),
                Just("'it''s'"),
                Just("[1, 2]"),
                Just("[a, [b]]"),
                Just("{x: 1, y: [2]}"),
                Just("{}"),
                Just("[]"),
                Just("[1,]"),
                Just("{a}"),
                Just("- x"),
                Just("|"),
                Just("&a x"),
                Just("*a"),
                Just("!t x"),
                Just("\"a\\nb\""),
                Just("a: b"),
                Just("http://x"),
                Just("{{k}}"),
                Just("\"{{k}}\""),
                Just("@x"),
                Just("? x"),
                Just(": x"),
                Just("-"),
                Just("---"),
                Just("[a,\n b]"),
                Just("{a: 1,\n   b: 2}"),
                Just("[a,\nb]"),
                Just("True"),
                Just("99999999999999999999"),
                Just("+.5"),
                Just("😀 x"),
                Just(""),
                Just(""),
                Just(""),
                Just("'a\nb'"),
                Just("[a b, c]"),
                Just("{a: [1,\n 2]}"),
                Just("x\t"),
                Just("[a,#c\n b]"),
                Just("{a: 1 ,b: 2}"),
                Just("[ ]"),
                Just("{ a : 1 }"),
                Just("-1"),
                Just("-x"),
                Just("a, b"),
                Just("[a]x"),
                Just("\"\""),
                Just("''"),
            ];
            let comment = prop_oneof![6 => Just(""), 1 => Just(" # c"), 1 => Just("#c"), 1 => Just("   # é")];
            let end = prop_oneof![8 => Just("\n"), 1 => Just("\n\n"), 1 => Just("\r\n"), 1 => Just("")];
            (indent, entry, key, sep, value, comment, end)
                .prop_map(|(i, e, k, s, v, c, n)| format!("{i}{e}{k}{s}{v}{c}{n}"))
        }

        /// Random lines of YAML fragments, mostly invalid: the readers agree on every document
        /// the fast reader accepts.
        #[test]
        fn readers_agree_on_fragment_soup() {
            let mut runner = runner();
            let docs = prop::collection::vec(line(), 1..7);
            for _ in 0..5_000 {
                agree(&docs.new_tree(&mut runner).expect("a generated document").current().concat());
            }
        }

        #[derive(Clone, Debug)]
        enum Tree {
            Leaf(&'static str),
            Seq(Vec<Tree>),
            Map(Vec<(&'static str, Tree)>),
        }

        fn tree() -> impl Strategy<Value = Tree> {
            let leaf = prop_oneof![
                Just("1"),
                Just("-2.5"),
                Just("abc"),
                Just("a b"),
                Just("\"q x\""),
                Just("'s''t'"),
                Just("~"),
                Just("true"),
                Just("file:x.csv"),
                Just("é😀"),
                Just("0o17"),
                Just("\"{{k}} * 2\""),
                Just("1e-3"),
            ]
            .prop_map(Tree::Leaf);
            let key = prop_oneof![Just("a"), Just("bb"), Just("k y"), Just("\"q\""), Just("'s'"), Just("7"), Just("é")];
            leaf.prop_recursive(4, 40, 5, move |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..5).prop_map(Tree::Seq),
                    prop::collection::vec((key.clone(), inner), 1..5).prop_map(|mut kv| {
                        let mut seen = Vec::new();
                        kv.retain(|(k, _)| {
                            !seen.contains(k) && {
                                seen.push(*k);
                                true
                            }
                        });
                        Tree::Map(kv)
                    }),
                ]
            })
        }

        /// Renders a tree in block and flow styles chosen by `bits`, with comments and blank lines.
        struct Render<'a> {
            bits: &'a [u8],
            at: usize,
            out: String,
        }

        impl Render<'_> {
            fn pick(&mut self, n: u8) -> u8 {
                let b = self.bits.get(self.at % self.bits.len().max(1)).copied().unwrap_or(0);
                self.at += 1;
                b % n
            }

            fn flow(&mut self, t: &Tree) {
                match t {
                    Tree::Leaf(s) => self.out.push_str(s),
                    Tree::Seq(items) => {
                        self.out.push('[');
                        for (i, x) in items.iter().enumerate() {
                            if i > 0 {
                                let sep = if self.pick(4) == 0 { ",\n    " } else { ", " };
                                self.out.push_str(sep);
                            }
                            self.flow(x);
                        }
                        self.out.push(']');
                    }
                    Tree::Map(kv) => {
                        self.out.push('{');
                        for (i, (k, v)) in kv.iter().enumerate() {
                            if i > 0 {
                                self.out.push_str(", ");
                            }
                            self.out.push_str(k);
                            self.out.push_str(": ");
                            self.flow(v);
                        }
                        self.out.push('}');
                    }
                }
            }

            fn end(&mut self) {
                match self.pick(6) {
                    0 => self.out.push_str("  # note\n"),
                    1 => self.out.push_str("\n\n# between\n"),
                    _ => self.out.push('\n'),
                }
            }

            /// A value after `key:` or `- ` (the cursor is just after the indicator).
            fn value(&mut self, t: &Tree, indent: usize, in_map: bool) {
                match t {
                    Tree::Leaf(_) => {
                        self.out.push(' ');
                        self.flow(t);
                        self.end();
                    }
                    Tree::Seq(items) if items.is_empty() || self.pick(3) == 0 => {
                        self.out.push(' ');
                        self.flow(t);
                        self.end();
                    }
                    Tree::Map(_) if self.pick(3) == 0 => {
                        self.out.push(' ');
                        self.flow(t);
                        self.end();
                    }
                    Tree::Seq(_) => {
                        self.end();
                        let deeper = if in_map && self.pick(2) == 0 { indent } else { indent + 2 };
                        self.block(t, deeper);
                    }
                    Tree::Map(_) => {
                        self.end();
                        let deeper = indent + 2 + usize::from(self.pick(2));
                        self.block(t, deeper);
                    }
                }
            }

            fn block(&mut self, t: &Tree, indent: usize) {
                let pad = " ".repeat(indent);
                match t {
                    Tree::Map(kv) => {
                        for (k, v) in kv {
                            self.out.push_str(&pad);
                            self.out.push_str(k);
                            self.out.push(':');
                            self.value(v, indent, true);
                        }
                    }
                    Tree::Seq(items) => {
                        for x in items {
                            self.out.push_str(&pad);
                            self.out.push('-');
                            match x {
                                Tree::Map(kv) if self.pick(2) == 0 => {
                                    // A compact mapping: the first key on the entry's line.
                                    self.out.push(' ');
                                    let mut first = true;
                                    for (k, v) in kv {
                                        if !first {
                                            self.out.push_str(&pad);
                                            self.out.push_str("  ");
                                        }
                                        first = false;
                                        self.out.push_str(k);
                                        self.out.push(':');
                                        self.value(v, indent + 2, true);
                                    }
                                }
                                _ => self.value(x, indent, false),
                            }
                        }
                    }
                    Tree::Leaf(_) => {
                        self.out.push_str(&pad);
                        self.flow(t);
                        self.end();
                    }
                }
            }
        }

        fn runner() -> TestRunner {
            let rng = TestRng::from_seed(proptest::test_runner::RngAlgorithm::ChaCha, &[14; 32]);
            TestRunner::new_with_rng(Config::default(), rng)
        }

        /// Random trees written in random block and flow styles, some with one character
        /// deleted or inserted: the readers agree, and most documents take the fast path.
        #[test]
        fn readers_agree_on_generated_documents() {
            let mut runner = runner();
            let cases = (tree(), prop::collection::vec(any::<u8>(), 1..32), any::<u16>(), 0u8..6);
            let n = 4_000;
            let mut accepted = 0;
            for _ in 0..n {
                let (t, bits, at, mutate) = cases.new_tree(&mut runner).expect("a generated case").current();
                let root = match t {
                    Tree::Map(kv) => Tree::Map(kv),
                    other => Tree::Map(vec![("root", other)]),
                };
                let mut r = Render { bits: &bits, at: 0, out: String::new() };
                r.block(&root, 0);
                let mut doc = r.out;
                if mutate == 0 && !doc.is_empty() {
                    let mut i = at as usize % doc.len();
                    while !doc.is_char_boundary(i) {
                        i -= 1;
                    }
                    match bits[0] % 4 {
                        0 => {
                            doc.remove(i);
                        }
                        1 => doc.insert(i, ' '),
                        2 => doc.insert(i, ':'),
                        _ => doc.insert(i, '\n'),
                    }
                }
                accepted += usize::from(agree(&doc));
            }
            assert!(accepted * 2 >= n, "only {accepted} of {n} generated documents took the fast path");
        }
    }
}
