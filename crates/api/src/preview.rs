//! `PreviewEnvironment`: a short-lived environment, created in a factory's cicd namespace.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use crate::common::GitRef;

/// An on-demand environment for a branch (feature work, performance tests), created in the
/// factory's `<factory>-cicd` namespace and removed with its namespace when it expires.
#[skip_serializing_none]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "factories.dev",
    version = "v1alpha1",
    kind = "PreviewEnvironment",
    doc = "An on-demand preview environment of a team factory: a namespace with the preview class baseline and one application at a branch, tag or commit, deleted when it expires.",
    plural = "previewenvironments",
    shortname = "preview",
    shortname = "pe",
    category = "factory-operator",
    namespaced,
    status = "PreviewEnvironmentStatus",
    derive = "PartialEq",
    validation = Rule::new("!has(self.spec.ttl) || !has(self.spec.expiresAt)").message("set ttl or expiresAt, not both"),
    printcolumn = r#"{"name":"Application","type":"string","jsonPath":".spec.application"}"#,
    printcolumn = r#"{"name":"Namespace","type":"string","jsonPath":".status.namespace"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Expires","type":"string","description":"When the preview is removed (UTC), unless kept longer","jsonPath":".status.expiresAt"}"#,
    printcolumn = r#"{"name":"URL","type":"string","priority":1,"jsonPath":".status.url"}"#,
    printcolumn = r#"{"name":"Revision","type":"string","priority":1,"jsonPath":".status.sourceRevision"}"#,
    printcolumn = r#"{"name":"Suspended","type":"boolean","priority":1,"jsonPath":".spec.suspend"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct PreviewEnvironmentSpec {
    /// The application (of the owning factory) this preview deploys. Immutable.
    #[schemars(length(min = 1, max = 40), regex(pattern = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "self == oldSelf", "message": "application is immutable"}]))]
    pub application: String,
    /// The revision of the application repository to deploy, usually a branch.
    #[serde(rename = "ref")]
    pub git_ref: GitRef,
    /// Lifetime from creation, as a Go duration between 10m and 720h. Defaults to the factory's
    /// `previews.ttl`. The annotation `factories.dev/keep` extends it.
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(s|m|h))+$"))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "duration(self) >= duration('10m') && duration(self) <= duration('720h')",
         "message": "ttl must be between 10m and 720h"}
    ]))]
    pub ttl: Option<String>,
    /// A fixed expiry instead of `ttl`. The annotation `factories.dev/keep` extends it too.
    pub expires_at: Option<Time>,
    /// Stops reconciling this preview while true: nothing is applied or pruned. It still
    /// expires on time (suspending cannot outlive `previews.maxTTL`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,
    /// Environment class; defaults to the factory's `previews.class`, and must be one of the
    /// factory's `previews.classes`.
    #[schemars(length(min = 1, max = 63))]
    pub class: Option<String>,
}

/// The lifecycle phase of a preview.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum PreviewPhase {
    /// Accepted, namespace not yet ready.
    #[default]
    Pending,
    /// Namespace and configuration are in place.
    Ready,
    /// Past its expiry or deleted; waiting for the namespace to be gone.
    Terminating,
    /// Could not be built; see the conditions.
    Failed,
}

/// Observed state of a PreviewEnvironment.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PreviewEnvironmentStatus {
    /// Generation, conditions, revisions and the last reconcile request handled.
    #[serde(flatten)]
    pub reconcile: crate::status::ReconcileStatus,
    /// The namespace created for this preview.
    pub namespace: Option<String>,
    /// Lifecycle phase.
    pub phase: Option<PreviewPhase>,
    /// When the preview is removed, unless kept longer.
    pub expires_at: Option<Time>,
    /// The application revision deployed, as `<branch>@sha1:<sha>`: the same as
    /// `lastAppliedRevision`, kept for clients written before that field.
    pub source_revision: Option<String>,
    /// Every object applied for the preview's baseline.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inventory: Vec<crate::common::InventoryEntry>,
    /// The application as applied into the preview.
    pub application: Option<crate::status::ApplicationStatus>,
    /// Where the preview answers (its Ingress), when the factory sets `previews.ingress`
    /// and the application `expose`.
    pub url: Option<String>,
}
