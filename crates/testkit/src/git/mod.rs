//! Git fixtures: repositories built from files, and real servers on loopback.

mod daemon;
mod http;
mod repo;

pub use daemon::GitDaemon;
pub use http::GitHttpServer;
pub use repo::{GitRoot, Repo};
