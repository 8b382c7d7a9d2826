//! Git fixtures: repositories built from files, and real servers on loopback.

mod daemon;
mod http;
mod repo;
mod ssh;

pub use daemon::{GitDaemon, group_alive};
pub use http::GitHttpServer;
pub use repo::{GitRoot, Repo};
pub use ssh::GitSshServer;
