//! One reconciler per kind, each run through the same [`skeleton`]: the platform factory, the
//! team factory (with [`factory`] choosing between them by type), the environment and the
//! preview. A reconciler calls steps and services; nothing below calls a reconciler.

pub mod environment;
pub mod factory;
pub mod platform;
pub mod preview;
pub mod reconciled;
pub mod skeleton;
pub mod team;
