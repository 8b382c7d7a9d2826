//! Paths named inside a repository: whether one is remote, and where it leads.

pub use factory_core::paths::normalise;

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
    }
}
