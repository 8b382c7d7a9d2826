//! Test support for integration tests against a real control plane.
//!
//! - [`cluster`]: one control plane per test binary, started on first use, stopped when the
//!   binary exits; a [`TestContext`] per test with an admin client, clients acting as other
//!   users, groups and service accounts, unique names, and the component logs printed when
//!   the test fails.
//! - [`wait`]: waiting for a condition with a timeout, never a fixed sleep.
//! - [`gitea`]: a real Gitea (HTTPS, tokens, pull requests, statuses, signed webhooks).
//! - [`git`]: git repositories built from files, served on loopback by `git daemon` and by
//!   smart HTTP (`git http-backend`) behind a server that can require a token.

pub mod cluster;
pub mod git;
pub mod gitea;
pub mod http;
pub mod operator;
pub mod receiver;
pub mod wait;

pub use cluster::{TestContext, control_plane, second_cluster};
pub use operator::ensure_operator;
pub use wait::eventually;
