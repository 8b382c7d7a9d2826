//! Git sources: fetching a branch, tag or commit of a repository with git2 into a local bare
//! repository, and the revision strings recorded on status (`main@sha1:<sha>`).
//!
//! Blocking code: async callers run it with `tokio::task::spawn_blocking`.

mod cache;
mod error;
mod fetch;
mod read;
mod reference;
mod tls;

pub use cache::{RepoCache, Synced};
pub use error::SourceError;
pub use fetch::{Auth, Fetched, fetch};
pub use read::{Limits, holds_any, path_id, read_paths, read_tree};
pub use reference::Reference;
