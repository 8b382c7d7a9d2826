//! The parts of a reconcile that several reconcilers share or that stand on their own: an
//! environment's class baseline, applications, pipelines, shared images, credentials,
//! branch previews, pull-request previews and releases. A step calls services (and a step below it); never a reconciler.

pub mod applications;
pub mod baseline;
pub mod credentials;
pub mod images;
pub mod pipelines;
pub mod previews;
pub mod pull_requests;
pub mod releases;
