//! The plan cache: compiling a parsed document outside salsa while recording which parameters it
//! read structurally, and reusing one plan for scenarios that agree on those reads and the
//! override set. Compiling starts from the [`Source`]'s tree: the text is never parsed here.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::diag::Diagnostics;
use crate::engine::plan::{Compiled, compile};
use crate::model::doc::read_document;
use crate::model::params::ParamValue;
use crate::model::source::Source;

/// A parameter lookup that remembers what it was asked: the structural parameters.
struct Recording<'a> {
    values: &'a BTreeMap<String, ParamValue>,
    read: std::cell::RefCell<BTreeSet<String>>,
}

impl crate::model::doc::ParamLookup for Recording<'_> {
    fn value(&self, name: &str) -> Option<ParamValue> {
        self.read.borrow_mut().insert(name.to_string());
        self.values.get(name).cloned()
    }
}

/// The structural parameters a plan read, with the values it saw.
pub(crate) type StructuralReads = Vec<(String, Option<ParamValue>)>;

/// One cached plan: the structural reads and override set it was compiled with.
type CachedPlan = (StructuralReads, BTreeSet<String>, Arc<Compiled>);

/// Compiles and returns the structural parameters the plan depends on, with their values.
pub(crate) fn plan_recording(
    src: &Source,
    params: &BTreeMap<String, ParamValue>,
    overrides: &BTreeSet<String>,
) -> Result<(Compiled, StructuralReads), Diagnostics> {
    let lookup = Recording { values: params, read: Default::default() };
    let document = read_document(src.doc(), &lookup)?;
    let reads = lookup.read.into_inner().into_iter().map(|k| (k.clone(), params.get(&k).cloned())).collect();
    Ok((compile(Arc::new(document), overrides)?, reads))
}

/// Plans already compiled, per template: a plan depends only on the text, the values of the
/// parameters read structurally, and the set of overridden nodes, so scenarios that agree on
/// those (e.g. variants overriding only evaluable parameters) share one plan.
#[derive(Default)]
pub(crate) struct PlanCache {
    entries: BTreeMap<String, Vec<CachedPlan>>,
}

impl PlanCache {
    const PER_TEMPLATE: usize = 32;

    pub(crate) fn get(
        &mut self,
        src: &Source,
        params: &BTreeMap<String, ParamValue>,
        overrides: &BTreeSet<String>,
    ) -> Result<Arc<Compiled>, Diagnostics> {
        let list = self.entries.entry(src.sha256().to_string()).or_default();
        if let Some((_, _, c)) = list
            .iter()
            .find(|(reads, ovr, _)| ovr == overrides && reads.iter().all(|(k, v)| params.get(k) == v.as_ref()))
        {
            return Ok(c.clone());
        }
        let (c, reads) = plan_recording(src, params, overrides)?;
        let c = Arc::new(c);
        self.insert(src, reads, overrides.clone(), c.clone());
        Ok(c)
    }

    /// Caches a plan compiled elsewhere (off the host lock) with what it read structurally.
    pub(crate) fn insert(
        &mut self,
        src: &Source,
        reads: StructuralReads,
        overrides: BTreeSet<String>,
        c: Arc<Compiled>,
    ) {
        let list = self.entries.entry(src.sha256().to_string()).or_default();
        if list.iter().any(|(r, o, _)| *r == reads && *o == overrides) {
            return;
        }
        if list.len() >= Self::PER_TEMPLATE {
            list.remove(0);
        }
        list.push((reads, overrides, c));
    }

    /// The parameters `plan` (a plan this cache handed out for template `sha`) read structurally,
    /// while it is cached.
    pub(crate) fn structural_reads(&self, sha: &str, plan: &Arc<Compiled>) -> Option<BTreeSet<String>> {
        let (reads, _, _) = self.entries.get(sha)?.iter().find(|(_, _, c)| Arc::ptr_eq(c, plan))?;
        Some(reads.iter().map(|(k, _)| k.clone()).collect())
    }
}
