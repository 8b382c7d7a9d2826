//! Kubernetes Events (`events.k8s.io/v1`). A repeat of an event within six minutes is counted on
//! the first one (its `series`) instead of creating another, as kube's recorder does — but only
//! a hash and a name are remembered per event: kube's recorder keeps each event it published in
//! full for six minutes, about 30 MiB at 10,000 environments (one event each in a cold start).

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Reporter};
use kube::{Client, Error};
use serde_json::json;

/// How long a repeat counts on the first event rather than making another.
const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);

/// Remembered events above which expired ones are forgotten.
const FORGET_ABOVE: usize = 1024;

/// Publishes Events as one controller.
pub struct Recorder {
    client: Client,
    reporter: Reporter,
    seen: Mutex<HashMap<u64, Seen>>,
}

/// An event published recently.
#[derive(Clone)]
struct Seen {
    name: String,
    count: i32,
    at: Instant,
}

impl Recorder {
    /// A recorder writing with `client`, naming `reporter` as the source.
    pub fn new(client: Client, reporter: Reporter) -> Self {
        Self { client, reporter, seen: Mutex::new(HashMap::new()) }
    }

    /// Publishes `event` about `regarding`: a new Event, or one more in the series of the same
    /// event published less than six minutes ago.
    pub async fn publish(&self, event: &Event, regarding: &ObjectReference) -> Result<(), Error> {
        let key = key(event, regarding);
        let namespace = regarding.namespace.clone().unwrap_or_else(|| "default".into());
        let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), &namespace);
        let now = k8s_openapi::jiff::Timestamp::now();
        if let Some(seen) = self.recent(key) {
            let count = seen.count + 1;
            let series = json!({"series": {"count": count, "lastObservedTime": MicroTime(now)}});
            match api.patch(&seen.name, &PatchParams::default(), &Patch::Merge(&series)).await {
                Ok(_) => {
                    self.remember(key, Seen { count, at: Instant::now(), ..seen });
                    return Ok(());
                }
                // Expired or deleted: a new one.
                Err(Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        let name =
            format!("{}.{:x}", regarding.name.as_deref().unwrap_or(&self.reporter.controller), now.as_nanosecond());
        let created = K8sEvent {
            metadata: ObjectMeta { name: Some(name.clone()), namespace: Some(namespace), ..Default::default() },
            action: Some(event.action.clone()),
            reason: Some(event.reason.clone()),
            note: event.note.clone(),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            related: event.secondary.clone(),
            reporting_controller: Some(self.reporter.controller.clone()),
            reporting_instance: Some(
                self.reporter.instance.clone().unwrap_or_else(|| self.reporter.controller.clone()),
            ),
            type_: Some(match event.type_ {
                EventType::Normal => "Normal".into(),
                EventType::Warning => "Warning".into(),
            }),
            ..Default::default()
        };
        api.create(&PostParams::default(), &created).await?;
        self.remember(key, Seen { name, count: 1, at: Instant::now() });
        Ok(())
    }

    fn recent(&self, key: u64) -> Option<Seen> {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.get(&key).filter(|s| s.at.elapsed() < SERIES_WINDOW).cloned()
    }

    fn remember(&self, key: u64, event: Seen) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() > FORGET_ABOVE {
            seen.retain(|_, s| s.at.elapsed() < SERIES_WINDOW);
        }
        seen.insert(key, event);
    }
}

/// What makes two events the same: the object (by uid), type, reason, action and note.
fn key(event: &Event, regarding: &ObjectReference) -> u64 {
    let mut hasher = DefaultHasher::new();
    (&regarding.uid, &regarding.kind, &regarding.namespace, &regarding.name).hash(&mut hasher);
    (matches!(event.type_, EventType::Warning), &event.reason, &event.action, &event.note).hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(note: &str) -> Event {
        Event {
            type_: EventType::Warning,
            reason: "InventoryTooLarge".into(),
            note: Some(note.into()),
            action: "Reconcile".into(),
            secondary: None,
        }
    }

    #[test]
    fn the_same_event_about_the_same_object_is_one_key() {
        let object = ObjectReference { uid: Some("a".into()), name: Some("platform".into()), ..Default::default() };
        let other = ObjectReference { uid: Some("b".into()), name: Some("platform".into()), ..Default::default() };
        assert_eq!(key(&event("too large"), &object), key(&event("too large"), &object));
        assert_ne!(key(&event("too large"), &object), key(&event("smaller"), &object));
        assert_ne!(key(&event("too large"), &object), key(&event("too large"), &other));
    }
}
