//! `flowtime variant create|set|list|show|delete`, through the SessionService. Every command
//! that names one variant takes it as `SESSION/VARIANT` or as `SESSION VARIANT`.

use serde_json::{Value, json};

use crate::cli::api::{bindings, params, status};
use crate::cli::output::params_json;
use crate::cli::{Api, Failure, Reply};
use crate::diag::Diagnostic;
use crate::server::pb;

/// One variant: `SESSION/VARIANT`, or `SESSION VARIANT`.
#[derive(clap::Args, Debug)]
pub struct VariantRef {
    /// `SESSION/VARIANT`, or the session when the variant follows.
    pub target: String,
    /// The variant, when the first argument is only the session.
    pub name: Option<String>,
}

impl VariantRef {
    /// (session, variant).
    fn split(&self) -> Result<(String, String), Failure> {
        let bad = |m: String| {
            Failure::from(
                Diagnostic::error("bad_argument", m)
                    .with_help("name a variant as `SESSION/VARIANT` or `SESSION VARIANT`"),
            )
        };
        match (self.target.split_once('/'), &self.name) {
            (Some((s, v)), None) if !s.is_empty() && !v.is_empty() => Ok((s.to_string(), v.to_string())),
            (None, Some(v)) if !self.target.is_empty() => Ok((self.target.clone(), v.clone())),
            (Some(_), Some(v)) => Err(bad(format!("`{} {v}` names the variant twice", self.target))),
            _ => Err(bad(format!("`{}` does not name a variant", self.target))),
        }
    }
}

#[derive(clap::Subcommand, Debug)]
pub enum VariantCmd {
    /// Create a named variant of a session with parameter and series overrides.
    Create {
        #[command(flatten)]
        variant: VariantRef,
        #[arg(short = 'p', long = "param", value_name = "NAME=VALUE")]
        params: Vec<String>,
        /// Bind a const node (or a `series` parameter) to a CSV series: `node=file.csv`.
        #[arg(long = "series", value_name = "NODE=FILE")]
        series: Vec<String>,
    },
    /// Add or change overrides of a variant.
    Set {
        #[command(flatten)]
        variant: VariantRef,
        #[arg(short = 'p', long = "param", value_name = "NAME=VALUE")]
        params: Vec<String>,
        #[arg(long = "series", value_name = "NODE=FILE")]
        series: Vec<String>,
    },
    /// List a session's variants with their overrides.
    List { session: String },
    /// A variant's overrides.
    Show {
        #[command(flatten)]
        variant: VariantRef,
    },
    /// Delete a variant.
    Delete {
        #[command(flatten)]
        variant: VariantRef,
    },
}

impl VariantCmd {
    pub(crate) fn writes(&self) -> bool {
        !matches!(self, VariantCmd::List { .. } | VariantCmd::Show { .. })
    }
}

pub(crate) async fn exec(api: &Api, cmd: VariantCmd) -> Result<Reply, Failure> {
    let mut c = api.client().sessions();
    match cmd {
        VariantCmd::Create { variant, params: raw, series } => {
            let (session_id, name) = variant.split()?;
            let v = c
                .create_variant(pb::CreateVariantRequest {
                    session_id,
                    name,
                    parameters: params(&raw)?,
                    series: bindings(&series)?,
                })
                .await
                .map_err(status)?
                .into_inner();
            let mut r = variant_reply(&v);
            r.text = format!("created {}", r.text);
            Ok(r)
        }
        VariantCmd::Set { variant, params: raw, series } => {
            let (session_id, name) = variant.split()?;
            let v = c
                .update_variant(pb::UpdateVariantRequest {
                    session_id,
                    name,
                    parameters: params(&raw)?,
                    series: bindings(&series)?,
                })
                .await
                .map_err(status)?
                .into_inner();
            Ok(variant_reply(&v))
        }
        VariantCmd::List { session } => {
            let vs = c
                .list_variants(pb::ListVariantsRequest { session_id: session.clone() })
                .await
                .map_err(status)?
                .into_inner()
                .variants;
            let mut text = String::new();
            for v in &vs {
                let overrides: Vec<String> = crate::cli::output::params(&v.parameters)
                    .iter()
                    .map(|(k, x)| format!("{k}={x}"))
                    .chain(v.series_bindings.iter().map(|s| format!("series:{s}")))
                    .collect();
                text.push_str(&format!("{session}/{}  {}\n", v.name, overrides.join(" ")));
            }
            if vs.is_empty() {
                text = format!("session {session} has no variants\n");
            }
            Ok(Reply { json: Value::Array(vs.iter().map(|v| variant_reply(v).json).collect()), text })
        }
        VariantCmd::Show { variant } => {
            let (session_id, name) = variant.split()?;
            let v = c.get_variant(pb::GetVariantRequest { session_id, name }).await.map_err(status)?.into_inner();
            Ok(variant_reply(&v))
        }
        VariantCmd::Delete { variant } => {
            let (session_id, name) = variant.split()?;
            let t = format!("{session_id}/{name}");
            c.delete_variant(pb::DeleteVariantRequest { session_id, name }).await.map_err(status)?;
            Ok(Reply { json: json!({"deleted": t}), text: format!("deleted variant {t}\n") })
        }
    }
}

pub(crate) fn variant_reply(v: &pb::Variant) -> Reply {
    let json = json!({
        "session": v.session_id, "name": v.name, "parameters": params_json(&v.parameters),
        "series": v.series_bindings, "revision": v.revision, "createdUtc": v.created_utc,
    });
    let mut text = format!("variant {}/{}\n", v.session_id, v.name);
    for (k, x) in crate::cli::output::params(&v.parameters) {
        text.push_str(&format!("  {k} = {x}\n"));
    }
    for s in &v.series_bindings {
        text.push_str(&format!("  series {s} overridden\n"));
    }
    Reply { json, text }
}
