//! YAML parsing: the document tree (yaml_serde) plus a locator that maps YAML paths to line and
//! column, built from the event stream of the same libyaml parser that yaml_serde uses.
//!
//! yaml_serde reports positions only for syntax errors; semantic errors (an unknown reference in
//! `nodes[3].expr`) still need a line, so the locator walks the events once and records where
//! every key and value starts.

use std::collections::{HashMap, HashSet};
use std::fmt;

use yaml_serde::Value;

use crate::diag::Diagnostic;

/// One step of a YAML path.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A path from the document root, e.g. `nodes[3].expr`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct YPath(pub Vec<Seg>);

impl YPath {
    pub fn key(&self, k: &str) -> YPath {
        let mut p = self.clone();
        p.0.push(Seg::Key(k.to_string()));
        p
    }

    pub fn index(&self, i: usize) -> YPath {
        let mut p = self.clone();
        p.0.push(Seg::Index(i));
        p
    }
}

impl fmt::Display for YPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            match s {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// 1-based line and column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pos {
    pub line: u32,
    pub column: u32,
}

/// Where each key and value of a document starts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Locator {
    values: HashMap<YPath, Pos>,
    keys: HashMap<YPath, Pos>,
}

impl Locator {
    /// Position of the value at `path`, or of the nearest enclosing value that is known.
    pub fn value(&self, path: &YPath) -> Option<Pos> {
        let mut p = path.clone();
        loop {
            if let Some(pos) = self.values.get(&p) {
                return Some(*pos);
            }
            p.0.pop()?;
        }
    }

    /// Position of the key that ends `path` (for "unknown key" errors), else of its value.
    pub fn key(&self, path: &YPath) -> Option<Pos> {
        self.keys.get(path).copied().or_else(|| self.value(path))
    }
}

/// A parsed document: the value tree and where its parts are.
#[derive(Clone, Debug, PartialEq)]
pub struct YamlDoc {
    pub value: Value,
    pub locator: Locator,
}

/// Parses one YAML document. Duplicate keys, syntax errors and an empty document are errors with
/// line and column.
pub fn parse(text: &str) -> Result<YamlDoc, Diagnostic> {
    // Editors on some systems start UTF-8 files with a byte-order mark, which yaml_serde would
    // read as a second document.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let value: Value = yaml_serde::from_str(text).map_err(|e| {
        let msg = strip_location(&e.to_string());
        // yaml_serde places a duplicate key at the start of its map; point at the key itself.
        let pos = if msg.contains("duplicate entry") { first_duplicate_key(text) } else { None };
        let mut d = Diagnostic::error("yaml_syntax", format!("malformed YAML: {msg}"))
            .with_help("check indentation, quoting and that every key appears once per map");
        if let Some(p) = pos {
            d = d.at_line(p.line, p.column);
        } else if let Some(loc) = e.location() {
            d = d.at_line(loc.line() as u32, loc.column() as u32);
        }
        d
    })?;
    if value.is_null() {
        return Err(Diagnostic::error("yaml_empty", "the document is empty")
            .with_help("a model needs at least `grid` and `nodes`"));
    }
    Ok(YamlDoc { value, locator: locate(text) })
}

/// yaml_serde appends " at line L column C" to messages; the diagnostic carries those separately.
fn strip_location(msg: &str) -> String {
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// Where the first key that repeats within one map is, from the event stream (which, unlike
/// the tree parser, accepts duplicates).
fn first_duplicate_key(text: &str) -> Option<Pos> {
    // Per open collection: for maps, the scalar keys seen and whether the next node is a key.
    let mut stack: Vec<Option<(HashSet<String>, bool)>> = Vec::new();
    let mut parser = events::Parser::new(text.as_bytes());
    while let Some(ev) = parser.next() {
        let starts_node = matches!(
            ev.kind,
            events::Kind::Scalar(_) | events::Kind::SeqStart | events::Kind::MapStart | events::Kind::Alias
        );
        if starts_node && let Some(Some((keys, next_is_key))) = stack.last_mut() {
            if *next_is_key
                && let events::Kind::Scalar(k) = &ev.kind
                && !keys.insert(k.clone())
            {
                return Some(Pos { line: ev.line + 1, column: ev.column + 1 });
            }
            *next_is_key = !*next_is_key;
        }
        match ev.kind {
            events::Kind::MapStart => stack.push(Some((HashSet::new(), true))),
            events::Kind::SeqStart => stack.push(None),
            events::Kind::MapEnd | events::Kind::SeqEnd => {
                stack.pop();
            }
            _ => {}
        }
    }
    None
}

enum Frame {
    Map { path: YPath, key: Option<String> },
    Seq { path: YPath, next: usize },
}

/// Walks the event stream and records positions. Errors simply end the walk: the tree parse has
/// already succeeded, so this only happens on inputs both parsers reject.
fn locate(text: &str) -> Locator {
    let mut loc = Locator::default();
    let mut stack: Vec<Frame> = Vec::new();
    let mut parser = events::Parser::new(text.as_bytes());
    while let Some(ev) = parser.next() {
        let pos = Pos { line: ev.line + 1, column: ev.column + 1 };
        // Decide the path of the node this event starts, if it starts one.
        let starts_node = matches!(
            ev.kind,
            events::Kind::Scalar(_) | events::Kind::SeqStart | events::Kind::MapStart | events::Kind::Alias
        );
        let mut node_path = None;
        if starts_node {
            match stack.last_mut() {
                None => node_path = Some(YPath::default()),
                Some(Frame::Seq { path, next }) => {
                    node_path = Some(path.index(*next));
                    *next += 1;
                }
                Some(Frame::Map { path, key }) => match key.take() {
                    None => {
                        // This node is a key.
                        let k = match &ev.kind {
                            events::Kind::Scalar(s) => s.clone(),
                            _ => String::from("?"),
                        };
                        loc.keys.insert(path.key(&k), pos);
                        *key = Some(k);
                        if !matches!(ev.kind, events::Kind::Scalar(_)) {
                            // Complex keys are not used by our documents; skip their content.
                            node_path = Some(path.key("?key"));
                        } else {
                            continue;
                        }
                    }
                    Some(k) => node_path = Some(path.key(&k)),
                },
            }
        }
        match ev.kind {
            events::Kind::Scalar(_) | events::Kind::Alias => {
                if let Some(p) = node_path {
                    loc.values.insert(p, pos);
                }
            }
            events::Kind::SeqStart => {
                let p = node_path.unwrap_or_default();
                loc.values.insert(p.clone(), pos);
                stack.push(Frame::Seq { path: p, next: 0 });
            }
            events::Kind::MapStart => {
                let p = node_path.unwrap_or_default();
                loc.values.insert(p.clone(), pos);
                stack.push(Frame::Map { path: p, key: None });
            }
            events::Kind::SeqEnd | events::Kind::MapEnd => {
                stack.pop();
            }
            events::Kind::Other => {}
        }
    }
    loc
}

/// A minimal safe wrapper over libyaml-rs's event parser.
#[expect(unsafe_code, reason = "libyaml-rs exposes libyaml's C-style API; this module wraps it")]
mod events {
    use std::mem::MaybeUninit;

    use libyaml_rs as sys;

    pub(super) enum Kind {
        Scalar(String),
        Alias,
        SeqStart,
        SeqEnd,
        MapStart,
        MapEnd,
        Other,
    }

    pub(super) struct Event {
        pub(super) kind: Kind,
        pub(super) line: u32,
        pub(super) column: u32,
    }

    pub(super) struct Parser<'a> {
        // Boxed so that the parser's address is stable: libyaml keeps pointers into it.
        raw: Box<MaybeUninit<sys::yaml_parser_t>>,
        _input: &'a [u8],
        done: bool,
    }

    impl<'a> Parser<'a> {
        pub(super) fn new(input: &'a [u8]) -> Parser<'a> {
            let mut raw = Box::new(MaybeUninit::<sys::yaml_parser_t>::uninit());
            // SAFETY: `raw` points to writable memory for a parser; initialize fills it in. The
            // input slice outlives the parser (lifetime 'a) and is only read.
            let ok = unsafe {
                let p = raw.as_mut_ptr();
                if sys::yaml_parser_initialize(p).fail {
                    false
                } else {
                    sys::yaml_parser_set_encoding(p, sys::YAML_UTF8_ENCODING);
                    sys::yaml_parser_set_input_string(p, input.as_ptr(), input.len() as _);
                    true
                }
            };
            Parser { raw, _input: input, done: !ok }
        }

        pub(super) fn next(&mut self) -> Option<Event> {
            if self.done {
                return None;
            }
            let mut ev = MaybeUninit::<sys::yaml_event_t>::uninit();
            // SAFETY: the parser was initialized in `new`; `ev` is written by yaml_parser_parse
            // before it is read, and deleted exactly once below.
            unsafe {
                let p = self.raw.as_mut_ptr();
                if sys::yaml_parser_parse(p, ev.as_mut_ptr()).fail {
                    self.done = true;
                    return None;
                }
                let ev = ev.assume_init_mut();
                let kind = match ev.type_ {
                    sys::YAML_SCALAR_EVENT => {
                        let s = ev.data.scalar;
                        let bytes = if s.value.is_null() {
                            &[][..]
                        } else {
                            std::slice::from_raw_parts(s.value, s.length as usize)
                        };
                        Kind::Scalar(String::from_utf8_lossy(bytes).into_owned())
                    }
                    sys::YAML_ALIAS_EVENT => Kind::Alias,
                    sys::YAML_SEQUENCE_START_EVENT => Kind::SeqStart,
                    sys::YAML_SEQUENCE_END_EVENT => Kind::SeqEnd,
                    sys::YAML_MAPPING_START_EVENT => Kind::MapStart,
                    sys::YAML_MAPPING_END_EVENT => Kind::MapEnd,
                    sys::YAML_STREAM_END_EVENT => {
                        self.done = true;
                        Kind::Other
                    }
                    _ => Kind::Other,
                };
                let line = ev.start_mark.line as u32;
                let column = ev.start_mark.column as u32;
                sys::yaml_event_delete(ev);
                Some(Event { kind, line, column })
            }
        }
    }

    impl Drop for Parser<'_> {
        fn drop(&mut self) {
            // SAFETY: `raw` was initialized by yaml_parser_initialize unless `new` failed, in
            // which case libyaml has already released what it allocated and zeroed the struct
            // (yaml_parser_initialize memsets it first), so delete is a no-op on it.
            unsafe { sys::yaml_parser_delete(self.raw.as_mut_ptr()) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_block_and_flow_values() {
        let text = "grid:\n  bins: 3\nnodes:\n  - id: a\n    expr: \"x\"\n  - {id: b, kind: expr}\n";
        let doc = parse(text).unwrap();
        let p = YPath::default().key("nodes").index(0).key("expr");
        assert_eq!(doc.locator.value(&p), Some(Pos { line: 5, column: 11 }));
        let p = YPath::default().key("nodes").index(1).key("kind");
        assert_eq!(doc.locator.value(&p), Some(Pos { line: 6, column: 19 }));
        assert_eq!(doc.locator.key(&YPath::default().key("grid").key("bins")), Some(Pos { line: 2, column: 3 }));
        // Unknown paths fall back to the nearest known ancestor.
        let p = YPath::default().key("nodes").index(1).key("nope");
        assert_eq!(doc.locator.value(&p), Some(Pos { line: 6, column: 5 }));
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
    }
}
