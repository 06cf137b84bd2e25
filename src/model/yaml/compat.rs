//! The parser of record: yaml_serde builds the value tree (syntax, duplicate keys, tags,
//! anchors and aliases, scalar typing, error messages) and one walk of the same libyaml event
//! stream finds where each node starts. Used for every document the fast reader gives up on.

use std::collections::HashSet;

use super::{Node, Pos, Value};
use crate::diag::Diagnostic;

/// Parses with yaml_serde and attaches positions from the event stream.
pub(super) fn parse(text: &str) -> Result<Node, Diagnostic> {
    let value: yaml_serde::Value = yaml_serde::from_str(text).map_err(|e| {
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
    let shape = shape(text);
    Ok(zip(value, shape.as_ref(), Pos::default()))
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

/// The node structure of the event stream with start positions: what the value tree lacks.
enum Shape {
    /// A scalar.
    Leaf(Pos),
    /// An alias: every node of the value it stands for starts here.
    Alias(Pos),
    /// A sequence, or a map with keys and values alternating.
    Collection(Pos, Vec<Shape>),
}

impl Shape {
    fn pos(&self) -> Pos {
        match self {
            Shape::Leaf(p) | Shape::Alias(p) | Shape::Collection(p, _) => *p,
        }
    }
}

/// Walks the events of the (single, already parsed) document into a [`Shape`].
fn shape(text: &str) -> Option<Shape> {
    let mut stack: Vec<(Pos, Vec<Shape>)> = Vec::new();
    let mut parser = events::Parser::new(text.as_bytes());
    while let Some(ev) = parser.next() {
        let pos = Pos { line: ev.line + 1, column: ev.column + 1 };
        let done = match ev.kind {
            events::Kind::Scalar(_) => Shape::Leaf(pos),
            events::Kind::Alias => Shape::Alias(pos),
            events::Kind::SeqStart | events::Kind::MapStart => {
                stack.push((pos, Vec::new()));
                continue;
            }
            events::Kind::SeqEnd | events::Kind::MapEnd => {
                let (p, kids) = stack.pop()?;
                Shape::Collection(p, kids)
            }
            events::Kind::Other => continue,
        };
        match stack.last_mut() {
            Some((_, kids)) => kids.push(done),
            None => return Some(done),
        }
    }
    None
}

/// Attaches positions to a value tree. Where the shapes disagree (they never should), nodes
/// take the position of their nearest known ancestor rather than failing.
fn zip(value: yaml_serde::Value, shape: Option<&Shape>, parent: Pos) -> Node {
    use yaml_serde::Value as Y;
    let pos = shape.map_or(parent, Shape::pos);
    // Below an alias, the whole value starts at the alias.
    let kids = |i: usize| match shape {
        Some(Shape::Collection(_, kids)) => kids.get(i),
        Some(alias @ Shape::Alias(_)) => Some(alias),
        _ => None,
    };
    let value = match value {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => Value::Number(n),
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => {
            Value::Sequence(items.into_iter().enumerate().map(|(i, v)| zip(v, kids(i), pos)).collect())
        }
        Y::Mapping(m) => Value::Mapping(
            m.into_iter()
                .enumerate()
                .map(|(i, (k, v))| (zip(k, kids(2 * i), pos), zip(v, kids(2 * i + 1), pos)))
                .collect(),
        ),
        Y::Tagged(t) => {
            let t = *t;
            Value::Tagged(Box::new((t.tag.to_string(), zip(t.value, shape, pos))))
        }
    };
    Node { pos, value }
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
