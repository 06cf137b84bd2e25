//! A one-pass reader for the YAML that models are written in, building the positioned tree
//! directly from the bytes.
//!
//! It accepts: block mappings and sequences (indented by spaces, sequences also "indentless"
//! under a key, compact mappings after `- `), flow mappings and sequences (which may span
//! lines), plain scalars on one line, single- and double-quoted scalars on one line without
//! backslash escapes, and comments. Anything else, or anything doubtful (tabs, carriage returns,
//! control characters, document markers, directives, tags, anchors, aliases, block scalars,
//! `?` keys, escapes, multi-line scalars, a `:` inside a flow scalar, trailing commas, keys of
//! more than a thousand bytes, deep nesting, duplicate keys, integers beyond 64 bits), makes it
//! return `None`, and the parser of record reads the document instead (and reports any error).
//!
//! Positions are libyaml's: the first character of a scalar, key or flow collection, the first
//! key of a block mapping, the first `-` of a block sequence, and just after the `:` or `-` of
//! an empty value.

use super::{Node, Pos, Value, scalar};

/// Deeper documents go to the parser of record, which enforces yaml_serde's depth limit.
const MAX_DEPTH: u32 = 64;
/// libyaml refuses implicit keys longer than 1024 characters.
const MAX_KEY: usize = 1000;

pub(super) fn parse(text: &str) -> Option<Node> {
    if !plain_text(text) {
        return None;
    }
    let mut p = Fast { s: text.as_bytes(), i: 0, line: 0, line_start: 0, ck_pos: 0, ck_col: 0, depth: 0 };
    p.skip_to_content();
    if p.eof() || p.column() != 0 || p.at_marker() {
        return None;
    }
    let root = p.block_node(0)?;
    p.eof().then_some(root)
}

/// Every character is one this reader handles and libyaml accepts: printable, with `\n` as the
/// only line break and no tab.
fn plain_text(text: &str) -> bool {
    let bytes = text.as_bytes();
    if bytes.iter().all(|&b| b == b'\n' || (b' '..=b'~').contains(&b)) {
        return true;
    }
    text.chars().all(|c| match c {
        '\n' | ' '..='~' => true,
        // C1 controls, NEL and the Unicode line and paragraph separators (line breaks to
        // libyaml), a byte-order mark inside the text, and the two non-characters.
        '\u{0}'..='\u{9f}' | '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}' => false,
        _ => true,
    })
}

struct Fast<'a> {
    s: &'a [u8],
    i: usize,
    /// 0-based line of `i`, and where that line starts.
    line: u32,
    line_start: usize,
    /// A byte offset on the current line and its character column, so that columns are counted
    /// incrementally however long the line is.
    ck_pos: usize,
    ck_col: u32,
    depth: u32,
}

/// How a scalar ended, for the caller to decide what the line is.
enum End {
    /// End of line, end of input or a comment.
    Line,
    /// At a `:` followed by a space, a line break or the end: a mapping indicator.
    Colon,
    /// At a flow indicator (`,`, `]`, `}`) in flow context.
    Flow,
}

fn blank(b: Option<u8>) -> bool {
    matches!(b, None | Some(b' ' | b'\n'))
}

impl<'a> Fast<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn at(&self, i: usize) -> Option<u8> {
        self.s.get(i).copied()
    }

    fn eof(&self) -> bool {
        self.i >= self.s.len()
    }

    /// Byte column of `i` on its line (indentation is spaces only, so also the character column
    /// of the first content of a line).
    fn column(&self) -> usize {
        self.i - self.line_start
    }

    /// The libyaml position of byte `at` on the current line.
    fn pos_at(&mut self, at: usize) -> Pos {
        if at < self.ck_pos {
            self.ck_pos = self.line_start;
            self.ck_col = 0;
        }
        let chars = self.s[self.ck_pos..at].iter().filter(|&&b| (b as i8) >= -0x40).count();
        self.ck_col += chars as u32;
        self.ck_pos = at;
        Pos { line: self.line + 1, column: self.ck_col + 1 }
    }

    fn pos(&mut self) -> Pos {
        self.pos_at(self.i)
    }

    fn newline(&mut self) {
        self.i += 1;
        self.line += 1;
        self.line_start = self.i;
        self.ck_pos = self.i;
        self.ck_col = 0;
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.i += 1;
        }
    }

    fn skip_comment(&mut self) {
        if self.peek() == Some(b'#') {
            while let Some(b) = self.peek()
                && b != b'\n'
            {
                self.i += 1;
            }
        }
    }

    /// Skips blank lines, comment lines and indentation: stops at the first content character
    /// of a line, or at the end. The cursor must be at the start of a line.
    fn skip_to_content(&mut self) {
        loop {
            self.skip_spaces();
            self.skip_comment();
            match self.peek() {
                Some(b'\n') => self.newline(),
                _ => return,
            }
        }
    }

    /// After a value: only spaces and a comment may follow on its line. Moves to the next
    /// content line.
    fn end_line(&mut self) -> Option<()> {
        self.skip_spaces();
        if self.peek() == Some(b'#') && self.i > self.line_start && self.s[self.i - 1] != b' ' {
            // `"x"#y`: a comment must be separated from what precedes it.
            return None;
        }
        self.skip_comment();
        match self.peek() {
            None => Some(()),
            Some(b'\n') => {
                self.newline();
                self.skip_to_content();
                Some(())
            }
            Some(_) => None,
        }
    }

    /// `---`, `...` or a directive at the start of a line.
    fn at_marker(&self) -> bool {
        let rest = &self.s[self.i..];
        rest.first() == Some(&b'%')
            || ((rest.starts_with(b"---") || rest.starts_with(b"...")) && blank(rest.get(3).copied()))
    }

    /// A block entry `- ` (or `-` at the end of a line) at the cursor.
    fn at_entry(&self) -> bool {
        self.peek() == Some(b'-') && blank(self.at(self.i + 1))
    }

    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        (self.depth <= MAX_DEPTH).then_some(())
    }

    /// The node whose first content character is at the cursor, at column `col`: a sequence, a
    /// mapping, or a single-line value.
    fn block_node(&mut self, col: usize) -> Option<Node> {
        if self.at_marker() && self.column() == 0 {
            return None;
        }
        if self.at_entry() {
            return self.block_seq(col);
        }
        if self.key_ahead()? {
            return self.block_map(col);
        }
        let v = self.inline_value(col)?;
        self.end_line()?;
        Some(v)
    }

    /// Whether the line at the cursor starts with `key:`; None when it is something this reader
    /// does not take (a complex key, a key it cannot scan).
    fn key_ahead(&mut self) -> Option<bool> {
        let save = (self.i, self.ck_pos, self.ck_col);
        let res = match self.peek() {
            Some(b'[' | b'{') => Some(false),
            Some(q @ (b'"' | b'\'')) => {
                self.quoted(q)?;
                self.skip_spaces();
                Some(self.peek() == Some(b':') && blank(self.at(self.i + 1)))
            }
            _ => match self.plain_block()? {
                (_, End::Colon) => Some(true),
                _ => Some(false),
            },
        };
        (self.i, self.ck_pos, self.ck_col) = save;
        res
    }

    fn block_map(&mut self, col: usize) -> Option<Node> {
        self.enter()?;
        let start = self.pos();
        let mut entries: Vec<(Node, Node)> = Vec::new();
        loop {
            let key = self.block_key()?;
            // At the `:`.
            self.i += 1;
            let after_colon = self.pos();
            self.skip_spaces();
            let value = match self.peek() {
                None | Some(b'\n' | b'#') => {
                    self.end_line()?;
                    if self.eof() {
                        Node::null(after_colon)
                    } else if self.column() > col {
                        self.block_node(self.column())?
                    } else if self.column() == col && self.at_entry() {
                        self.block_seq(col)?
                    } else {
                        Node::null(after_colon)
                    }
                }
                Some(_) => {
                    if self.at_entry() {
                        return None;
                    }
                    let v = self.inline_value(col)?;
                    self.end_line()?;
                    v
                }
            };
            entries.push((key, value));
            if self.eof() || self.column() < col {
                break;
            }
            if self.column() > col || self.at_entry() || self.at_marker() {
                return None;
            }
        }
        self.depth -= 1;
        unique_keys(&entries).then_some(Node { pos: start, value: Value::Mapping(entries) })
    }

    /// A key of a block mapping, leaving the cursor at its `:`.
    fn block_key(&mut self) -> Option<Node> {
        let start = self.i;
        let node = match self.peek()? {
            q @ (b'"' | b'\'') => {
                let n = self.quoted(q)?;
                self.skip_spaces();
                n
            }
            _ => match self.plain_block()? {
                (n, End::Colon) => n,
                _ => return None,
            },
        };
        let simple = node.as_str().is_none_or(|k| !k.contains([':', '#']));
        (self.peek() == Some(b':') && self.i - start <= MAX_KEY && simple).then_some(node)
    }

    fn block_seq(&mut self, col: usize) -> Option<Node> {
        self.enter()?;
        let start = self.pos();
        let mut items = Vec::new();
        loop {
            // At `-`.
            self.i += 1;
            let after_dash = self.pos();
            self.skip_spaces();
            let item = match self.peek() {
                None | Some(b'\n' | b'#') => {
                    self.end_line()?;
                    if !self.eof() && self.column() > col {
                        self.block_node(self.column())?
                    } else {
                        Node::null(after_dash)
                    }
                }
                Some(_) if self.at_entry() => return None,
                Some(_) => {
                    if self.key_ahead()? {
                        self.block_map(self.column())?
                    } else {
                        let v = self.inline_value(col)?;
                        self.end_line()?;
                        v
                    }
                }
            };
            items.push(item);
            if self.eof() || self.column() < col {
                break;
            }
            if self.column() > col || self.at_marker() {
                return None;
            }
            if !self.at_entry() {
                // A key of the mapping this indentless sequence is the value of.
                break;
            }
        }
        self.depth -= 1;
        Some(Node { pos: start, value: Value::Sequence(items) })
    }

    /// A value on one line (a flow collection may continue on lines indented more than
    /// `col`): leaves the cursor just after it.
    fn inline_value(&mut self, col: usize) -> Option<Node> {
        match self.peek()? {
            b'[' | b'{' => self.flow_node(col),
            q @ (b'"' | b'\'') => self.quoted(q),
            _ => match self.plain_block()? {
                (n, End::Line) => Some(n),
                _ => None,
            },
        }
    }

    /// Whether a plain scalar may start at the cursor (`next` is the byte after it).
    fn plain_start(&self, flow: bool) -> bool {
        match self.peek() {
            None | Some(b' ' | b'\n') => false,
            Some(b'-') => {
                let next = self.at(self.i + 1);
                !(blank(next) || (flow && matches!(next, Some(b',' | b']' | b'}'))))
            }
            Some(
                b'?' | b':' | b',' | b'[' | b']' | b'{' | b'}' | b'#' | b'&' | b'*' | b'!' | b'|' | b'>' | b'\'' | b'"'
                | b'%' | b'@' | b'`',
            ) => false,
            Some(_) => true,
        }
    }

    /// A plain scalar in block context, ending at a line break, ` #` or `: `.
    fn plain_block(&mut self) -> Option<(Node, End)> {
        self.plain(false)
    }

    /// A plain scalar in flow context, also ending at a flow indicator.
    fn plain_flow(&mut self) -> Option<(Node, End)> {
        self.plain(true)
    }

    /// A plain scalar on one line. In flow context `,` `]` `}` end it, and `[`, `{` or a `:`
    /// not followed by a space are left to the parser of record.
    fn plain(&mut self, flow: bool) -> Option<(Node, End)> {
        if !self.plain_start(flow) {
            return None;
        }
        let start = self.i;
        let pos = self.pos();
        let mut end = self.i;
        let how = loop {
            match self.peek() {
                None | Some(b'\n') => break End::Line,
                Some(b' ') => {
                    self.i += 1;
                    if self.peek() == Some(b'#') {
                        break End::Line;
                    }
                }
                Some(b':') if blank(self.at(self.i + 1)) => break End::Colon,
                Some(b',' | b']' | b'}') if flow => break End::Flow,
                Some(b'[' | b'{' | b':') if flow => return None,
                Some(_) => {
                    self.i += 1;
                    end = self.i;
                }
            }
        };
        self.i = end;
        if !flow && matches!(how, End::Colon) {
            self.skip_spaces();
        }
        Some((self.scalar(start, end, pos)?, how))
    }

    fn scalar(&self, start: usize, end: usize, pos: Pos) -> Option<Node> {
        // The input is a &str and both ends are at ASCII bytes: a valid slice.
        let text = std::str::from_utf8(&self.s[start..end]).ok()?;
        Some(Node { pos, value: scalar::plain(text)? })
    }

    /// A quoted scalar on one line, without backslash escapes; the cursor ends after the quote.
    fn quoted(&mut self, q: u8) -> Option<Node> {
        let pos = self.pos();
        self.i += 1;
        let start = self.i;
        let mut owned: Option<Vec<u8>> = None;
        loop {
            match self.peek()? {
                b'\n' => return None,
                b'\\' if q == b'"' => return None,
                b if b == q => {
                    if q == b'\'' && self.at(self.i + 1) == Some(b'\'') {
                        let buf = owned.get_or_insert_with(|| self.s[start..self.i].to_vec());
                        buf.push(b'\'');
                        self.i += 2;
                        continue;
                    }
                    break;
                }
                b => {
                    if let Some(buf) = owned.as_mut() {
                        buf.push(b);
                    }
                    self.i += 1;
                }
            }
        }
        let text = match owned {
            Some(buf) => String::from_utf8(buf).ok()?,
            None => std::str::from_utf8(&self.s[start..self.i]).ok()?.to_string(),
        };
        self.i += 1;
        // What may follow a quoted scalar on its line.
        if !matches!(self.peek(), None | Some(b' ' | b'\n' | b',' | b']' | b'}' | b':')) {
            return None;
        }
        Some(Node { pos, value: Value::String(text) })
    }

    /// Skips spaces, comments and line breaks inside a flow collection; a line inside it must be
    /// indented more than the block it is in.
    fn flow_space(&mut self, col: usize) -> Option<()> {
        loop {
            self.skip_spaces();
            if self.peek() == Some(b'#') {
                if self.i > self.line_start && self.s[self.i - 1] != b' ' {
                    return None;
                }
                self.skip_comment();
            }
            match self.peek() {
                Some(b'\n') => {
                    self.newline();
                    self.skip_spaces();
                    if self.peek().is_some_and(|b| b != b'\n' && b != b'#') && self.column() <= col {
                        return None;
                    }
                    if self.at_marker() && self.column() == 0 {
                        return None;
                    }
                }
                _ => return Some(()),
            }
        }
    }

    fn flow_node(&mut self, col: usize) -> Option<Node> {
        match self.peek()? {
            b'[' => self.flow_seq(col),
            b'{' => self.flow_map(col),
            q @ (b'"' | b'\'') => self.quoted(q),
            _ => match self.plain_flow()? {
                (n, End::Flow | End::Line) => Some(n),
                (_, End::Colon) => None,
            },
        }
    }

    /// After a flow item: a `,` and another item (true; a trailing comma is left to the parser
    /// of record), or the collection's `close` (false, consumed).
    fn flow_next(&mut self, col: usize, close: u8) -> Option<bool> {
        self.flow_space(col)?;
        match self.peek()? {
            b',' => {
                self.i += 1;
                self.flow_space(col)?;
                (self.peek() != Some(close)).then_some(true)
            }
            b if b == close => {
                self.i += 1;
                Some(false)
            }
            _ => None,
        }
    }

    fn flow_seq(&mut self, col: usize) -> Option<Node> {
        self.enter()?;
        let pos = self.pos();
        self.i += 1;
        let mut items = Vec::new();
        self.flow_space(col)?;
        if self.peek() == Some(b']') {
            self.i += 1;
        } else {
            loop {
                items.push(self.flow_node(col)?);
                if !self.flow_next(col, b']')? {
                    break;
                }
            }
        }
        self.depth -= 1;
        Some(Node { pos, value: Value::Sequence(items) })
    }

    fn flow_map(&mut self, col: usize) -> Option<Node> {
        self.enter()?;
        let pos = self.pos();
        self.i += 1;
        let mut entries: Vec<(Node, Node)> = Vec::new();
        self.flow_space(col)?;
        if self.peek() == Some(b'}') {
            self.i += 1;
        } else {
            loop {
                let key_start = self.i;
                let key = match self.peek()? {
                    q @ (b'"' | b'\'') => {
                        let k = self.quoted(q)?;
                        self.skip_spaces();
                        k
                    }
                    _ => match self.plain_flow()? {
                        (k, End::Colon) => {
                            self.skip_spaces();
                            k
                        }
                        _ => return None,
                    },
                };
                let simple = key.as_str().is_none_or(|k| !k.contains([':', '#']));
                if self.peek() != Some(b':') || !blank(self.at(self.i + 1)) || self.i - key_start > MAX_KEY || !simple {
                    return None;
                }
                self.i += 1;
                self.flow_space(col)?;
                if matches!(self.peek()?, b',' | b'}' | b']') {
                    return None;
                }
                let value = self.flow_node(col)?;
                entries.push((key, value));
                if !self.flow_next(col, b'}')? {
                    break;
                }
            }
        }
        self.depth -= 1;
        unique_keys(&entries).then_some(Node { pos, value: Value::Mapping(entries) })
    }
}

/// No two keys equal (yaml_serde compares keys as values). Non-string keys in a large map are
/// left to the parser of record.
fn unique_keys(entries: &[(Node, Node)]) -> bool {
    if entries.len() <= 16 {
        return entries.iter().enumerate().all(|(i, (k, _))| entries[..i].iter().all(|(o, _)| o.value != k.value));
    }
    let mut seen = rustc_hash::FxHashSet::default();
    entries.iter().all(|(k, _)| k.as_str().is_some_and(|s| seen.insert(s)))
}
