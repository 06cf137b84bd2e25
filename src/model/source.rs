//! A document source: the text, parsed once. Holds the text, its sha256 (the plan cache key and
//! the template record's digest), the positioned YAML tree and the parameter declarations, so
//! that loading, compiling for any parameter values, and writing `model.yaml` never parse the
//! text again.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::diag::{Diagnostic, Diagnostics};
use crate::model::doc::read_parameters;
use crate::model::params::{ParamDecl, hex};
use crate::model::yaml::{self, YamlDoc};

#[derive(Debug)]
pub struct Source {
    text: Arc<str>,
    sha256: String,
    doc: YamlDoc,
    decls: Vec<ParamDecl>,
}

impl Source {
    /// Parses `text` and reads its parameter declarations; syntax and declaration errors are
    /// located diagnostics.
    pub fn parse(text: &str) -> Result<Source, Diagnostics> {
        Source::parse_with(text, &yaml::Limits::DEFAULT)
    }

    /// [`Source::parse`] within `limits`: size and nesting are checked before the text is parsed,
    /// the number of nodes before anything reads them.
    pub fn parse_with(text: &str, limits: &yaml::Limits) -> Result<Source, Diagnostics> {
        let doc = yaml::parse_with(text, limits).map_err(Diagnostics::one)?;
        if let Some((key, nodes)) = doc.root.entry("nodes")
            && let Some(list) = nodes.as_sequence()
            && list.len() > limits.max_nodes
        {
            return Err(Diagnostic::error(
                "too_many_nodes",
                format!("the document has {} nodes, over the limit of {}", list.len(), limits.max_nodes),
            )
            .at_line(key.pos.line, key.pos.column)
            .with_help("split the model, or ask the server's operator for a higher limit")
            .into());
        }
        let decls = read_parameters(&doc)?;
        Ok(Source { text: Arc::from(text), sha256: hex(&Sha256::digest(text.as_bytes())), doc, decls })
    }

    pub fn text(&self) -> &Arc<str> {
        &self.text
    }

    /// sha256 of the text (hex).
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    pub fn doc(&self) -> &YamlDoc {
        &self.doc
    }

    pub fn decls(&self) -> &[ParamDecl] {
        &self.decls
    }
}
