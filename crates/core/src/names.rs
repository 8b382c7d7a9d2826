//! Names of the namespaces a factory owns, and DNS-1123 sanitisation.

/// The longest DNS-1123 label Kubernetes accepts (namespace names are labels).
pub const MAX_LABEL_LEN: usize = 63;

/// The cicd namespace of a team factory: `<factory>-cicd`.
pub fn cicd_namespace(factory: &str) -> String {
    format!("{factory}-cicd")
}

/// The team factory whose cicd namespace `namespace` is: the inverse of [`cicd_namespace`].
pub fn factory_of_cicd(namespace: &str) -> Option<&str> {
    namespace.strip_suffix("-cicd")
}

/// The default namespace of a permanent environment: `<factory>-<environment>`.
pub fn environment_namespace(factory: &str, environment: &str) -> String {
    format!("{factory}-{environment}")
}

/// The name of the cluster-scoped `Environment` object for a factory's environment.
pub fn environment_object_name(factory: &str, environment: &str) -> String {
    environment_namespace(factory, environment)
}

/// Whether `s` is a valid DNS-1123 label (lowercase alphanumerics and `-`, at most 63 chars,
/// starting and ending with an alphanumeric).
pub fn is_dns1123_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_LABEL_LEN
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// Turns arbitrary text (a branch name such as `feature/Login_Page`) into a DNS-1123 label of
/// at most `max_len` characters. Runs of other characters become one `-`. When anything had to
/// change, or the text was cut, a short stable hash of the original is appended so that two
/// different inputs never map to the same name (`feature/a` and `feature-a` differ).
pub fn sanitize_label(input: &str, max_len: usize) -> String {
    let max_len = max_len.clamp(8, MAX_LABEL_LEN);
    let mut out = String::with_capacity(input.len());
    for c in input.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let trimmed = out.trim_matches('-');
    if trimmed == input && trimmed.len() <= max_len && !trimmed.is_empty() {
        return trimmed.to_string();
    }
    let hash = format!("{:08x}", stable_hash(input.as_bytes()) as u32);
    let keep = max_len - hash.len() - 1;
    let head: String = trimmed.chars().take(keep).collect();
    let head = head.trim_end_matches('-');
    if head.is_empty() { format!("x-{hash}") } else { format!("{head}-{hash}") }
}

/// An Environment's short name (`prod`): its `factories.dev/environment` label, else its
/// namespace without the factory prefix.
pub fn environment_short_name(env: &factory_api::Environment) -> String {
    let label = env.metadata.labels.as_ref().and_then(|l| l.get(factory_api::labels::ENVIRONMENT));
    label.cloned().unwrap_or_else(|| {
        env.spec.namespace.strip_prefix(&format!("{}-", env.spec.factory)).unwrap_or(&env.spec.namespace).to_string()
    })
}

/// FNV-1a: a hash that is stable across versions and platforms (not cryptographic), for name
/// suffixes and cache keys that must not change between operator releases.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_labels_pass_unchanged() {
        assert_eq!(sanitize_label("feature-login", 40), "feature-login");
        assert!(is_dns1123_label("shop-prod"));
    }

    #[test]
    fn invalid_characters_are_replaced_and_hashed() {
        let name = sanitize_label("feature/Login_Page", 40);
        assert!(name.starts_with("feature-login-page-"), "{name}");
        assert!(is_dns1123_label(&name), "{name}");
    }

    #[test]
    fn different_inputs_that_sanitise_alike_get_different_names() {
        assert_ne!(sanitize_label("feature/a", 40), sanitize_label("feature-a", 40));
        assert_ne!(sanitize_label("feature/a", 40), sanitize_label("feature_a", 40));
    }

    #[test]
    fn long_inputs_are_cut_to_the_limit() {
        let long = "a".repeat(200);
        let name = sanitize_label(&long, 30);
        assert!(name.len() <= 30, "{name}");
        assert!(is_dns1123_label(&name));
    }

    #[test]
    fn only_symbols_still_gives_a_valid_label() {
        let name = sanitize_label("///", 20);
        assert!(is_dns1123_label(&name), "{name}");
    }

    #[test]
    fn invalid_labels_are_rejected() {
        for bad in ["", "-a", "a-", "A", "a_b", &"a".repeat(64)] {
            assert!(!is_dns1123_label(bad), "{bad}");
        }
    }
}

/// Whether `name` matches `pattern`, where `*` stands for any run of characters (including
/// `/`), as in `feature/*`.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || !name[first.len()..].ends_with(last) || name.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(i) => rest = &rest[i + middle.len()..],
            None => return false,
        }
    }
    true
}

/// The name of the automatic preview of `branch` of `application`.
pub fn branch_preview_name(application: &str, branch: &str) -> String {
    sanitize_label(&format!("{application}-{branch}"), 40)
}

#[cfg(test)]
mod glob_tests {
    use super::*;

    #[test]
    fn globs_match_like_branch_patterns() {
        assert!(glob_match("feature/*", "feature/login"));
        assert!(glob_match("feature/*", "feature/a/b"));
        assert!(!glob_match("feature/*", "main"));
        assert!(glob_match("*-preview", "x-preview"));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(!glob_match("a*b*c", "acb"));
        assert!(glob_match("main", "main"));
        assert!(!glob_match("ab*ba", "aba"));
    }

    #[test]
    fn branch_previews_get_valid_distinct_names() {
        let a = branch_preview_name("cart", "feature/login");
        assert!(is_dns1123_label(&a) && a.len() <= 40, "{a}");
        assert_ne!(a, branch_preview_name("cart", "feature-login"));
    }
}
