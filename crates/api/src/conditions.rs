//! Condition types and reasons, following the Kubernetes API conventions.
//!
//! Reasons are PascalCase; they appear in conditions, Events and metric labels alike.

/// The object is fully reconciled to its last applied revision.
pub const READY: &str = "Ready";
/// The operator is working towards the desired state.
pub const RECONCILING: &str = "Reconciling";
/// Progress stopped on an error that needs a change of spec or source to clear.
pub const STALLED: &str = "Stalled";
/// Live objects differ from the desired state and `driftPolicy: Report` is set.
pub const DRIFTED: &str = "Drifted";

/// Reasons used in conditions and Events.
pub mod reasons {
    /// Everything desired was applied.
    pub const RECONCILED: &str = "Reconciled";
    /// A reconcile is running.
    pub const PROGRESSING: &str = "Progressing";
    /// The spec failed validation the API server could not do itself.
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// The git source could not be fetched.
    pub const FETCH_FAILED: &str = "FetchFailed";
    /// The git source needs credentials it was refused with.
    pub const AUTHENTICATION_FAILED: &str = "AuthenticationFailed";
    /// A manifest in the source could not be parsed.
    pub const PARSE_FAILED: &str = "ParseFailed";
    /// The API server rejected an object of the revision in a dry-run.
    pub const VALIDATION_FAILED: &str = "ValidationFailed";
    /// Applying an object failed.
    pub const APPLY_FAILED: &str = "ApplyFailed";
    /// The API server refused an object for lack of rights.
    pub const FORBIDDEN: &str = "Forbidden";
    /// Pruning objects that left the source failed.
    pub const PRUNE_FAILED: &str = "PruneFailed";
    /// Pruning was skipped to protect already applied objects.
    pub const PRUNE_SKIPPED: &str = "PruneSkipped";
    /// Applied, but the inventory is too large for the factory's status: pruning is held back.
    pub const INVENTORY_TOO_LARGE: &str = "InventoryTooLarge";
    /// Reconciliation is suspended by `spec.suspend`.
    pub const SUSPENDED: &str = "Suspended";
    /// A permanent environment was removed from its factory's spec and left in place.
    pub const ORPHANED: &str = "Orphaned";
    /// A preview environment passed its expiry.
    pub const EXPIRED: &str = "Expired";
    /// Live objects drifted from the desired state.
    pub const DRIFT_DETECTED: &str = "DriftDetected";
}
