//! Types shared by several custom resources: git sources, references and paths.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

/// A git repository the operator fetches manifests from.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.url.startsWith('https://') || self.url.startsWith('http://') || self.url.startsWith('ssh://') || self.url.startsWith('git://') || self.url.matches('^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:.+$')",
        "message": "url must be an https://, http://, ssh:// or git:// URL, or scp-like user@host:path"
    }
]))]
pub struct GitSource {
    /// Repository URL: `https://`, `http://`, `ssh://`, `git://` or scp-like `git@host:org/repo.git`.
    #[schemars(length(min = 1, max = 2048))]
    pub url: String,
    /// Which revision to track: exactly one of branch, tag or commit. Defaults to branch `main`.
    #[serde(rename = "ref")]
    pub git_ref: Option<GitRef>,
    /// Secret with the credentials for the repository: `username`/`password` (or `token`) for
    /// HTTPS, with `ca.crt` when the host's certificate is signed by a private CA; `identity`
    /// and `known_hosts` for SSH. It is read by the operator only.
    pub secret_ref: Option<SecretReference>,
    /// How often the repository is polled for new commits, as a Go duration (`30s`, `5m`, `1h`).
    /// Webhooks trigger a fetch sooner. Defaults to `1m`.
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(s|m|h))+$"))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "duration(self) >= duration('10s') && duration(self) <= duration('24h')",
         "message": "interval must be between 10s and 24h"}
    ]))]
    pub interval: Option<String>,
}

/// A git revision: exactly one of `branch`, `tag` or `commit`.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "[has(self.branch), has(self.tag), has(self.commit)].filter(x, x).size() == 1",
        "message": "exactly one of branch, tag or commit must be set"
    }
]))]
pub struct GitRef {
    /// Branch to track; the newest commit on it is applied.
    #[schemars(length(min = 1, max = 255))]
    pub branch: Option<String>,
    /// Tag to apply.
    #[schemars(length(min = 1, max = 255))]
    pub tag: Option<String>,
    /// Full 40-character commit SHA to apply.
    #[schemars(regex(pattern = "^[0-9a-f]{40}$"))]
    pub commit: Option<String>,
}

impl GitRef {
    /// The branch ref, the default when nothing is set.
    pub fn branch(name: impl Into<String>) -> Self {
        Self { branch: Some(name.into()), ..Self::default() }
    }
}

/// A reference to a Secret in a named namespace.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretReference {
    /// Namespace of the Secret. For namespaced resources it defaults to the resource's namespace.
    #[schemars(length(min = 1, max = 63))]
    pub namespace: Option<String>,
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// A directory inside a repository.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!self.path.startsWith('/') && !self.path.split('/').exists(s, s == '..')",
     "message": "path must be relative to the repository root and must not contain '..'"}
]))]
pub struct PathSpec {
    /// Path relative to the repository root, for example `cluster/`. Every YAML file below it is applied.
    #[schemars(length(min = 1, max = 1024))]
    pub path: String,
    /// Allow this path to become empty. Without it, a path that held objects and is now empty
    /// (or missing) is treated as a mistake: nothing is pruned and the status says so.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_empty: bool,
}

/// One object applied by a factory or environment. The inventory is how objects that leave
/// git are found and pruned, and how drift is told apart from a change in git.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InventoryEntry {
    /// API version the object was applied with, such as `rbac.authorization.k8s.io/v1`.
    #[schemars(with = "String")]
    pub api_version: Text,
    /// Kind, such as `ClusterRole`.
    #[schemars(with = "String")]
    pub kind: Text,
    /// Namespace; empty for cluster-scoped objects.
    #[schemars(with = "Option<String>")]
    pub namespace: Option<Text>,
    /// Name.
    #[schemars(with = "String")]
    pub name: Text,
    /// Digest of the desired object last applied.
    #[serde(default, skip_serializing_if = "Text::is_empty")]
    #[schemars(with = "String")]
    pub digest: Text,
}

/// A string kept inline when it is short (up to 24 bytes, as most names, kinds and digests
/// are): every Environment in the operator's cache holds a dozen inventory entries, and five
/// separately allocated strings per entry were half of what 10,000 environments took.
pub type Text = compact_str::CompactString;

/// A ClusterRole bound in an environment to the factory owners (or named groups).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessGrant {
    /// ClusterRole to bind with a namespaced RoleBinding, such as `edit` or `view`.
    #[schemars(length(min = 1, max = 253))]
    pub cluster_role: String,
    /// Groups to bind; defaults to the factory owners.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

/// Schema of a free-form object, kept as given (chart values).
pub fn free_form(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
}
