//! The platform factory (FBE) against a real control plane, the real operator binary and real
//! git repositories served over smart HTTP with a token.

mod applications;
mod cli;
mod delivery;
mod environments;
mod failures;
#[allow(dead_code)]
mod fixture;
mod happy;
mod health;
mod multicluster;
mod pipelines;
mod previews;
mod pull_requests;
mod render;
mod team;
mod webhook_and_credentials;
