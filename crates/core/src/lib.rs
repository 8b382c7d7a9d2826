//! Pure logic of factory-operator: naming, validation, conditions and durations.
//!
//! Nothing here performs I/O or reads a clock; time is always a parameter. Everything that
//! talks to the API server or git lives in the crates above this one.

pub mod admission;
pub mod baseline;
pub mod conditions;
pub mod delivery;
pub mod duration;
pub mod health;
pub mod identity;
pub mod images;
pub mod inventory;
pub mod manifests;
pub mod names;
pub mod objects;
pub mod paths;
pub mod pipelines;
pub mod previews;
pub mod pull_requests;
pub mod render;
pub mod runs;
pub mod validate;
