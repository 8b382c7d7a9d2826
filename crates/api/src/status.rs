//! The parts of status the custom resources share: the reconcile bookkeeping every kind
//! carries, and one application's state where it is applied.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

/// What every kind's status says about its reconcile: the generation and the reconcile request
/// it answers, its conditions, and the revisions it applied and attempted. Flattened into each
/// status, so these fields sit directly under `status`.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReconcileStatus {
    /// The `metadata.generation` this status describes.
    pub observed_generation: Option<i64>,
    /// Standard conditions: `Ready`, `Reconciling`, `Stalled` (environments also `Drifted`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The last revision fully applied, as `<branch>@sha1:<sha>`.
    pub last_applied_revision: Option<String>,
    /// The last revision an apply was attempted for.
    pub last_attempted_revision: Option<String>,
    /// The value of the `factories.dev/requested-at` annotation (`kubectl factory reconcile`, a
    /// webhook push) the last finished reconcile answered: equal to the annotation once the
    /// request was handled.
    pub last_handled_reconcile_at: Option<String>,
}

/// One application's configuration in one environment.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationStatus {
    /// Application name.
    pub name: String,
    /// The last application revision fully applied here.
    pub last_applied_revision: Option<String>,
    /// The last revision an apply was attempted for.
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
    /// Whether what it applied here is healthy, judged from the objects' live status.
    pub health: Option<ApplicationHealth>,
    /// Applications delivered by releases: the release running here.
    pub release: Option<RunningRelease>,
    /// Applications delivered by releases: what the next release waits for (health upstream,
    /// time, an approval), or why a promotion was refused.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub waiting: String,
}

/// The release an environment runs.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunningRelease {
    /// The Release's name.
    pub name: String,
    /// The revision of the configuration it applied.
    pub revision: String,
    /// The images it runs, as `<name>=<repository>@<digest>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    /// Since when it runs here.
    pub since: Option<Time>,
}

/// Whether an application's objects in one place are healthy, by the usual Kubernetes status
/// rules: Deployments rolled out and available, StatefulSets updated and ready, Jobs complete,
/// custom kinds `Ready`.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationHealth {
    /// `Healthy`, `Progressing` (not yet, within the application's `healthTimeout`) or `Degraded`.
    pub state: HealthState,
    /// What is not healthy, naming each object and what its status says.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// When it entered this state; a `Progressing` application is `Degraded` once it has been
    /// progressing for longer than its `healthTimeout`.
    pub since: Option<Time>,
}

/// The health of an application in one place.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum HealthState {
    /// Everything it applied is current.
    Healthy,
    /// Objects are still rolling out.
    #[default]
    Progressing,
    /// An object failed, or did not become healthy within the timeout.
    Degraded,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_fields_are_neither_written_nor_required() {
        let empty = ReconcileStatus::default();
        assert_eq!(serde_json::to_value(&empty).ok(), Some(serde_json::json!({})));
        let read: ReconcileStatus = serde_json::from_str("{}").expect("an empty status reads");
        assert_eq!(read, empty);
        let app: ApplicationStatus = serde_json::from_str(r#"{"name": "cart"}"#).expect("a bare application reads");
        assert_eq!(serde_json::to_value(&app).ok(), Some(serde_json::json!({"name": "cart"})));
    }
}
