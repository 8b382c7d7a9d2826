//! What every reconcile stands on: the context (clients, identities, stores), git sources,
//! status and Events, metrics and health, the watches and what triggers a reconcile, Tekton
//! discovery, schedules and errors. Services import nothing above them.

pub mod admission;
pub mod backoff;
pub mod context;
pub mod error;
pub mod events;
pub mod health;
pub mod hosts;
pub mod metrics;
pub mod notify;
pub mod render;
pub mod schedule;
pub mod source;
pub mod status;
pub mod tekton;
pub mod triggers;
pub mod watches;
