//! Which revision of a repository to fetch, and how it is written on status.

use std::fmt;

/// A branch, tag or commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// The newest commit of a branch.
    Branch(String),
    /// The commit a tag points at.
    Tag(String),
    /// One commit, by full SHA.
    Commit(String),
}

impl Reference {
    /// The revision string recorded on status: `main@sha1:<sha>`, `v1.0@sha1:<sha>` or `sha1:<sha>`.
    pub fn revision(&self, sha: &str) -> String {
        match self {
            Reference::Branch(name) | Reference::Tag(name) => format!("{name}@sha1:{sha}"),
            Reference::Commit(_) => format!("sha1:{sha}"),
        }
    }

    /// The refspec that fetches exactly this reference into `refs/factory/<…>` locally.
    pub(crate) fn refspec(&self) -> Option<String> {
        match self {
            Reference::Branch(name) => Some(format!("+refs/heads/{name}:refs/factory/heads/{name}")),
            Reference::Tag(name) => Some(format!("+refs/tags/{name}:refs/factory/tags/{name}")),
            Reference::Commit(_) => None,
        }
    }

    /// The local ref [`Self::refspec`] writes.
    pub(crate) fn local_ref(&self) -> Option<String> {
        match self {
            Reference::Branch(name) => Some(format!("refs/factory/heads/{name}")),
            Reference::Tag(name) => Some(format!("refs/factory/tags/{name}")),
            Reference::Commit(_) => None,
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Branch(name) => write!(f, "branch {name:?}"),
            Reference::Tag(name) => write!(f, "tag {name:?}"),
            Reference::Commit(sha) => write!(f, "commit {sha}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revision_strings_follow_the_status_format() {
        let sha = "a".repeat(40);
        assert_eq!(Reference::Branch("main".into()).revision(&sha), format!("main@sha1:{sha}"));
        assert_eq!(Reference::Tag("v1".into()).revision(&sha), format!("v1@sha1:{sha}"));
        assert_eq!(Reference::Commit(sha.clone()).revision(&sha), format!("sha1:{sha}"));
    }
}
