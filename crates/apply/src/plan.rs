//! What applying a desired set would do, without writing: each object's server-side dry-run
//! compared with the live object (create, change with the changed fields, unchanged), and
//! what would be pruned from the previous inventory. Used by `kubectl factory plan`.

use std::collections::BTreeSet;

use factory_api::{FIELD_MANAGER, InventoryEntry, Text, labels};
use factory_core::inventory;
use factory_core::manifests::Manifest;
use kube::api::{Patch, PatchParams};
use serde::Serialize;
use serde_json::Value;

use crate::desired::describe;
use crate::engine::{Engine, comparable, from_kube};
use crate::error::ApplyError;

/// What would happen to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Change {
    /// It does not exist and would be created.
    Create,
    /// It exists and these fields would change.
    Change,
    /// It is already as desired.
    Unchanged,
    /// It left the desired set and would be deleted.
    Prune,
    /// It left the desired set but is kept (`factories.dev/prune: disabled`, or not ours).
    Keep,
    /// The API server refused the dry-run.
    Refused,
}

/// One object in a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Planned {
    /// The object, such as `ConfigMap shop-prod/settings`.
    pub object: String,
    /// What would happen.
    pub change: Change,
    /// Changed field paths (for `Change`), or why (for `Keep` and `Refused`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
}

impl Engine {
    /// Plans `desired` against the cluster, with `previous` as the last inventory.
    pub async fn plan(&self, desired: &[Manifest], previous: &[InventoryEntry]) -> Result<Vec<Planned>, ApplyError> {
        let items = self.prepare_all(desired).await?.finish()?;
        let new_namespaces: BTreeSet<Text> =
            items.iter().filter(|i| i.entry.kind == "Namespace").map(|i| i.entry.name.clone()).collect();
        let mut out = Vec::new();
        for item in &items {
            let object = describe(&item.entry);
            let Some(resolved) = &item.resolved else {
                out.push(Planned { object, change: Change::Create, details: vec!["its CRD is created first".into()] });
                continue;
            };
            let api = self.api(resolved, item.entry.namespace.as_deref());
            let name = &item.entry.name;
            let live = match api.get_opt(name).await {
                Ok(live) => live,
                Err(e) => {
                    let f = from_kube(item, e);
                    out.push(Planned { object, change: Change::Refused, details: vec![f.to_string()] });
                    continue;
                }
            };
            let params = PatchParams::apply(FIELD_MANAGER).force().dry_run();
            let planned = match (api.patch(name, &params, &Patch::Apply(&item.object)).await, live) {
                (Ok(_), None) => Planned { object, change: Change::Create, details: vec![] },
                (Ok(dry), Some(live)) => {
                    let mut fields = Vec::new();
                    diff("", &normalise(comparable(&live)), &normalise(comparable(&dry)), 0, &mut fields);
                    let change = if fields.is_empty() { Change::Unchanged } else { Change::Change };
                    Planned { object, change, details: fields }
                }
                // Its namespace is created by the same plan.
                (Err(kube::Error::Api(s)), None)
                    if s.code == 404 && item.entry.namespace.as_ref().is_some_and(|ns| new_namespaces.contains(ns)) =>
                {
                    Planned { object, change: Change::Create, details: vec![] }
                }
                (Err(e), _) => {
                    Planned { object, change: Change::Refused, details: vec![from_kube(item, e).to_string()] }
                }
            };
            out.push(planned);
        }
        let current: Vec<InventoryEntry> = items.iter().map(|i| i.entry.clone()).collect();
        for stale in inventory::stale(previous, &current) {
            out.push(self.plan_prune(stale).await);
        }
        Ok(out)
    }

    async fn plan_prune(&self, entry: &InventoryEntry) -> Planned {
        let object = describe(entry);
        let resolved = match self.resolver.resolve(&entry.api_version, &entry.kind).await {
            Ok(Some(r)) => r,
            _ => return Planned { object, change: Change::Keep, details: vec!["its kind is no longer served".into()] },
        };
        let live = match self.api(&resolved, entry.namespace.as_deref()).get_opt(&entry.name).await {
            Ok(Some(live)) => live,
            Ok(None) => return Planned { object, change: Change::Keep, details: vec!["already gone".into()] },
            Err(e) => return Planned { object, change: Change::Refused, details: vec![e.to_string()] },
        };
        if live.metadata.annotations.as_ref().and_then(|a| a.get(labels::PRUNE)).map(String::as_str)
            == Some(labels::PRUNE_DISABLED)
        {
            let why = format!("annotated {}: {}", labels::PRUNE, labels::PRUNE_DISABLED);
            return Planned { object, change: Change::Keep, details: vec![why] };
        }
        Planned { object, change: Change::Prune, details: vec![] }
    }
}

/// Drops what the server sets on every object, so only content is compared.
fn normalise(mut value: Value) -> Value {
    if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        for key in ["generation", "uid", "creationTimestamp"] {
            meta.remove(key);
        }
    }
    if let Some(map) = value.as_object_mut() {
        map.remove("status");
    }
    value
}

/// Dotted paths where `a` and `b` differ, three levels deep at most.
fn diff(path: &str, a: &Value, b: &Value, depth: usize, out: &mut Vec<String>) {
    if a == b {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) if depth < 3 => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let next = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                diff(&next, x.get(k).unwrap_or(&Value::Null), y.get(k).unwrap_or(&Value::Null), depth + 1, out);
            }
        }
        _ => out.push(if path.is_empty() { "(whole object)".into() } else { path.to_string() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn diff_names_the_changed_fields_only() {
        let a = json!({"metadata": {"name": "x", "labels": {"a": "1"}}, "data": {"k": "v", "same": "s"}});
        let b = json!({"metadata": {"name": "x", "labels": {"a": "2"}}, "data": {"k": "w", "same": "s", "new": "n"}});
        let mut out = Vec::new();
        diff("", &a, &b, 0, &mut out);
        assert_eq!(out, ["data.k", "data.new", "metadata.labels.a"]);
    }
}
