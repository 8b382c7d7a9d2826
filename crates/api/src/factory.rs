//! `Factory`: a platform factory (FBE, `type: Environments`) or a team factory
//! (FBA, `type: Applications`).

use serde_with::skip_serializing_none;
use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use crate::common::AccessGrant;
use crate::common::{GitSource, PathSpec, SecretReference};
use crate::environment::DriftPolicy;

/// A factory: a platform factory (`Environments`) that applies cluster-wide configuration and
/// builds team factories, or a team factory (`Applications`) that owns a group of namespaces.
#[skip_serializing_none]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "factories.dev",
    version = "v1alpha1",
    kind = "Factory",
    doc = "A factory: the platform team's (type Environments) applies cluster-wide configuration and builds team factories; a team's (type Applications) owns a cicd namespace, permanent environments and previews.",
    plural = "factories",
    shortname = "fac",
    category = "factory-operator",
    status = "FactoryStatus",
    derive = "PartialEq",
    validation = Rule::new("self.metadata.name.size() <= 30 && self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')").message("factory name must be a DNS-1123 label of at most 30 characters, so that its namespaces fit in 63"),
    printcolumn = r#"{"name":"Type","type":"string","jsonPath":".spec.type"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Revision","type":"string","jsonPath":".status.lastAppliedRevision"}"#,
    printcolumn = r#"{"name":"Environments","type":"integer","jsonPath":".status.environments.total"}"#,
    printcolumn = r#"{"name":"Previews","type":"integer","jsonPath":".status.previews.total"}"#,
    printcolumn = r#"{"name":"Runs","type":"string","jsonPath":".status.runs.overview"}"#,
    printcolumn = r#"{"name":"Suspended","type":"boolean","priority":1,"jsonPath":".spec.suspend"}"#,
    printcolumn = r#"{"name":"Status","type":"string","priority":1,"jsonPath":".status.conditions[?(@.type==\"Ready\")].message"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.type == 'Environments' || (!has(self.cluster) && !has(self.environmentClasses) && !has(self.factories) && !has(self.credentials) && !has(self.images) && !has(self.pipelineTemplates) && !has(self.serviceAccount))",
        "message": "cluster, environmentClasses, factories, credentials, images, pipelineTemplates and serviceAccount are only allowed when type is Environments"
    },
    {
        "rule": "self.type == 'Applications' || (!has(self.owners) && !has(self.environments) && !has(self.previews) && !has(self.applications) && !has(self.shared) && !has(self.applicationRemoval) && !has(self.notifications))",
        "message": "owners, environments, previews, applications, applicationRemoval, shared and notifications are only allowed when type is Applications"
    },
    {
        "rule": "self.type != 'Environments' || (has(self.source) && has(self.serviceAccount))",
        "message": "a factory of type Environments needs source and serviceAccount"
    },
    {
        "rule": "!has(oldSelf.environments) || oldSelf.environments.all(o, !has(o.protected) || !o.protected || (has(self.environments) && self.environments.exists(n, n.name == o.name)))",
        "message": "a protected environment cannot be removed; set protected: false in a separate change first"
    },
    {
        "rule": "self.type == oldSelf.type",
        "message": "type is immutable"
    }
]))]
pub struct FactorySpec {
    /// `Environments` for the platform team's factory (FBE), `Applications` for a team's factory (FBA).
    #[serde(rename = "type")]
    pub factory_type: FactoryType,

    /// Stops reconciliation while true: nothing is applied, pruned or started. A team
    /// factory's suspension also stops its environments and previews (previews still expire).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,

    /// A Secret whose key `token` verifies pushes sent to `POST /hooks/git/<factory>` (the HMAC
    /// key for GitHub and Gitea, the token for GitLab): such a push reconciles this factory
    /// only. Read with the factory's own rights; the namespace defaults to a team factory's
    /// cicd namespace or a platform factory's service account namespace.
    pub webhook_secret_ref: Option<SecretReference>,

    /// Values substituted as `${name}` in manifests of this factory (letters, digits and `_`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.all(k, k.matches('^[A-Za-z_][A-Za-z0-9_]*$'))",
         "message": "variable names must match ^[A-Za-z_][A-Za-z0-9_]*$"}
    ]))]
    #[schemars(extend("maxProperties" = 64))]
    pub variables: BTreeMap<String, String>,

    // --- type: Environments -------------------------------------------------------------
    /// Environments only: the platform repository.
    pub source: Option<GitSource>,

    /// Environments only: the service account the platform repository's content is applied as
    /// (impersonated), so RBAC decides how far this factory reaches.
    pub service_account: Option<ServiceAccountReference>,

    /// Environments only: cluster-scoped objects (ClusterRoles, PersistentVolumes, PriorityClasses, ...).
    pub cluster: Option<PathSpec>,

    /// Environments only: baselines applied into every environment namespace of a class.
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"], "maxItems" = 32))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.all(c, !has(c.extends) || c.extends.all(e, self.exists(o, o.name == e)))",
         "message": "every class named in extends must be defined in environmentClasses"}
    ]))]
    pub environment_classes: Option<Vec<EnvironmentClass>>,

    /// Environments only: directory holding the team Factory definitions this factory builds.
    pub factories: Option<PathSpec>,

    /// Environments only: Secrets copied into team environments from a namespace tenants cannot read.
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"], "maxItems" = 256))]
    pub credentials: Option<Vec<Credential>>,

    /// Environments only: shared images (base image with the organisation's CA bundle, builder
    /// and tool images) built by pipelines in this factory's own cicd namespace.
    pub images: Option<SharedImages>,

    /// Environments only: directory of default Tekton Tasks and Pipelines (build, scan, deploy)
    /// applied into every team factory's cicd namespace. `${factory}` and `${namespace}` name the team.
    pub pipeline_templates: Option<PathSpec>,

    // --- type: Applications -------------------------------------------------------------
    /// Applications only: who owns this factory.
    pub owners: Option<Owners>,

    /// Applications only: the permanent environments; each becomes a namespace `<factory>-<name>`.
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"], "maxItems" = 32))]
    pub environments: Option<Vec<EnvironmentTemplate>>,

    /// Applications only: on-demand preview environments.
    pub previews: Option<PreviewPolicy>,

    /// Applications only: defaults shared by all the factory's environments and previews.
    pub shared: Option<SharedDefaults>,

    /// Applications only: the team's applications and their repositories.
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"], "maxItems" = 64))]
    pub applications: Option<Vec<Application>>,

    /// Applications only: what happens to the objects of an application removed from
    /// `applications` (or whose `config` is removed). `Prune` (default) deletes them from every
    /// environment, after a dry-run, except those annotated `factories.dev/prune: disabled`;
    /// `Orphan` leaves them in place and lists the application as orphaned on each
    /// Environment's status.
    pub application_removal: Option<ApplicationRemoval>,

    /// Applications only: webhooks told about failures, releases waiting for approval and
    /// previews about to expire.
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"], "maxItems" = 8))]
    pub notifications: Option<Vec<crate::notifications::NotificationTarget>>,
}

/// What happens to what a removed application applied.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ApplicationRemoval {
    /// Delete its objects from every environment (after a dry-run).
    #[default]
    Prune,
    /// Leave its objects in place and say so on status.
    Orphan,
}

/// The kind of factory.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum FactoryType {
    /// The platform team's factory (FBE).
    Environments,
    /// A team's factory (FBA).
    Applications,
}

/// A service account in a namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccountReference {
    /// Namespace of the service account.
    #[schemars(length(min = 1, max = 63))]
    pub namespace: String,
    /// Name of the service account.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// A named set of baseline manifests applied into every environment of that class.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!has(self.extends) || !(self.name in self.extends)", "message": "a class cannot extend itself"}
]))]
pub struct EnvironmentClass {
    /// Class name, a DNS-1123 label such as `base`, `prod` or `preview`.
    #[schemars(length(min = 1, max = 63), regex(pattern = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub name: String,
    /// Directory of the class's manifests in the platform repository.
    #[schemars(length(min = 1, max = 1024))]
    pub path: String,
    /// Classes whose manifests are applied first; this class's own manifests win on conflict.
    #[schemars(extend("maxItems" = 8))]
    pub extends: Option<Vec<String>>,
}

/// A Secret delivered by the platform factory into team environments.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Credential {
    /// Name of the delivered Secret in each target namespace.
    #[schemars(length(min = 1, max = 253), regex(pattern = "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"))]
    pub name: String,
    /// The source Secret; its namespace is required.
    pub from: SecretReference,
    /// Where the Secret is delivered.
    pub to: CredentialTarget,
}

/// The environments of one team factory that receive a credential.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialTarget {
    /// Name of the team factory.
    #[schemars(length(min = 1, max = 30))]
    pub factory: String,
    /// Short names of its environments (for example `stage`, `prod`).
    #[schemars(extend("minItems" = 1, "maxItems" = 32))]
    pub environments: Vec<String>,
}

/// Shared images of a platform factory and how often they are rebuilt.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!self.path.startsWith('/') && !self.path.split('/').exists(s, s == '..')",
     "message": "path must be relative to the repository root and must not contain '..'"}
]))]
pub struct SharedImages {
    /// Directory of the Tekton Pipelines and Tasks that build the images, applied into `<factory>-cicd`.
    #[schemars(length(min = 1, max = 1024))]
    pub path: String,
    /// File or directory of the organisation's CA bundle in the repository; every image is built
    /// again when it changes.
    #[schemars(length(min = 1, max = 1024))]
    pub ca_path: Option<String>,
    /// Build every image again at least this often, as a Go duration between 1h and 2160h. Defaults to `168h`.
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(s|m|h))+$"))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "duration(self) >= duration('1h') && duration(self) <= duration('2160h')",
         "message": "schedule must be between 1h and 2160h"}
    ]))]
    pub schedule: Option<String>,
    /// The images.
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"], "maxItems" = 64))]
    pub images: Vec<SharedImage>,
}

/// One shared image and the pipeline that builds it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SharedImage {
    /// Image name, a DNS-1123 label such as `base` or `builder`.
    #[schemars(length(min = 1, max = 40), regex(pattern = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub name: String,
    /// The Pipeline that builds it; it gets params `image`, `context`, `ca-path`, `url` and `revision`.
    #[schemars(length(min = 1, max = 253))]
    pub pipeline: String,
    /// Directory of the image definition (Dockerfile and files) in the repository; the image is
    /// built again when anything in it changes.
    #[schemars(length(min = 1, max = 1024))]
    pub context: String,
    /// More params for the pipeline.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
}

/// Who owns a team factory.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Owners {
    /// Groups (as the API server authenticates them) whose members own the factory.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("maxItems" = 32))]
    pub groups: Vec<String>,
    /// Individual users who own the factory.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("maxItems" = 32))]
    pub users: Vec<String>,
}

/// A permanent environment of a team factory.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentTemplate {
    /// Short name, a DNS-1123 label of at most 20 characters (`test`, `stage`, `prod`).
    #[schemars(length(min = 1, max = 20), regex(pattern = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub name: String,
    /// Environment class (defined by the platform factory) whose baseline is applied. Defaults to `base`.
    #[schemars(length(min = 1, max = 63))]
    pub class: Option<String>,
    /// A protected environment's namespace is guarded against deletion at admission.
    pub protected: Option<bool>,
    /// Namespace name; defaults to `<factory>-<name>`.
    #[schemars(length(min = 1, max = 63), regex(pattern = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub namespace: Option<String>,
    /// `Correct` (default) reverts hand-made changes; `Report` only reports them.
    pub drift_policy: Option<DriftPolicy>,
    /// ClusterRoles granted to the owners in this environment, such as `edit` in test and `view` in prod.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("maxItems" = 16))]
    pub access: Vec<AccessGrant>,
    /// ResourceQuota `hard` limits that override the class baseline (for example `requests.cpu: "8"`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub quota: BTreeMap<String, Quantity>,
    /// Which release of each application with `delivery: Releases` runs here. Unset: the
    /// newest valid release, as soon as it is recorded.
    pub promotion: Option<crate::environment::Promotion>,
}

/// What every environment and preview of a team factory shares.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SharedDefaults {
    /// Labels added to every namespace of the factory (the operator's own labels win).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Entries of the ConfigMap `factory-defaults` created in every environment and preview.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
}

/// Limits for the preview environments of a team factory.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PreviewPolicy {
    /// Environment class of previews. Defaults to `preview`.
    #[schemars(length(min = 1, max = 63))]
    pub class: Option<String>,
    /// Default lifetime of a preview, as a Go duration between 10m and 720h. Defaults to `72h`.
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(s|m|h))+$"))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "duration(self) >= duration('10m') && duration(self) <= duration('720h')",
         "message": "ttl must be between 10m and 720h"}
    ]))]
    pub ttl: Option<String>,
    /// Most previews that may exist at once, enforced at admission. Defaults to 10.
    #[schemars(range(min = 0, max = 100))]
    pub max: Option<i32>,
    /// Glob of branches that get a preview automatically, such as `feature/*`. Unset: none.
    #[schemars(length(min = 1, max = 255))]
    pub branches: Option<String>,
    /// Environment classes a preview may ask for in `spec.class`; any other is refused, naming
    /// these. Defaults to the preview class alone. (The platform writes team factories, so the
    /// team cannot widen this.)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("maxItems" = 16))]
    pub classes: Vec<String>,
    /// Longest life of a preview from its creation, whatever its `ttl`, `expiresAt` or
    /// `factories.dev/keep` annotation say, as a Go duration between 10m and 8760h. Defaults to `720h`.
    #[serde(rename = "maxTTL")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(s|m|h))+$"))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "duration(self) >= duration('10m') && duration(self) <= duration('8760h')",
         "message": "maxTTL must be between 10m and 8760h"}
    ]))]
    pub max_ttl: Option<String>,
    /// Whether `factories.dev/keep: forever` keeps a preview past `maxTTL`. Defaults to false:
    /// such a preview expires at `maxTTL`, and its status says so.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_forever: bool,
    /// ClusterRoles granted inside every preview namespace, to the owners unless a grant names
    /// its groups. Defaults to `edit` for the owners, so the people a preview is for can see its
    /// pods, logs and events and change it.
    #[schemars(extend("maxItems" = 16))]
    pub access: Option<Vec<AccessGrant>>,
    /// An Ingress per preview of every application with `expose`, whose URL is posted on
    /// pull requests and shown on the preview's status.
    pub ingress: Option<crate::pull_requests::PreviewIngress>,
}

/// An application of a team factory.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!has(self.pullRequests) || has(self.host)", "message": "pullRequests needs host: where to list them and report back"}
]))]
pub struct Application {
    /// Application name, a DNS-1123 label.
    #[schemars(length(min = 1, max = 40), regex(pattern = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub name: String,
    /// The application repository.
    pub source: GitSource,
    /// Environment configuration in the repository, applied into the factory's environments.
    /// A layer (`base`, `classes/<class>`, `environments/<env>`) holding a `kustomization.yaml`
    /// is rendered by `kustomize build`.
    pub config: Option<PathSpec>,
    /// A Helm chart in the repository rendered into every environment (below the `config`
    /// layers); with `config`, each layer's `values.yaml` is a values file for it.
    pub helm: Option<HelmSpec>,
    /// Tekton pipelines in the repository, applied into the cicd namespace.
    pub pipelines: Option<PipelinesSpec>,
    /// `Branch` (default): every environment applies the head of the source's branch.
    /// `Releases`: each environment runs one recorded Release (a revision and image digests),
    /// chosen by its `promotion` policy; nothing runs before the first release.
    pub delivery: Option<Delivery>,
    /// How long the application's objects may take to become healthy after a change before it
    /// is `Degraded` in that environment, as a Go duration between 10s and 24h. Defaults to `5m`.
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(s|m|h))+$"))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "duration(self) >= duration('10s') && duration(self) <= duration('24h')",
         "message": "healthTimeout must be between 10s and 24h"}
    ]))]
    pub health_timeout: Option<String>,
    /// The git host of the source repository: commit statuses for releases and previews are
    /// posted there, and pull requests listed.
    pub host: Option<crate::pull_requests::GitHostAccess>,
    /// A preview for each open pull request of the source repository, reported back on it
    /// (needs `host`).
    pub pull_requests: Option<crate::pull_requests::PullRequestPreviews>,
    /// The Service that previews' Ingresses route to (with `previews.ingress`).
    pub expose: Option<crate::pull_requests::Expose>,
}

/// A chart vendored in the application's repository, rendered by `helm template` with the
/// application's name as the release and the environment's namespace; dependencies must be in
/// the chart's `charts/` or a `file://` path inside the repository. Hooks are rendered as plain
/// objects, test hooks and the chart's `crds/` are left out.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!self.chart.startsWith('/') && !self.chart.split('/').exists(s, s == '..')",
     "message": "chart must be relative to the repository root and must not contain '..'"}
]))]
pub struct HelmSpec {
    /// The chart's directory, relative to the repository root, such as `chart/`.
    #[schemars(length(min = 1, max = 1024))]
    pub chart: String,
    /// Values over the chart's own and the layers' `values.yaml` files, for every environment.
    #[serde(default)]
    #[schemars(schema_with = "crate::common::free_form")]
    pub values: Option<serde_json::Value>,
}

impl Application {
    /// Whether it deploys anything into environments: a config path or a chart.
    pub fn deploys(&self) -> bool {
        self.config.is_some() || self.helm.is_some()
    }
}

/// How an application reaches its environments.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum Delivery {
    /// Every environment applies the head of the branch.
    #[default]
    Branch,
    /// Every environment runs one Release, by its promotion policy.
    Releases,
}

/// Where an application's Tekton objects are, and whether the operator starts a run itself.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!self.path.startsWith('/') && !self.path.split('/').exists(s, s == '..')",
     "message": "path must be relative to the repository root and must not contain '..'"}
]))]
pub struct PipelinesSpec {
    /// Directory of Tekton objects (Pipelines, Tasks, Triggers) in the repository, such as `.tekton/`.
    #[schemars(length(min = 1, max = 1024))]
    pub path: String,
    /// Opt-in: on every new revision of the application, start this pipeline.
    pub run_on_change: Option<RunOnChange>,
    /// Opt-in: where the cluster serves Tekton Triggers, an EventListener, TriggerBinding and
    /// TriggerTemplate named after the application start this pipeline on a git push.
    pub on_push: Option<OnPush>,
}

/// A pipeline started by Tekton Triggers on a push to the application's repository.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OnPush {
    /// The Pipeline to run (in the cicd namespace).
    #[schemars(length(min = 1, max = 253))]
    pub pipeline: String,
    /// The environment the run deploys to (its short name), passed as a param.
    #[schemars(length(min = 1, max = 20))]
    pub environment: String,
    /// Secret in the cicd namespace whose key `secret` signs the git host's push events
    /// (GitHub-style HMAC). Defaults to `<application>-webhook`; unsigned events are refused.
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: Option<String>,
}

/// A PipelineRun the operator starts on each new application revision, with params
/// `application`, `revision` and `environment` and the matching labels.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunOnChange {
    /// The Pipeline to run (in the cicd namespace).
    #[schemars(length(min = 1, max = 253))]
    pub pipeline: String,
    /// The environment the run deploys to (its short name), passed as a param.
    #[schemars(length(min = 1, max = 20))]
    pub environment: String,
    /// The pipeline task that deploys: it runs as `deploy-<environment>`, the service account
    /// whose rights are limited to that environment. Unset: every task runs as the default account.
    #[schemars(length(min = 1, max = 63))]
    pub deploy_task: Option<String>,
}

/// Observed state of a Factory.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FactoryStatus {
    /// Generation, conditions, revisions and the last reconcile request handled.
    #[serde(flatten)]
    pub reconcile: crate::status::ReconcileStatus,
    /// How many objects this factory's inventory holds.
    pub objects: Option<i32>,
    /// Summary of the permanent environments.
    pub environments: Option<EnvironmentCounts>,
    /// Summary of the preview environments.
    pub previews: Option<PreviewCounts>,
    /// Team factories: each application's pipelines as applied into the cicd namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub pipelines: Vec<crate::status::ApplicationStatus>,
    /// Team factories: one view of the pipeline runs of all applications.
    pub runs: Option<RunsSummary>,
    /// Team factories: for each application delivered by releases, the release each
    /// environment runs and what it waits for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["application"]))]
    pub releases: Vec<DeliveryStatus>,
    /// Platform factories: each shared image, its last run and the last image built.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub images: Vec<ImageStatus>,
    /// Every object this resource applied, for pruning and drift detection.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inventory: Vec<crate::common::InventoryEntry>,
}

/// Where an application's releases run.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryStatus {
    /// The application.
    pub application: String,
    /// Its environments, in the factory's order.
    pub environments: Vec<DeliveryStage>,
}

/// One environment of an application delivered by releases.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryStage {
    /// The environment's short name.
    pub environment: String,
    /// The release it runs.
    pub release: Option<String>,
    /// Whether it is healthy there.
    pub health: Option<crate::status::HealthState>,
    /// What the next release waits for there.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub waiting: String,
    /// The last failure there (an apply error or why it is Degraded).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_failure: String,
}

/// A shared image as last built.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageStatus {
    /// Image name.
    pub name: String,
    /// Digest of the image's definition (its context, the CA bundle and its spec); a new one starts a build.
    pub definition: String,
    /// The latest PipelineRun building it.
    pub last_run: Option<String>,
    /// That run's result: `Succeeded`, `Failed`, `Running` or `Pending`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_result: String,
    /// The last image built successfully, as `<repository>@<digest>` (the run's `IMAGE_URL` and `IMAGE_DIGEST` results).
    pub reference: Option<String>,
    /// When that image was built.
    pub built_at: Option<String>,
}

/// The pipeline runs of a team factory, across its applications.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunsSummary {
    /// Runs that succeeded.
    pub succeeded: i32,
    /// Runs that failed.
    pub failed: i32,
    /// Runs still running or pending.
    pub running: i32,
    /// The latest run of each application and pipeline.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub latest: Vec<RunSummary>,
    /// Why the most recent failed run failed.
    pub last_failure: Option<String>,
    /// Set when pipeline runs cannot be read, such as when Tekton is not installed.
    pub unavailable: Option<String>,
    /// The counts in a few words, for `kubectl get factories`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub overview: String,
}

/// One pipeline run.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    /// Application (label `factories.dev/application`).
    pub application: String,
    /// Pipeline (label `tekton.dev/pipeline`).
    pub pipeline: String,
    /// The PipelineRun's name.
    pub name: String,
    /// `Succeeded`, `Failed`, `Running` or `Pending`.
    pub result: String,
    /// The revision built (label `factories.dev/revision`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub revision: String,
    /// The environment deployed to (label `factories.dev/environment`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub environment: String,
    /// When it started.
    pub start_time: Option<String>,
    /// How long it ran, in seconds (so far, while running).
    pub duration_seconds: Option<i64>,
    /// The Succeeded condition's reason.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// The Release this run produced (a successful build with `IMAGE_URL` and `IMAGE_DIGEST` results).
    pub release: Option<String>,
}

/// Counts of a factory's permanent environments.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentCounts {
    /// Environments in the spec.
    pub total: i32,
    /// Environments that are Ready.
    pub ready: i32,
    /// Environments removed from the spec whose namespaces were left in place.
    #[serde(default)]
    pub orphaned: i32,
}

/// Counts of a factory's preview environments.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PreviewCounts {
    /// Previews that exist.
    pub total: i32,
    /// Previews that are Ready.
    pub ready: i32,
    /// Previews expiring within the next hour.
    #[serde(default)]
    pub expiring: i32,
}
