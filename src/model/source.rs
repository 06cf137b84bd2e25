//! A document source: the text, parsed once. Holds the text, its sha256 (the plan cache key and
//! the template record's digest), the positioned YAML tree and the parameter declarations, so
//! that loading, compiling for any parameter values, and writing `model.yaml` never parse the
//! text again.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::diag::Diagnostics;
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
        let doc = yaml::parse(text).map_err(Diagnostics::one)?;
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
