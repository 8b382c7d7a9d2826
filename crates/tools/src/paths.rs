//! Paths named inside a repository: whether one is remote, and where it leads.

use std::path::{Component, Path, PathBuf};

/// Whether `entry` names something kustomize or helm would fetch over the network.
pub fn is_remote(entry: &str) -> bool {
    let lower = entry.trim().to_ascii_lowercase();
    lower.contains("://")
        || lower.starts_with("git@")
        || lower.starts_with("git::")
        || lower.starts_with("oci:")
        || lower.starts_with('@')
        || ["github.com/", "gitlab.com/", "bitbucket.org/"].iter().any(|h| lower.starts_with(h))
        || lower.contains("?ref=")
        || lower.contains("?version=")
}

/// Resolves `.` and `..` without touching the file system; `None` when the path climbs above
/// the repository root or is absolute.
pub fn normalise(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_entries_and_escapes_are_told_apart() {
        for remote in [
            "https://github.com/org/repo//base?ref=v1",
            "github.com/org/repo/base",
            "git@github.com:org/repo.git",
            "oci://registry/charts",
            "@stable",
            "ssh://host/repo",
        ] {
            assert!(is_remote(remote), "{remote}");
        }
        for local in ["../base", "deployment.yaml", "overlays/prod"] {
            assert!(!is_remote(local), "{local}");
        }
        assert_eq!(normalise(Path::new("deploy/prod/../base")), Some(PathBuf::from("deploy/base")));
        assert_eq!(normalise(Path::new("deploy/../../etc")), None);
        assert_eq!(normalise(Path::new("/etc")), None);
    }
}
