//! `Environment`: one permanent environment (a namespace) of a team factory.

use serde_with::skip_serializing_none;
use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{AccessGrant, SecretReference};
pub use crate::status::ApplicationStatus;

/// A permanent environment: one namespace, always configured, never deleted by the operator.
/// Usually materialised from its factory's `spec.environments`.
#[skip_serializing_none]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "factories.dev",
    version = "v1alpha1",
    kind = "Environment",
    doc = "A permanent environment of a team factory: one namespace with its class baseline, access, quota and the team's applications. Made by the operator from the team factory's spec.",
    plural = "environments",
    shortname = "fenv",
    category = "factory-operator",
    status = "EnvironmentStatus",
    derive = "PartialEq",
    printcolumn = r#"{"name":"Factory","type":"string","jsonPath":".spec.factory"}"#,
    printcolumn = r#"{"name":"Namespace","type":"string","jsonPath":".spec.namespace"}"#,
    printcolumn = r#"{"name":"Class","type":"string","jsonPath":".spec.class"}"#,
    printcolumn = r#"{"name":"Protected","type":"boolean","jsonPath":".spec.protected"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Revision","type":"string","jsonPath":".status.lastAppliedRevision"}"#,
    printcolumn = r#"{"name":"Suspended","type":"boolean","priority":1,"jsonPath":".spec.suspend"}"#,
    printcolumn = r#"{"name":"Status","type":"string","priority":1,"jsonPath":".status.conditions[?(@.type==\"Ready\")].message"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentSpec {
    /// Name of the team factory this environment belongs to. Immutable.
    #[schemars(length(min = 1, max = 30), regex(pattern = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "self == oldSelf", "message": "factory is immutable"}]))]
    pub factory: String,
    /// The namespace this environment is. Immutable.
    #[schemars(length(min = 1, max = 63), regex(pattern = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "self == oldSelf", "message": "namespace is immutable"}]))]
    pub namespace: String,
    /// Environment class whose baseline is applied into the namespace.
    #[schemars(length(min = 1, max = 63))]
    pub class: String,
    /// Stops reconciling this environment while true: nothing is applied or pruned (its
    /// factory's `suspend` stops it too).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,
    /// A protected environment's namespace is guarded against deletion at admission.
    #[serde(default)]
    pub protected: bool,
    /// `Correct` (default) reverts hand-made changes; `Report` only reports them.
    pub drift_policy: Option<DriftPolicy>,
    /// ClusterRoles granted in this namespace, bound with RoleBindings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("maxItems" = 16))]
    pub access: Vec<AccessGrant>,
    /// ResourceQuota `hard` limits overriding the class baseline.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub quota: BTreeMap<String, Quantity>,
    /// Which release of each application delivered by releases runs here.
    pub promotion: Option<Promotion>,
    /// Another cluster this environment lives in, reached with the kubeconfig in this Secret
    /// (key `value`). Unset: the operator's own cluster.
    pub kubeconfig_secret_ref: Option<SecretReference>,
}

/// How releases enter an environment.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Promotion {
    /// The environment (short name) a release must have been healthy in first, such as
    /// `test` for stage. Unset: any valid release may enter.
    #[schemars(length(min = 1, max = 20))]
    pub from: Option<String>,
    /// How long a release must have been healthy in `from`, as a Go duration (`10m`).
    /// Defaults to 0s.
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(s|m|h))+$"))]
    pub healthy_for: Option<String>,
    /// A release enters only when approved: an Approval naming it in this environment's
    /// namespace, which only those granted `factory-approver` here may create.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub approval: bool,
}

/// What to do when live objects differ from the desired state.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DriftPolicy {
    /// Revert hand-made changes on the next reconcile.
    #[default]
    Correct,
    /// Leave hand-made changes in place and report them (condition, Event, metric).
    Report,
}

/// Observed state of an Environment.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentStatus {
    /// Generation, conditions, revisions and the last reconcile request handled.
    #[serde(flatten)]
    pub reconcile: crate::status::ReconcileStatus,
    /// How many objects this environment's inventory holds.
    pub objects: Option<i32>,
    /// True when the environment was removed from its factory's spec and left in place.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub orphaned: bool,
    /// Every object this resource applied, for pruning and drift detection.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inventory: Vec<crate::common::InventoryEntry>,
    /// The factory's applications as applied into this environment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub applications: Vec<ApplicationStatus>,
}
