//! The parts of status the custom resources share: the reconcile bookkeeping every kind
//! carries, and one application's state where it is applied.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What every kind's status says about its reconcile: the generation and the reconcile request
/// it answers, its conditions, and the revisions it applied and attempted. Flattened into each
/// status, so these fields sit directly under `status`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReconcileStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Standard conditions: `Ready`, `Reconciling`, `Stalled` (environments also `Drifted`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The last revision fully applied, as `<branch>@sha1:<sha>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_revision: Option<String>,
    /// The last revision an apply was attempted for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempted_revision: Option<String>,
    /// The value of the `factories.dev/requested-at` annotation (`kubectl factory reconcile`, a
    /// webhook push) the last finished reconcile answered: equal to the annotation once the
    /// request was handled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
}

/// One application's configuration in one environment.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationStatus {
    /// Application name.
    pub name: String,
    /// The last application revision fully applied here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_revision: Option<String>,
    /// The last revision an apply was attempted for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempted_revision: Option<String>,
    /// Empty when the last attempt succeeded; otherwise what failed, naming file and object.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
    /// What this application applied here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inventory: Vec<crate::common::InventoryEntry>,
    /// The application was removed from its factory (or lost its config) with
    /// `applicationRemoval: Orphan`: the objects in `inventory` were left in place, unmanaged.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub orphaned: bool,
}
