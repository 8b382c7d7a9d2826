//! One watch per kind, shared by every controller that reads it. Factories, Environments and
//! previews were each watched (and cached) two or three times — once per controller that
//! reconciles or summarises them — and every cached object kept its `managedFields`, which no
//! reconcile reads. At 10,000 environments those copies were most of the operator's memory.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use kube::runtime::reflector::{self, ReflectHandle, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tracing::warn;

use crate::backoff::WatchBackoff;

/// How many object references a subscriber may lag behind its watch before the watch waits.
const SUBSCRIBER_BUFFER: usize = 4096;

/// A watch of one kind into one store, with subscribers (the controllers it triggers).
pub struct SharedWatch<K: reflector::Lookup + Clone + 'static>
where
    K::DynamicType: Eq + Hash + Clone,
{
    store: Store<K>,
    writer: reflector::store::Writer<K>,
}

impl<K> SharedWatch<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    /// A watch that has not started.
    pub fn new() -> Self {
        let (store, writer) = reflector::store_shared(SUBSCRIBER_BUFFER);
        Self { store, writer }
    }

    /// The objects, as the watch last delivered them (without `managedFields`).
    pub fn store(&self) -> Store<K> {
        self.store.clone()
    }

    /// Every object the watch applies, after the store has it (deletions are not passed on).
    pub fn subscribe(&self) -> ReflectHandle<K> {
        self.writer.subscribe().expect("a shared writer always has a dispatcher")
    }

    /// Runs the watch of `api` until the process stops. `wanted` sees each event once the store
    /// holds it, deletions included, and names what to send to `to`; what it names while the
    /// watch (re)lists is sent once the store holds the whole list.
    pub fn run<T: Send + 'static, I: IntoIterator<Item = T>>(
        self,
        api: Api<K>,
        to: futures::channel::mpsc::UnboundedSender<T>,
        mut wanted: impl FnMut(&watcher::Event<K>) -> I + Send + 'static,
    ) -> impl Future<Output = ()> + Send + 'static {
        let kind = K::kind(&()).to_string();
        let mut after = AfterList::default();
        watcher::watcher(api, watcher::Config::default())
            .modify(|object| object.managed_fields_mut().clear())
            .backoff(WatchBackoff::default())
            .reflect_shared(self.writer)
            .for_each(move |event| {
                match event {
                    // A receiver gone means the controllers stopped: nothing left to tell.
                    Ok(event) => {
                        after.push(&event, wanted(&event)).into_iter().for_each(|t| drop(to.unbounded_send(t)))
                    }
                    Err(e) => warn!(%kind, error = %e, "watch failed; retrying"),
                }
                std::future::ready(())
            })
    }
}

impl<K> Default for SharedWatch<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    fn default() -> Self {
        Self::new()
    }
}

/// Remembers a hash per object (by uid: a deleted and re-created object is new) and tells
/// whether it changed — `predicate_filter` for streams of shared objects.
pub struct Changes<K: Resource<DynamicType = ()>> {
    predicate: fn(&K) -> Option<u64>,
    /// By uid alone (an `ObjectRef` key also holds the name, namespace and resourceVersion: at
    /// 10,000 environments these maps took 7.5 MiB).
    seen: HashMap<String, u64>,
}

impl<K: Resource<DynamicType = ()>> Changes<K> {
    /// Tracks `predicate` (`None` from it always counts as a change).
    pub fn new(predicate: fn(&K) -> Option<u64>) -> Self {
        Self { predicate, seen: HashMap::new() }
    }

    /// Whether `object`'s hash differs from the one last seen.
    pub fn changed(&mut self, object: &K) -> bool {
        let Some(hash) = (self.predicate)(object) else { return true };
        self.seen.insert(Self::key(object), hash) != Some(hash)
    }

    /// Forgets a deleted object.
    pub fn forget(&mut self, object: &K) {
        self.seen.remove(&Self::key(object));
    }

    /// The uid; an object read without one (never from a watch) by its namespace and name.
    fn key(object: &K) -> String {
        object.uid().unwrap_or_else(|| format!("{}/{}", object.namespace().unwrap_or_default(), object.name_any()))
    }
}

/// The objects of `stream` whose `predicate` hash changed.
pub fn changed<K>(
    stream: impl Stream<Item = Arc<K>> + Send + 'static,
    predicate: fn(&K) -> Option<u64>,
) -> impl Stream<Item = Arc<K>> + Send + 'static
where
    K: Resource<DynamicType = ()> + Send + Sync + 'static,
{
    let mut changes = Changes::new(predicate);
    stream.filter(move |object| std::future::ready(changes.changed(object)))
}

/// What `triggers` names, each object at most once per `window`: the burst a team factory's
/// summary gets while its environments become Ready one after the other (ten at a time, each
/// a status write of the summary) becomes one reconcile, at most `window` later.
pub fn coalesced<T: Eq + Hash + Send + 'static>(
    triggers: impl Stream<Item = T> + Send + Unpin + 'static,
    window: Duration,
) -> impl Stream<Item = T> + Send + 'static {
    futures::stream::unfold((triggers, VecDeque::new()), move |(mut triggers, mut ready)| async move {
        loop {
            if let Some(next) = ready.pop_front() {
                return Some((next, (triggers, ready)));
            }
            let first = triggers.next().await?;
            let mut burst = HashSet::from([first]);
            let until = tokio::time::sleep(window);
            tokio::pin!(until);
            loop {
                tokio::select! {
                    () = &mut until => break,
                    next = triggers.next() => match next {
                        Some(t) => { burst.insert(t); }
                        None => break,
                    },
                }
            }
            ready.extend(burst);
        }
    })
}

/// Buffers what a watch's events ask for while it (re)lists, and hands it over once the store
/// holds the whole list: a reconcile triggered mid-list would read the previous list.
struct AfterList<T> {
    listing: bool,
    pending: Vec<T>,
}

impl<T> Default for AfterList<T> {
    fn default() -> Self {
        Self { listing: false, pending: Vec::new() }
    }
}

impl<T> AfterList<T> {
    /// Takes in `event`'s requests (from `wanted`), returning those that may be acted on now.
    fn push<K>(&mut self, event: &watcher::Event<K>, wanted: impl IntoIterator<Item = T>) -> Vec<T> {
        match event {
            watcher::Event::Init => {
                self.listing = true;
                self.pending.extend(wanted);
                Vec::new()
            }
            watcher::Event::InitApply(_) => {
                self.pending.extend(wanted);
                Vec::new()
            }
            watcher::Event::InitDone => {
                self.listing = false;
                let mut out = std::mem::take(&mut self.pending);
                out.extend(wanted);
                out
            }
            watcher::Event::Apply(_) | watcher::Event::Delete(_) if self.listing => {
                self.pending.extend(wanted);
                Vec::new()
            }
            watcher::Event::Apply(_) | watcher::Event::Delete(_) => wanted.into_iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use factory_api::Environment;

    fn env(uid: &str, generation: i64) -> Environment {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "factories.dev/v1alpha1", "kind": "Environment",
            "metadata": {"name": "shop-prod", "uid": uid, "generation": generation},
            "spec": {"factory": "shop", "namespace": "shop-prod", "class": "prod"}
        }))
        .expect("environment")
    }

    #[test]
    fn a_change_counts_once_and_a_recreated_object_is_new() {
        let mut changes = Changes::new(crate::triggers::inputs::<Environment>);
        assert!(changes.changed(&env("a", 1)));
        assert!(!changes.changed(&env("a", 1)));
        assert!(changes.changed(&env("a", 2)));
        assert!(changes.changed(&env("b", 2)), "same name and hash, another uid");
        changes.forget(&env("b", 2));
        assert!(changes.changed(&env("b", 2)));
    }

    #[tokio::test]
    async fn a_burst_of_triggers_becomes_one_per_object() {
        let (tx, rx) = futures::channel::mpsc::unbounded();
        let mut out = Box::pin(coalesced(rx, Duration::from_millis(100)));
        for t in ["a", "b", "a", "a", "b"] {
            tx.unbounded_send(t).expect("send");
        }
        let mut first: Vec<&str> = vec![out.next().await.expect("a"), out.next().await.expect("b")];
        first.sort();
        assert_eq!(first, ["a", "b"]);
        let more = tokio::time::timeout(Duration::from_millis(300), out.next()).await;
        assert!(more.is_err(), "nothing more was sent, got {more:?}");
        // A later trigger is a new burst.
        tx.unbounded_send("a").expect("send");
        assert_eq!(out.next().await, Some("a"));
        drop(tx);
        assert_eq!(out.next().await, None);
    }

    #[test]
    fn requests_made_while_listing_wait_for_the_list() {
        let mut after = AfterList::<u32>::default();
        let object = env("a", 1);
        assert_eq!(after.push(&watcher::Event::Apply(object.clone()), [1]), [1]);
        assert!(after.push(&watcher::Event::<Environment>::Init, [2]).is_empty());
        assert!(after.push(&watcher::Event::InitApply(object.clone()), [3]).is_empty());
        assert!(after.push(&watcher::Event::Apply(object.clone()), [4]).is_empty());
        assert_eq!(after.push(&watcher::Event::<Environment>::InitDone, [5]), [2, 3, 4, 5]);
        assert_eq!(after.push(&watcher::Event::Delete(object), [6]), [6]);
    }
}
