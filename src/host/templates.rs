//! Stored templates: validating and storing them, listing and lookup, the grid a version has for
//! given parameters, the latest version, and the per-version cache of parsed declarations.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::diag::{Diagnostic, Diagnostics};
use crate::engine::plan::Compiled;
use crate::host::plan_cache::{StructuralReads, plan_recording};
use crate::host::{Host, HostError};
use crate::model::doc::read_document;
use crate::model::grid::Grid;
use crate::model::params::{ParamDecl, ParamValue};
use crate::model::source::Source;
use crate::model::template::{Supplied, bind};
use crate::model::yaml::Limits;
use crate::store::{StoreError, TemplateRecord};
use crate::sys;

/// A stored template version as the host shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct TemplateInfo {
    pub id: String,
    pub version: String,
    /// The document as stored.
    pub text: String,
    /// sha256 of the text (hex).
    pub sha256: String,
    pub title: Option<String>,
    pub description: Option<String>,
    pub stored_utc: String,
}

impl From<TemplateRecord> for TemplateInfo {
    fn from(r: TemplateRecord) -> TemplateInfo {
        TemplateInfo {
            id: r.id,
            version: r.version,
            text: r.text,
            sha256: r.sha256,
            title: r.title,
            description: r.description,
            stored_utc: r.stored_utc,
        }
    }
}

impl TemplateInfo {
    /// The declared parameters (none when the stored text no longer parses).
    pub fn parameters(&self) -> Vec<ParamDecl> {
        Source::parse(&self.text).map(|s| s.decls().to_vec()).unwrap_or_default()
    }
}

#[derive(Clone, Debug)]
pub(crate) struct TemplateEntry {
    /// The stored text parsed once.
    pub(crate) source: Arc<Source>,
    /// The source's parameter declarations.
    pub(crate) decls: Arc<Vec<ParamDecl>>,
}

/// A template validated without the host: parsed, its metadata read and (when every parameter
/// has a default) compiled, ready for [`Host::store_template`]. Servers prepare templates off the
/// host lock, so a large or slow document never holds up other requests.
pub struct PreparedTemplate {
    record: TemplateRecord,
    source: Arc<Source>,
    /// The plan for the defaults, with what it read structurally (for the plan cache).
    plan: Option<(Arc<Compiled>, StructuralReads)>,
}

impl PreparedTemplate {
    /// Parses and validates `text` (labelled `label` in diagnostics) within `limits`.
    pub fn new(text: &str, label: &str, limits: &Limits) -> Result<PreparedTemplate, HostError> {
        let source = Arc::new(Source::parse_with(text, limits).map_err(|d| with_label(d, label))?);
        let decls = source.decls();
        let meta_doc = read_document(source.doc(), &defaults_only(decls));
        // Validate as far as defaults allow: a template whose parameters all have defaults must
        // compile. The plan is kept: opening a session with the defaults reuses it.
        let plan = if decls.iter().all(|d| d.default.is_some()) {
            let params = bind(decls, &BTreeMap::new())?;
            let (plan, reads) = plan_recording(&source, &params, &BTreeSet::new()).map_err(|d| with_label(d, label))?;
            Some((Arc::new(plan), reads))
        } else {
            None
        };
        let (id, version, title, description) = match &meta_doc {
            Ok(d) => (d.meta.id.clone(), d.meta.version.clone(), d.meta.title.clone(), d.meta.description.clone()),
            Err(_) => {
                let v = &source.doc().root;
                let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
                (s("id"), s("version"), s("title"), s("description"))
            }
        };
        let (Some(id), Some(version)) = (id, version) else {
            return Err(Diagnostic::error("template_identity", "a stored template needs `id` and `version`")
                .in_file(label)
                .with_help("add e.g. id: order-system and version: \"1.0.0\"")
                .into());
        };
        let record = TemplateRecord {
            id,
            version,
            text: text.to_string(),
            sha256: source.sha256().to_string(),
            title,
            description,
            stored_utc: String::new(),
        };
        Ok(PreparedTemplate { record, source, plan })
    }
}

impl Host {
    /// Validates and stores a template; returns `(id, version, created)`. Identical text again is
    /// a no-op; different text under a stored `(id, version)` is `AlreadyExists`.
    pub fn put_template(&mut self, text: &str, label: &str) -> Result<(String, String, bool), HostError> {
        self.store_template(PreparedTemplate::new(text, label, &Limits::DEFAULT)?)
    }

    /// Stores a template prepared (validated) beforehand: the only part of [`Host::put_template`]
    /// that needs the host.
    pub fn store_template(&mut self, prepared: PreparedTemplate) -> Result<(String, String, bool), HostError> {
        let PreparedTemplate { mut record, source, plan } = prepared;
        record.stored_utc = sys::now_utc();
        let (id, version) = (record.id.clone(), record.version.clone());
        let created = self.store.write(|w| w.put_template(&record))?;
        if let Some((plan, reads)) = plan {
            self.plans.insert(&source, reads, BTreeSet::new(), plan);
        }
        if created {
            self.templates.insert(
                (id.clone(), version.clone()),
                TemplateEntry { decls: Arc::new(source.decls().to_vec()), source },
            );
        } else {
            self.template_entry(&id, &version)?;
        }
        Ok((id, version, created))
    }

    /// The grid a stored template has with these parameter values (to read series files for it).
    pub fn template_grid(
        &mut self,
        id: &str,
        version: &str,
        params: &BTreeMap<String, Supplied>,
    ) -> Result<Grid, HostError> {
        let entry = self.template_entry(id, version)?;
        let values = bind(&entry.decls, params)?;
        Ok(read_document(entry.source.doc(), &values)?.grid)
    }

    pub fn templates(&self) -> Result<Vec<TemplateInfo>, HostError> {
        Ok(self.store.read()?.templates()?.into_iter().map(TemplateInfo::from).collect())
    }

    pub fn template(&self, id: &str, version: &str) -> Result<TemplateInfo, HostError> {
        Ok(self.template_record(id, version)?.into())
    }

    fn template_record(&self, id: &str, version: &str) -> Result<TemplateRecord, HostError> {
        self.store.read()?.template(id, version)?.ok_or_else(|| {
            let stored: Vec<String> = self
                .templates()
                .map(|ts| ts.into_iter().filter(|t| t.id == id).map(|t| t.version).collect())
                .unwrap_or_default();
            match stored.is_empty() {
                true => self.template_not_found(id),
                false => HostError::NotFound(format!(
                    "template `{id}` version `{version}` not found (stored versions: {})",
                    stored.join(", ")
                )),
            }
        })
    }

    /// The highest stored version of template `id` (see `version_order`).
    pub fn latest_template(&self, id: &str) -> Result<Option<TemplateInfo>, HostError> {
        let mut all: Vec<TemplateInfo> = self.templates()?.into_iter().filter(|t| t.id == id).collect();
        all.sort_by(|a, b| super::version_order(&a.version, &b.version));
        Ok(all.pop())
    }

    /// Version `version` of template `id`, or its highest stored version when `version` is empty.
    pub fn find_template(&self, id: &str, version: &str) -> Result<TemplateInfo, HostError> {
        if !version.is_empty() {
            return self.template(id, version);
        }
        self.latest_template(id)?.ok_or_else(|| self.template_not_found(id))
    }

    /// "template `x` not found", with the nearest stored id and the stored ones.
    fn template_not_found(&self, id: &str) -> HostError {
        let mut ids: Vec<String> = self.templates().unwrap_or_default().into_iter().map(|t| t.id).collect();
        ids.dedup();
        let names: Vec<&str> = ids.iter().map(String::as_str).collect();
        let hint = match crate::model::doc::closest(id, &names) {
            Some(n) => format!("; did you mean `{n}`?"),
            None => String::new(),
        };
        let list = if names.is_empty() { "none".to_string() } else { names.join(", ") };
        HostError::NotFound(format!("template `{id}` not found{hint} (stored templates: {list})"))
    }

    /// The salsa input and declarations of a stored template, created on first use.
    pub(super) fn template_entry(&mut self, id: &str, version: &str) -> Result<TemplateEntry, HostError> {
        let key = (id.to_string(), version.to_string());
        if let Some(e) = self.templates.get(&key) {
            return Ok(e.clone());
        }
        let record = self.template_record(id, version)?;
        // A stored template was validated when it was stored: one that no longer parses is data
        // this build cannot use, named as such (not as the caller's bad input).
        let unusable = |d: Diagnostics| {
            HostError::from(StoreError::DataLoss {
                path: self.file(),
                what: format!("stored template {id}@{version}"),
                problem: format!("does not parse: {d}"),
            })
        };
        let source = Arc::new(Source::parse(&record.text).map_err(unusable)?);
        let entry = TemplateEntry { decls: Arc::new(source.decls().to_vec()), source };
        self.templates.insert(key, entry.clone());
        Ok(entry)
    }
}

fn with_label(mut d: Diagnostics, label: &str) -> Diagnostics {
    for x in &mut d.0 {
        if x.file.is_none() {
            x.file = Some(label.to_string());
        }
    }
    d
}

/// A lookup that answers only from defaults (for reading a template's metadata).
fn defaults_only(decls: &[ParamDecl]) -> BTreeMap<String, ParamValue> {
    decls.iter().filter_map(|d| d.default.clone().map(|v| (d.name.clone(), v))).collect()
}
