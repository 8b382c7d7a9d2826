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

use crate::services::backoff::WatchBackoff;

/// How many object references a subscriber may lag behind its watch before the watch waits.
const SUBSCRIBER_BUFFER: usize = 4096;

/// A watch of one kind into one store, with subscribers (the controllers it triggers).
pub struct SharedWatch<K: reflector::Lookup + Clone + 'static>
where
    K::DynamicType: Eq + Hash + Clone,
{
    store: Store<K>,
    writer: reflector::store::Writer<K>,
    listed: tokio::sync::watch::Sender<bool>,
}

/// A shared watch's store, readable once it holds the watch's first whole list. The readiness
/// is the watch's own signal, not kube's `Store::wait_until_ready`: that wakes only the last of
/// several concurrent waiters (its one-shot channel keeps one waker), and at an operator restart
/// with 10,000 environments the 16 team factory reconciles waiting on it together never woke.
#[derive(Clone)]
pub struct Cached<K: reflector::Lookup + Clone + 'static>
where
    K::DynamicType: Eq + Hash + Clone,
{
    store: Store<K>,
    listed: tokio::sync::watch::Receiver<bool>,
}

impl<K> Cached<K>
where
    K: reflector::Lookup + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    /// Every object, once the first list is in; `None` if the watch stopped before it.
    pub async fn listed_state(&self) -> Option<Vec<Arc<K>>> {
        let listed = self.listed.clone().wait_for(|listed| *listed).await.is_ok();
        listed.then(|| self.store.state())
    }
}

impl<K> SharedWatch<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    /// A watch that has not started.
    pub fn new() -> Self {
        let (store, writer) = reflector::store_shared(SUBSCRIBER_BUFFER);
        Self { store, writer, listed: tokio::sync::watch::Sender::new(false) }
    }

    /// The objects, as the watch last delivered them (without `managedFields`).
    pub fn store(&self) -> Store<K> {
        self.store.clone()
    }

    /// The store with its readiness, for reconciles that must wait for the first list.
    pub fn cached(&self) -> Cached<K> {
        Cached { store: self.store.clone(), listed: self.listed.subscribe() }
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
        let listed = self.listed;
        watcher::watcher(api, watcher::Config::default())
            .modify(|object| object.managed_fields_mut().clear())
            .backoff(WatchBackoff::default())
            .reflect_shared(self.writer)
            .for_each(move |event| {
                match event {
                    // A receiver gone means the controllers stopped: nothing left to tell.
                    Ok(event) => {
                        if matches!(event, watcher::Event::InitDone) {
                            listed.send_replace(true);
                        }
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
        let mut changes = Changes::new(crate::services::triggers::inputs::<Environment>);
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

    /// Spawns `n` tasks awaiting `wait`, lets them all register, calls `signal`, lets the woken
    /// ones run, and counts those that finished.
    async fn woken<F: Future<Output = ()> + Send + 'static>(
        n: usize,
        wait: impl Fn() -> F,
        signal: impl FnOnce(),
    ) -> usize {
        let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        for _ in 0..n {
            let (done, wait) = (done.clone(), wait());
            tokio::spawn(async move {
                wait.await;
                done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            });
        }
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        signal();
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        done.load(std::sync::atomic::Ordering::SeqCst)
    }

    #[tokio::test]
    async fn every_reconcile_waiting_for_the_first_list_wakes() {
        let listed = tokio::sync::watch::Sender::new(false);
        let cached = Cached { store: reflector::store::<Environment>().0, listed: listed.subscribe() };
        let woke = woken(
            32,
            || {
                let cached = cached.clone();
                async move { assert!(cached.listed_state().await.is_some()) }
            },
            || {
                listed.send_replace(true);
            },
        )
        .await;
        assert_eq!(woke, 32);
        assert!(cached.listed_state().await.is_some(), "a later waiter returns at once");
    }

    /// Why [`Cached`] has its own readiness. If this fails, kube's store wakes every waiter now
    /// and [`Cached::listed_state`] could wait on `Store::wait_until_ready` again.
    #[tokio::test]
    async fn kube_store_readiness_wakes_only_the_last_of_concurrent_waiters() {
        let (store, mut writer) = reflector::store::<Environment>();
        let woke = woken(
            32,
            || {
                let store = store.clone();
                async move { store.wait_until_ready().await.expect("ready") }
            },
            || writer.apply_watcher_event(&watcher::Event::InitDone),
        )
        .await;
        assert!(woke < 32, "all 32 waiters woke");
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
