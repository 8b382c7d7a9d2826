//! Reconcile errors: each says what failed and where, and maps to a condition reason.

use factory_api::conditions::Reason;
use factory_apply::ApplyError;
use factory_core::manifests::LoadError;
use factory_core::render::RenderError;
use factory_source::SourceError;

/// A reconcile step failed. Nothing is pruned after any of these.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The spec is valid for the API server but not usable.
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
    /// The credentials Secret could not be read.
    #[error("credentials secret {namespace}/{name}: {why}")]
    Credentials {
        /// Secret namespace.
        namespace: String,
        /// Secret name.
        name: String,
        /// What went wrong.
        why: String,
    },
    /// Fetching or reading the git source failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// Manifests did not parse.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Load(Vec<LoadError>),
    /// A definition could not be rendered into objects.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Render(Vec<RenderError>),
    /// kustomize or helm refused or failed to render a configuration path.
    #[error(transparent)]
    Tool(#[from] factory_tools::RenderError),
    /// Validating, applying or pruning failed.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// Applying would prune what a source that became empty used to hold (no `allowEmpty`).
    #[error("{0}")]
    PruneSkipped(String),
    /// Something this reconcile depends on is not there (yet).
    #[error("waiting: {0}")]
    Waiting(String),
    /// A Kubernetes API call of the controller itself failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// A blocking task panicked or was cancelled.
    #[error("internal: {0}")]
    Internal(String),
}

impl ReconcileError {
    /// PascalCase reason for conditions, Events and metrics.
    pub fn reason(&self) -> Reason {
        match self {
            ReconcileError::InvalidSpec(_) | ReconcileError::Render(_) => Reason::InvalidSpec,
            ReconcileError::Credentials { .. } => Reason::AuthenticationFailed,
            ReconcileError::Source(e) => e.reason(),
            ReconcileError::Load(_) => Reason::ParseFailed,
            ReconcileError::Tool(_) => Reason::RenderFailed,
            ReconcileError::Apply(e) => e.reason(),
            ReconcileError::PruneSkipped(_) => Reason::PruneSkipped,
            ReconcileError::Waiting(_) => Reason::DependencyNotReady,
            ReconcileError::Kube(_) | ReconcileError::Internal(_) => Reason::InternalError,
        }
    }

    /// Whether only a change (of spec, repository or secret) can clear it: `Stalled`.
    pub fn is_permanent(&self) -> bool {
        match self {
            ReconcileError::InvalidSpec(_)
            | ReconcileError::Credentials { .. }
            | ReconcileError::Load(_)
            | ReconcileError::Render(_)
            | ReconcileError::PruneSkipped(_) => true,
            ReconcileError::Source(e) => e.is_permanent(),
            ReconcileError::Tool(e) => !matches!(
                e,
                factory_tools::RenderError::Timeout { .. }
                    | factory_tools::RenderError::Missing { .. }
                    | factory_tools::RenderError::Tree { .. }
            ),
            ReconcileError::Apply(e) => matches!(e, ApplyError::Validation(_)),
            ReconcileError::Waiting(_) | ReconcileError::Kube(_) | ReconcileError::Internal(_) => false,
        }
    }
}
