//! Warnings (§7.1): the value type, ordering and the `bins` cap shared by every producer.

use serde::Serialize;

use crate::diag::Severity;

/// At most this many offending bins are listed per warning.
pub const MAX_WARNING_BINS: usize = 100;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Warning {
    pub code: String,
    pub severity: Severity,
    #[serde(rename = "nodeId")]
    pub node_id: String,
    pub message: String,
    pub bins: Vec<u32>,
    /// The worst offending value, where there is one.
    pub value: Option<f64>,
}

impl Warning {
    pub fn new(code: &str, severity: Severity, node_id: &str, message: impl Into<String>) -> Warning {
        Warning {
            code: code.into(),
            severity,
            node_id: node_id.into(),
            message: message.into(),
            bins: Vec::new(),
            value: None,
        }
    }

    /// Sets the offending bins (capped) and the worst value.
    pub fn with_bins(mut self, bins: &[u32], value: Option<f64>) -> Warning {
        self.bins = bins.iter().take(MAX_WARNING_BINS).copied().collect();
        self.value = value;
        self
    }

    pub fn first_bin(&self) -> Option<u32> {
        self.bins.first().copied()
    }
}

/// Orders warnings by code, then node, then first bin (§7.1).
pub fn sort(ws: &mut [Warning]) {
    ws.sort_by(|a, b| {
        a.code
            .cmp(&b.code)
            .then_with(|| a.node_id.cmp(&b.node_id))
            .then_with(|| a.first_bin().cmp(&b.first_bin()))
            .then_with(|| a.message.cmp(&b.message))
    });
}
