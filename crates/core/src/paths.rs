//! Paths inside a repository, resolved without touching any file system.

use std::path::{Component, Path, PathBuf};

/// Resolves `.` and `..` lexically; `None` when the path climbs above the repository root or
/// is absolute.
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
    fn paths_that_climb_out_are_refused() {
        assert_eq!(normalise(Path::new("a/./b/../c")), Some(PathBuf::from("a/c")));
        assert_eq!(normalise(Path::new("a/../../etc")), None);
        assert_eq!(normalise(Path::new("/etc")), None);
        assert_eq!(normalise(Path::new("cluster/")), Some(PathBuf::from("cluster")));
    }
}
