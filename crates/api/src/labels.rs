//! Label and annotation keys the operator writes and reads.

/// Label naming the factory an object belongs to.
pub const FACTORY: &str = "factories.dev/factory";
/// Label naming the environment (short name, such as `prod`) a namespace serves.
pub const ENVIRONMENT: &str = "factories.dev/environment";
/// Label naming the environment class a namespace was built from.
pub const CLASS: &str = "factories.dev/class";
/// Label naming the kind of namespace: `cicd`, `permanent` or `preview`.
pub const NAMESPACE_KIND: &str = "factories.dev/namespace-kind";
/// Label set to `true` on namespaces that must never be deleted.
pub const PROTECTED: &str = "factories.dev/protected";
/// Annotation that, set to `disabled`, stops the operator from ever pruning the object.
pub const PRUNE: &str = "factories.dev/prune";
/// Annotation value of [`PRUNE`] that disables pruning.
pub const PRUNE_DISABLED: &str = "disabled";
/// Annotation on a PreviewEnvironment that extends its expiry (a Go duration or `forever`).
pub const KEEP: &str = "factories.dev/keep";
/// Standard label: the tool managing the object.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY`] on everything the operator writes.
pub const MANAGED_BY_VALUE: &str = "factory-operator";
/// Standard label: the higher-level application an object is part of.
pub const PART_OF: &str = "app.kubernetes.io/part-of";
/// Label naming the platform factory that built a team factory (and its cicd namespace).
pub const PLATFORM: &str = "factories.dev/platform";
/// Label naming what applied an object, such as `factory.platform` or `environment.shop-prod`.
pub const APPLIED_BY: &str = "factories.dev/applied-by";
/// Label (and annotation, holding the branch) on previews made automatically for a branch.
pub const BRANCH_PREVIEW: &str = "factories.dev/branch";
/// Label naming the shared image a PipelineRun builds.
pub const IMAGE: &str = "factories.dev/image";
/// Label holding the digest of the image definition a PipelineRun builds.
pub const DEFINITION: &str = "factories.dev/definition";
/// Annotation whose change asks for an immediate reconcile (`kubectl factory reconcile`).
pub const REQUESTED_AT: &str = "factories.dev/requested-at";
/// Label naming the application of a Release or Approval (and of a team's PipelineRuns).
pub const APPLICATION: &str = "factories.dev/application";
/// Label of a preview made for a pull request: its number.
pub const PULL_REQUEST: &str = "factories.dev/pull-request";
/// Annotation of a pull-request preview: the pull request's head branch, as its author named it.
pub const PULL_REQUEST_BRANCH: &str = "factories.dev/pull-request-branch";
