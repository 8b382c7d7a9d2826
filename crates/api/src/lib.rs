//! `factories.dev/v1alpha1`: the custom resource types of factory-operator and the constants
//! (labels, annotations, condition types and reasons) shared by every other crate.
//!
//! This crate holds data shapes only: no I/O, no reconcile logic.

pub mod common;
pub mod conditions;
pub mod crd;
pub mod environment;
pub mod factory;
pub mod labels;
pub mod notifications;
pub mod preview;
pub mod pull_requests;
pub mod release;
pub mod status;

pub use common::{AccessGrant, GitRef, GitSource, InventoryEntry, PathSpec, SecretReference, Text};
pub use environment::{DriftPolicy, Environment, EnvironmentSpec, EnvironmentStatus};
pub use factory::{Factory, FactorySpec, FactoryStatus, FactoryType};
pub use notifications::{NotificationEvent, NotificationFormat, NotificationTarget};
pub use preview::{PreviewEnvironment, PreviewEnvironmentSpec, PreviewEnvironmentStatus, PreviewPhase};
pub use pull_requests::{Expose, GitHost, GitHostAccess, LocalSecretReference, PreviewIngress, PullRequestPreviews};
pub use release::{Approval, ApprovalSpec, Release, ReleaseImage, ReleaseSpec, ReleaseStatus};
pub use status::{ApplicationHealth, ApplicationStatus, HealthState, ReconcileStatus, RunningRelease};

/// The API group of every custom resource defined here.
pub const GROUP: &str = "factories.dev";
/// The API version of every custom resource defined here.
pub const VERSION: &str = "v1alpha1";
/// Namespace of the team factories' own service accounts unless the operator is told
/// otherwise (`--tenant-namespace`): installed with the operator (the chart creates it), where
/// no tenant holds any right, so no team member can run a pod as, impersonate or request a
/// token for the account its factory applies with.
pub const DEFAULT_TENANT_NAMESPACE: &str = "factory-tenants";
/// The field manager the operator uses for server-side apply.
pub const FIELD_MANAGER: &str = "factory-operator";
