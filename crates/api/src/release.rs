//! `Release` and `Approval`: what a team factory delivers, and the decision to let a release
//! into an environment that asks for one.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

/// One immutable, deployable build of an application: a revision of its configuration and the
/// image digests built for it. Recorded by the operator for every successful build
/// PipelineRun, or by a person or an outside CI (`kubectl factory release create`), in the
/// factory's `<factory>-cicd` namespace.
#[skip_serializing_none]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "factories.dev",
    version = "v1alpha1",
    kind = "Release",
    doc = "One immutable build of a team factory's application: a git revision of its configuration and the image digests built for it, deployed through the factory's environments by their promotion policies.",
    plural = "releases",
    shortname = "frel",
    category = "factory-operator",
    namespaced,
    status = "ReleaseStatus",
    derive = "PartialEq",
    validation = Rule::new("self.spec == oldSelf.spec").message("a release is immutable: record a new one"),
    printcolumn = r#"{"name":"Application","type":"string","jsonPath":".spec.application"}"#,
    printcolumn = r#"{"name":"Revision","type":"string","jsonPath":".spec.revision"}"#,
    printcolumn = r#"{"name":"Valid","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Healthy In","type":"string","jsonPath":".status.healthyIn[*].environment"}"#,
    printcolumn = r#"{"name":"Run","type":"string","priority":1,"jsonPath":".spec.pipelineRun"}"#,
    printcolumn = r#"{"name":"Status","type":"string","priority":1,"jsonPath":".status.conditions[?(@.type==\"Ready\")].message"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseSpec {
    /// The application of the factory this release belongs to.
    #[schemars(length(min = 1, max = 40), regex(pattern = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub application: String,
    /// The commit of the application repository whose configuration is deployed: a full SHA,
    /// or a revision as status writes it (`main@sha1:<sha>`).
    #[schemars(regex(pattern = "^([^@ ]+@)?(sha1:)?[0-9a-f]{40}$"))]
    pub revision: String,
    /// The images built for it; each workload container naming one of them runs its digest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"], "maxItems" = 32))]
    pub images: Vec<ReleaseImage>,
    /// The PipelineRun that built it, when the operator recorded it.
    #[schemars(length(max = 253))]
    pub pipeline_run: Option<String>,
}

/// An image of a release, pinned by digest.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.reference.matches('^[^@ ]+@sha256:[0-9a-f]{64}$')",
     "messageExpression": "'image ' + self.name + ' is not pinned by digest: ' + self.reference + ' (want <repository>@sha256:<64 hex digits>)'"}
]))]
pub struct ReleaseImage {
    /// The name the configuration uses for it: a container whose image is this name, or whose
    /// repository is this name or ends in `/<name>`, runs `reference`.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// The image as `<repository>@sha256:<digest>`.
    #[schemars(length(min = 1, max = 512))]
    pub reference: String,
}

/// Observed state of a Release.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseStatus {
    /// `Ready` is true while the release is deployable (its application exists); false, with
    /// the reason, when it never will be.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
    /// The environments where it has been healthy, and since when: what promotion gates read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["environment"]))]
    pub healthy_in: Vec<HealthyIn>,
}

/// A release was healthy in an environment.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthyIn {
    /// The environment's short name (`test`).
    pub environment: String,
    /// When it became healthy there.
    pub since: Time,
}

/// A person's decision that a release of an application may run in one environment: created
/// in that environment's namespace, so the cluster's RBAC decides who may (the
/// `factory-approver` ClusterRole, granted per environment), and the API server's audit log
/// records who did. Also how a release is promoted by hand or rolled back.
#[skip_serializing_none]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "factories.dev",
    version = "v1alpha1",
    kind = "Approval",
    doc = "A person's decision that a release may run in the environment whose namespace holds this object (approval of a protected environment, a manual promotion or a roll-back). Who may create one is decided by RBAC (ClusterRole factory-approver).",
    plural = "approvals",
    shortname = "fapp",
    category = "factory-operator",
    namespaced,
    derive = "PartialEq",
    validation = Rule::new("self.spec == oldSelf.spec").message("an approval is immutable: create a new one"),
    printcolumn = r#"{"name":"Application","type":"string","jsonPath":".spec.application"}"#,
    printcolumn = r#"{"name":"Release","type":"string","jsonPath":".spec.release"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalSpec {
    /// The application.
    #[schemars(length(min = 1, max = 40), regex(pattern = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub application: String,
    /// The Release (in the factory's cicd namespace) approved for this environment.
    #[schemars(length(min = 1, max = 253))]
    pub release: String,
}
