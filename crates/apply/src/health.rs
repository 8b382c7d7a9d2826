//! Reading what a run applied back, to judge whether it is healthy (`factory_core::health`):
//! only objects whose kinds have a status worth reading are fetched, as the engine's identity.

use factory_api::InventoryEntry;
use factory_core::health::{Health, Unhealthy, has_rules, judge};
use futures::StreamExt;
use futures::stream;

use crate::engine::Engine;

/// Reads at most this many objects at once.
const CONCURRENCY: usize = 8;

impl Engine {
    /// The objects of `inventory` that are not current, judged from their live status. An
    /// object that cannot be read is in progress, with what the API server said.
    pub async fn unhealthy(&self, inventory: &[InventoryEntry]) -> Vec<Unhealthy> {
        // Owned entries: futures over borrowed ones do not satisfy the controller runtime's `Send`.
        let mut read = Vec::new();
        for entry in inventory {
            if has_rules(&entry.api_version, &entry.kind) {
                read.push(entry.clone());
            }
        }
        let judged: Vec<Option<Unhealthy>> = bounded!(read, CONCURRENCY, |entry| self.judge_one(entry));
        let mut unhealthy: Vec<Unhealthy> = judged.into_iter().flatten().collect();
        unhealthy.sort_by(|a, b| a.object.cmp(&b.object));
        unhealthy
    }

    async fn judge_one(&self, entry: InventoryEntry) -> Option<Unhealthy> {
        let namespace = entry.namespace.as_deref();
        let object = match namespace {
            Some(ns) => format!("{} {ns}/{}", entry.kind, entry.name),
            None => format!("{} {}", entry.kind, entry.name),
        };
        let in_progress = |why: String| Some(Unhealthy { object: object.clone(), health: Health::InProgress(why) });
        let resolved = match self.resolver.resolve(&entry.api_version, &entry.kind).await {
            Ok(Some(resolved)) => resolved,
            Ok(None) => return in_progress(format!("{}/{} is not served", entry.api_version, entry.kind)),
            Err(e) => return in_progress(e.to_string()),
        };
        let live = match self.api(&resolved, namespace).get_opt(&entry.name).await {
            Ok(Some(live)) => live,
            Ok(None) => return in_progress("not found".into()),
            Err(e) => return in_progress(crate::api_message(&e)),
        };
        let mut value = serde_json::to_value(&live).unwrap_or_default();
        // A dynamic object's kind comes from its types; make sure the rules see it.
        value["kind"] = serde_json::Value::String(entry.kind.to_string());
        match judge(&value) {
            Health::Current => None,
            health => Some(Unhealthy { object, health }),
        }
    }
}
