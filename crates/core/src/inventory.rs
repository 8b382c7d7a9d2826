//! Inventories: what an owner applied, keyed so that versions do not matter, and the set
//! difference that decides what to prune.

use std::collections::BTreeSet;

use factory_api::{InventoryEntry, Text};
use serde_json::Value;

/// Identity of an object independent of the API version it was applied with:
/// `<group>/<kind>/<namespace>/<name>`.
pub fn key(entry: &InventoryEntry) -> String {
    let group = entry.api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
    format!("{group}/{}/{}/{}", entry.kind, entry.namespace.as_deref().unwrap_or(""), entry.name)
}

/// Entries of `previous` whose objects are not in `current`: the candidates for pruning.
pub fn stale<'a>(previous: &'a [InventoryEntry], current: &[InventoryEntry]) -> Vec<&'a InventoryEntry> {
    let keep: BTreeSet<String> = current.iter().map(key).collect();
    previous.iter().filter(|e| !keep.contains(&key(e))).collect()
}

/// The entry recorded for a desired object.
pub fn entry(object: &Value) -> InventoryEntry {
    let text = |pointer: &str| object.pointer(pointer).and_then(Value::as_str).map(Text::from);
    InventoryEntry {
        api_version: text("/apiVersion").unwrap_or_default(),
        kind: text("/kind").unwrap_or_default(),
        namespace: text("/metadata/namespace"),
        name: text("/metadata/name").unwrap_or_default(),
        digest: digest(object).into(),
    }
}

/// A stable digest of an object's content (keys sorted), 16 hex digits.
pub fn digest(value: &Value) -> String {
    fn feed(hash: &mut u64, bytes: &[u8]) {
        for b in bytes {
            *hash = (*hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn walk(hash: &mut u64, value: &Value) {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                feed(hash, b"{");
                for k in keys {
                    feed(hash, k.as_bytes());
                    feed(hash, b":");
                    walk(hash, &map[k]);
                    feed(hash, b",");
                }
                feed(hash, b"}");
            }
            Value::Array(items) => {
                feed(hash, b"[");
                for item in items {
                    walk(hash, item);
                    feed(hash, b",");
                }
                feed(hash, b"]");
            }
            other => feed(hash, other.to_string().as_bytes()),
        }
    }
    let mut hash = 0xcbf2_9ce4_8422_2325_u64;
    walk(&mut hash, value);
    format!("{hash:016x}")
}

/// The most bytes (as JSON) an inventory may take in an object's status. etcd refuses objects
/// over 1.5 MiB; a platform factory's inventory holds about 17 entries per team factory, so a
/// thousand team factories need about 1.9 MiB. Measured by the benchmark, which stalled on
/// "etcdserver: request is too large" at 10,000 environments.
pub const STATUS_BUDGET: usize = 1024 * 1024;

/// The size of `entries` as JSON in a status, when it exceeds [`STATUS_BUDGET`].
pub fn too_large_for_status(entries: &[InventoryEntry]) -> Option<usize> {
    let size = serde_json::to_vec(entries).map(|v| v.len()).unwrap_or(usize::MAX);
    (size > STATUS_BUDGET).then_some(size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn e(api_version: &str, kind: &str, ns: Option<&str>, name: &str) -> InventoryEntry {
        InventoryEntry {
            api_version: api_version.into(),
            kind: kind.into(),
            namespace: ns.map(Into::into),
            name: name.into(),
            digest: Text::default(),
        }
    }

    #[test]
    fn stale_ignores_versions_and_digests() {
        let previous = vec![e("apps/v1", "Deployment", Some("a"), "web"), e("v1", "ConfigMap", Some("a"), "old")];
        let mut current = vec![e("apps/v1beta1", "Deployment", Some("a"), "web")];
        current[0].digest = "changed".into();
        let stale = stale(&previous, &current);
        assert_eq!(stale, vec![&previous[1]]);
    }

    #[test]
    fn same_name_in_another_namespace_or_kind_is_another_object() {
        let previous = vec![e("v1", "ConfigMap", Some("a"), "x"), e("v1", "Secret", Some("a"), "x")];
        let current = vec![e("v1", "ConfigMap", Some("b"), "x")];
        assert_eq!(stale(&previous, &current).len(), 2);
    }

    #[test]
    fn digest_does_not_depend_on_key_order() {
        let a = json!({"kind": "ConfigMap", "data": {"x": "1", "y": "2"}});
        let b: Value = serde_json::from_str(r#"{"data": {"y": "2", "x": "1"}, "kind": "ConfigMap"}"#).unwrap();
        assert_eq!(digest(&a), digest(&b));
        assert_ne!(digest(&a), digest(&json!({"kind": "ConfigMap", "data": {"x": "1"}})));
    }

    #[test]
    fn a_thousand_team_factories_do_not_fit_in_a_status() {
        let entry = |i: usize| InventoryEntry {
            api_version: "v1".into(),
            kind: "ServiceAccount".into(),
            namespace: Some(format!("t{:04}-cicd", i / 17).into()),
            name: format!("deploy-e{}", i % 17).into(),
            digest: "0123456789abcdef".into(),
        };
        let hundred: Vec<InventoryEntry> = (0..1_700).map(entry).collect();
        let thousand: Vec<InventoryEntry> = (0..17_000).map(entry).collect();
        assert_eq!(too_large_for_status(&hundred), None);
        assert!(too_large_for_status(&thousand).is_some_and(|size| size > STATUS_BUDGET));
    }
}
