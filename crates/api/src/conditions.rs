//! Condition types and reasons, following the Kubernetes API conventions.
//!
//! Reasons are PascalCase ([`Reason`]); they appear in conditions, Events and metric labels alike.

/// The object is fully reconciled to its last applied revision.
pub const READY: &str = "Ready";
/// The operator is working towards the desired state.
pub const RECONCILING: &str = "Reconciling";
/// Progress stopped on an error that needs a change of spec or source to clear.
pub const STALLED: &str = "Stalled";
/// Live objects differ from the desired state and `driftPolicy: Report` is set.
pub const DRIFTED: &str = "Drifted";

/// Every reason the operator gives, in conditions, Events and the `reason` label of its
/// metrics: one list, so a reason is never a string someone has to parse back out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// Everything desired was applied.
    Reconciled,
    /// A reconcile is running, or will retry.
    Progressing,
    /// The spec failed validation the API server could not do itself.
    InvalidSpec,
    /// The git source could not be fetched.
    FetchFailed,
    /// The git source needs credentials it was refused with.
    AuthenticationFailed,
    /// The branch, tag or commit asked for does not exist.
    ReferenceNotFound,
    /// The repository holds something the operator refuses to read (a link out of it, a file
    /// too large).
    ContentRejected,
    /// A manifest in the source could not be parsed.
    ParseFailed,
    /// kustomize or helm refused a configuration path (a remote base, a path leaving the
    /// repository, a plugin, a limit) or failed on it.
    RenderFailed,
    /// The API server rejected an object of the revision in a dry-run.
    ValidationFailed,
    /// Applying an object failed.
    ApplyFailed,
    /// The API server refused an object for lack of rights.
    Forbidden,
    /// The API server's discovery failed, so kinds could not be resolved.
    DiscoveryFailed,
    /// Pruning objects that left the source failed.
    PruneFailed,
    /// Applied, but objects failed to become healthy (a rollout past its deadline, a failed Job).
    Degraded,
    /// Pruning was skipped to protect already applied objects.
    PruneSkipped,
    /// Applied, but the inventory is too large for the factory's status: pruning is held back.
    InventoryTooLarge,
    /// Reconciliation is suspended by `spec.suspend` (its own or its factory's).
    Suspended,
    /// A permanent environment (or an application) was removed from its factory and left in place.
    Orphaned,
    /// A preview environment passed its expiry.
    Expired,
    /// Live objects drifted from the desired state.
    DriftDetected,
    /// Something the reconcile depends on is not there yet (a platform's first revision, a factory).
    DependencyNotReady,
    /// The operator's own call to the API server failed, or a task of its own did.
    InternalError,
    /// Asked for something this version does not do yet (applications in another cluster).
    Unsupported,
    /// Event: objects were created or updated.
    Applied,
    /// Event: objects that left the source were deleted.
    Pruned,
    /// Event: a release entered an environment.
    Promoted,
    /// Event: a preview's namespace is being deleted.
    Deleting,
}

impl Reason {
    /// Every reason, in the order above.
    pub const ALL: [Reason; 28] = [
        Reason::Reconciled,
        Reason::Progressing,
        Reason::InvalidSpec,
        Reason::FetchFailed,
        Reason::AuthenticationFailed,
        Reason::ReferenceNotFound,
        Reason::ContentRejected,
        Reason::ParseFailed,
        Reason::RenderFailed,
        Reason::ValidationFailed,
        Reason::ApplyFailed,
        Reason::Forbidden,
        Reason::DiscoveryFailed,
        Reason::PruneFailed,
        Reason::Degraded,
        Reason::PruneSkipped,
        Reason::InventoryTooLarge,
        Reason::Suspended,
        Reason::Orphaned,
        Reason::Expired,
        Reason::DriftDetected,
        Reason::DependencyNotReady,
        Reason::InternalError,
        Reason::Unsupported,
        Reason::Applied,
        Reason::Pruned,
        Reason::Promoted,
        Reason::Deleting,
    ];

    /// The PascalCase word written into conditions, Events and metric labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::Reconciled => "Reconciled",
            Reason::Progressing => "Progressing",
            Reason::InvalidSpec => "InvalidSpec",
            Reason::FetchFailed => "FetchFailed",
            Reason::AuthenticationFailed => "AuthenticationFailed",
            Reason::ReferenceNotFound => "ReferenceNotFound",
            Reason::ContentRejected => "ContentRejected",
            Reason::ParseFailed => "ParseFailed",
            Reason::RenderFailed => "RenderFailed",
            Reason::ValidationFailed => "ValidationFailed",
            Reason::ApplyFailed => "ApplyFailed",
            Reason::Forbidden => "Forbidden",
            Reason::DiscoveryFailed => "DiscoveryFailed",
            Reason::PruneFailed => "PruneFailed",
            Reason::Degraded => "Degraded",
            Reason::PruneSkipped => "PruneSkipped",
            Reason::InventoryTooLarge => "InventoryTooLarge",
            Reason::Suspended => "Suspended",
            Reason::Orphaned => "Orphaned",
            Reason::Expired => "Expired",
            Reason::DriftDetected => "DriftDetected",
            Reason::DependencyNotReady => "DependencyNotReady",
            Reason::InternalError => "InternalError",
            Reason::Unsupported => "Unsupported",
            Reason::Applied => "Applied",
            Reason::Pruned => "Pruned",
            Reason::Promoted => "Promoted",
            Reason::Deleting => "Deleting",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_is_listed_once_and_reads_as_its_name() {
        let mut words: Vec<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        for (reason, word) in Reason::ALL.iter().zip(&words) {
            assert_eq!(format!("{reason:?}"), *word, "the word is the variant's name");
        }
        words.sort();
        words.dedup();
        assert_eq!(words.len(), Reason::ALL.len());
    }
}
