//! Seeding a database with the templates compiled into the binary (`serve` does it on every
//! start): each bundled template version the database lacks is stored, and a session named after
//! it is opened when all its parameters have defaults.
//!
//! Invariant: a bundled template version counts as seeded only once its note
//! `seeded:<id>@<version>` is committed, after its template and its session. Every step is
//! idempotent, so a seed cut short (a crash, a kill) is finished by the next start; a seeded
//! template's session that a user closed is not opened again.

use crate::host::{Host, HostError, OpenRequest};

/// What one seeding did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Seeded {
    /// Bundled templates stored now (`id@version`).
    pub templates: Vec<String>,
    /// Sessions opened now.
    pub sessions: Vec<String>,
    /// Bundled templates that could not be seeded, with why (e.g. a different text stored under
    /// the same id and version).
    pub skipped: Vec<String>,
}

impl Host {
    /// Stores the bundled templates this database lacks and opens their default sessions.
    pub fn seed_bundled(&mut self) -> Result<Seeded, HostError> {
        let mut out = Seeded::default();
        for (path, text) in crate::embedded::templates() {
            let (id, version, created) = match self.put_template(text, path) {
                Ok(stored) => stored,
                Err(HostError::AlreadyExists(what)) => {
                    out.skipped.push(format!("{path}: {what} already exists"));
                    continue;
                }
                Err(e) => return Err(e),
            };
            if created {
                out.templates.push(format!("{id}@{version}"));
            }
            let note = format!("seeded:{id}@{version}");
            if self.store.read()?.note(&note)?.is_some() {
                continue;
            }
            let all_default = self.template_entry(&id, &version)?.decls.iter().all(|d| d.default.is_some());
            if all_default && !self.sessions.contains_key(&id) {
                self.open_session(OpenRequest {
                    template_id: id.clone(),
                    template_version: version,
                    id: Some(id.clone()),
                    ..Default::default()
                })?;
                out.sessions.push(id);
            }
            self.store.write(|w| w.put_note(&note, "complete"))?;
        }
        Ok(out)
    }
}
