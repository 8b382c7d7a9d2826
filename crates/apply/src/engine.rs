//! Resolve → validate (dry-run) → apply in stages → prune.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use factory_api::labels;
use factory_api::{FIELD_MANAGER, InventoryEntry, Text};
use factory_core::inventory;
use factory_core::manifests::Manifest;
use futures::{StreamExt, stream};
use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PropagationPolicy};
use serde_json::Value;
use tracing::{debug, info, warn};

use crate::desired::{Action, Desired, Item, Stage, describe, failure};
use crate::error::{ApplyError, ObjectFailure, api_message};
use crate::planning::{
    checked_in_round, created_namespaces, creates_only, declared_namespaces, is_missing_namespace, roll_back_order,
    settle,
};
use crate::resolve::{Resolved, Resolver};

/// Whether objects that left the desired set are deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PruneMode {
    /// Delete them (subject to the annotation and ownership checks).
    Enabled,
    /// Keep them and keep them in the inventory, to be pruned later when allowed.
    Disabled,
}

/// What to do with hand-made changes to applied objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriftMode {
    /// Re-apply the desired state.
    Correct,
    /// Leave them and report them.
    Report,
}

impl From<factory_api::DriftPolicy> for DriftMode {
    fn from(policy: factory_api::DriftPolicy) -> Self {
        match policy {
            factory_api::DriftPolicy::Correct => DriftMode::Correct,
            factory_api::DriftPolicy::Report => DriftMode::Report,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The new inventory: every desired object, plus stale ones that were kept.
    pub inventory: Vec<InventoryEntry>,
    /// Objects created.
    pub created: Vec<String>,
    /// Objects updated because the desired state changed.
    pub updated: Vec<String>,
    /// Objects changed by hand: corrected (`DriftMode::Correct`) or left alone (`Report`).
    pub drifted: Vec<String>,
    /// Objects already as desired.
    pub unchanged: usize,
    /// Objects deleted because they left the desired set.
    pub pruned: Vec<String>,
    /// Stale objects not deleted, with the reason.
    pub prune_skipped: Vec<String>,
    /// Whether drifted objects were re-applied (`Correct`) rather than only reported.
    pub drifted_corrected: bool,
    /// Kinds of the objects written (created, updated or corrected), such as `RoleBinding`.
    pub kinds_written: std::collections::BTreeSet<String>,
}

impl Outcome {
    /// Whether anything was written.
    pub fn wrote(&self) -> bool {
        !(self.created.is_empty() && self.updated.is_empty() && self.pruned.is_empty())
            || (!self.drifted.is_empty() && self.drifted_corrected)
    }
}

/// Requests one run has in flight at once (reads, dry-runs, writes): a platform revision of
/// hundreds of objects is bound by round trips, the API server's own limits are far higher.
const CONCURRENCY: usize = 32;

/// The engine, acting as one identity (usually an impersonated service account).
#[derive(Clone)]
pub struct Engine {
    pub(crate) client: Client,
    pub(crate) resolver: Arc<Resolver>,
    pub(crate) labels: BTreeMap<String, String>,
    concurrency: usize,
}

/// Makes the future `$make` for each index `$idx` of `$indices` as slots free up, at most
/// `$limit` in flight, and evaluates to their outputs in the order they finish. Made all at
/// once, a platform revision of 17,000 objects held 17,000 request futures (about 2.8 KiB each).
/// A macro, not a function taking a closure: closures over borrowed items in these futures do
/// not satisfy the `Send` bound the controller runtime needs.
macro_rules! bounded {
    ($indices:expr, $limit:expr, |$idx:ident| $make:expr) => {{
        let mut todo = $indices.into_iter();
        let mut running = stream::FuturesUnordered::new();
        let mut out = Vec::new();
        loop {
            while running.len() < $limit.max(1) {
                let Some($idx) = todo.next() else { break };
                running.push($make);
            }
            match running.next().await {
                Some(done) => out.push(done),
                None => break out,
            }
        }
    }};
}

impl Engine {
    /// An engine writing as `client`, resolving kinds with `resolver`, adding `labels` (and
    /// `app.kubernetes.io/managed-by`) to every object.
    pub fn new(client: Client, resolver: Arc<Resolver>, labels: BTreeMap<String, String>) -> Self {
        Self { client, resolver, labels, concurrency: CONCURRENCY }
    }

    /// Converges the cluster to `desired`. `previous` is the inventory of the last run.
    pub async fn run(
        &self,
        desired: &[Manifest],
        previous: &[InventoryEntry],
        prune: PruneMode,
        drift: DriftMode,
    ) -> Result<Outcome, ApplyError> {
        let desired = self.prepare_all(desired).await?;
        self.apply(desired, previous, prune, drift).await
    }

    /// Converges the cluster to `desired`, prepared with [`Engine::prepare`]. `previous` is
    /// the inventory of the last run.
    pub async fn apply(
        &self,
        desired: Desired,
        previous: &[InventoryEntry],
        prune: PruneMode,
        drift: DriftMode,
    ) -> Result<Outcome, ApplyError> {
        let previous_digests: BTreeMap<String, &str> =
            previous.iter().map(|e| (inventory::key(e), e.digest.as_str())).collect();
        let mut items = desired.finish()?;

        // Validate everything that can be validated before anything is written.
        let new_namespaces = declared_namespaces(&items);
        let mut failures = Vec::new();
        // Foundations first: objects in a namespace this revision creates cannot be dry-run
        // before it exists, so they are validated after the foundations instead of twice.
        // Objects that do not exist are not dry-run yet: if nothing of the revision exists,
        // nothing needs one (below).
        let mut creating: BTreeSet<Text> = BTreeSet::new();
        for foundations in [true, false] {
            let planned = checked_in_round(&items, foundations, &creating);
            let checks = bounded!(planned, self.concurrency, |idx| {
                let item = &items[idx];
                async move { (idx, self.plan_one(item, false, false).await) }
            });
            for (idx, result) in checks {
                match result {
                    Ok(planned) => items[idx].action = Some(planned),
                    Err(f) => failures.push(f),
                }
            }
            creating = created_namespaces(&items);
        }
        // A revision that only creates is validated by writing (and rolled back if anything is
        // refused, so it leaves nothing but namespaces, as a refused dry-run would): nothing
        // it writes can replace anything. Otherwise what it creates is dry-run now.
        let fresh = failures.is_empty() && creates_only(&items);
        if !fresh {
            let planned: Vec<usize> = (0..items.len())
                .filter(|&idx| items[idx].action == Some(Action::Create) && items[idx].resolved.is_some())
                .collect();
            let checks = bounded!(planned, self.concurrency, |idx| {
                let item = &items[idx];
                async move {
                    let validated = match &item.resolved {
                        Some(r) => self.dry_run(&self.api(r, item.entry.namespace.as_deref()), item).await.map(drop),
                        None => Ok(()),
                    };
                    (idx, validated)
                }
            });
            for (idx, result) in checks {
                let item = &mut items[idx];
                match result {
                    Ok(()) => {}
                    // Its namespace is created by this revision: validated after the foundations.
                    Err(f) if is_missing_namespace(&f, item, &new_namespaces) => item.action = None,
                    Err(f) => failures.push(f),
                }
            }
        }
        if !failures.is_empty() {
            return Err(ApplyError::Validation(failures));
        }

        let mut outcome = Outcome::default();
        for stage in [Stage::Foundations, Stage::Cluster, Stage::Namespaced] {
            if stage == Stage::Cluster {
                self.after_foundations(&mut items, fresh).await?;
            }
            if let Err(e) = self.apply_stage(&mut items, stage, drift, &previous_digests, &mut outcome).await {
                if fresh && stage != Stage::Foundations {
                    self.roll_back(&items, &outcome.created).await;
                    // Refused, not failed: the revision is invalid and nothing of it stays, as
                    // if a dry-run had refused it (retrying the same revision would not help).
                    if e.failures().iter().any(ObjectFailure::is_refusal) {
                        return Err(ApplyError::Validation(e.failures().to_vec()));
                    }
                }
                return Err(e);
            }
        }
        // The items are done with: their entries move (a platform revision has 15,000).
        outcome.inventory = items.into_iter().map(|i| i.entry).collect();
        self.prune(previous, prune, &mut outcome).await;
        outcome.inventory.sort_unstable();
        Ok(outcome)
    }

    pub(crate) fn api(&self, resolved: &Resolved, namespace: Option<&str>) -> Api<DynamicObject> {
        match (resolved.namespaced, namespace) {
            (true, Some(ns)) => Api::namespaced_with(self.client.clone(), ns, &resolved.resource),
            _ => Api::all_with(self.client.clone(), &resolved.resource),
        }
    }

    /// Reads the live object and dry-runs the apply; returns what applying would do. `absent`:
    /// the object cannot exist (its namespace was just created), so it is not read. An object
    /// that does not exist is dry-run only if `validate_absent`.
    async fn plan_one(&self, item: &Item, absent: bool, validate_absent: bool) -> Result<Action, ObjectFailure> {
        let Some(resolved) = &item.resolved else { return Ok(Action::Create) };
        let api = self.api(resolved, item.entry.namespace.as_deref());
        let name = &item.entry.name;
        let live = if absent { None } else { api.get_opt(name).await.map_err(|e| from_kube(item, e))? };
        if live.is_none() && !validate_absent {
            return Ok(Action::Create);
        }
        let dry = self.dry_run(&api, item).await?;
        let Some(live) = live else { return Ok(Action::Create) };
        if comparable(&live) == comparable(&dry) { Ok(Action::Unchanged) } else { Ok(Action::Update) }
    }

    /// The server-side dry-run of an object's apply: whether the API server would accept it.
    /// What the API server returns for it, through `api` (the object's resource and namespace).
    async fn dry_run(&self, api: &Api<DynamicObject>, item: &Item) -> Result<DynamicObject, ObjectFailure> {
        let params = PatchParams::apply(FIELD_MANAGER).force().dry_run();
        api.patch(&item.entry.name, &params, &Patch::Apply(&item.object)).await.map_err(|e| from_kube(item, e))
    }

    /// After CRDs and Namespaces are in place: wait for new CRDs, resolve and validate what
    /// had to wait for them. `fresh`: the run only creates; what is left is written without a
    /// dry-run first (and rolled back if any of it is refused).
    async fn after_foundations(&self, items: &mut [Item], fresh: bool) -> Result<(), ApplyError> {
        let crds: Vec<Text> = items
            .iter()
            .filter(|i| i.entry.kind == "CustomResourceDefinition" && i.action != Some(Action::Unchanged))
            .map(|i| i.entry.name.clone())
            .collect();
        if !crds.is_empty() {
            self.wait_established(&crds).await;
            self.resolver.refresh(true).await?;
        }
        // Objects in a namespace created just now cannot exist yet: no need to read them.
        let created = created_namespaces(items);
        let mut failures = Vec::new();
        for item in items.iter_mut().filter(|i| i.action.is_none() && i.resolved.is_none()) {
            item.resolved = self.resolver.resolve(&item.entry.api_version, &item.entry.kind).await?;
            if item.resolved.is_none() {
                failures.push(failure(&item.label(), "UnknownKind", "its CRD was applied but the kind is not served"));
            }
        }
        if fresh && failures.is_empty() {
            items.iter_mut().filter(|i| i.action.is_none()).for_each(|i| i.action = Some(Action::Create));
            return Ok(());
        }
        let planned: Vec<usize> =
            (0..items.len()).filter(|&idx| items[idx].action.is_none() && items[idx].resolved.is_some()).collect();
        let checks = bounded!(planned, self.concurrency, |idx| {
            let item = &items[idx];
            let absent = item.entry.namespace.as_ref().is_some_and(|ns| created.contains(ns));
            async move { (idx, self.plan_one(item, absent, true).await) }
        });
        for (idx, result) in checks {
            match result {
                Ok(action) => items[idx].action = Some(action),
                Err(f) => failures.push(f),
            }
        }
        if failures.is_empty() { Ok(()) } else { Err(ApplyError::Apply(failures)) }
    }

    async fn wait_established(&self, names: &[Text]) {
        use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
        let api: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        for _ in 0..100 {
            let mut all = true;
            for name in names {
                let established = api
                    .get_opt(name)
                    .await
                    .ok()
                    .flatten()
                    .and_then(|c| c.status)
                    .and_then(|s| s.conditions)
                    .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Established" && c.status == "True"));
                all &= established;
            }
            if all {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn apply_stage(
        &self,
        items: &mut [Item],
        stage: Stage,
        drift: DriftMode,
        previous_digests: &BTreeMap<String, &str>,
        outcome: &mut Outcome,
    ) -> Result<(), ApplyError> {
        let mut to_write = Vec::new();
        for (idx, item) in items.iter_mut().enumerate().filter(|(_, i)| i.stage == stage) {
            let key = inventory::key(&item.entry);
            let last = previous_digests.get(&key).copied();
            let Some(action) = settle(item.action, last, &item.entry.digest) else { continue };
            // Named only when reported: a resync of 15,000 unchanged objects names none.
            match action {
                Action::Unchanged => outcome.unchanged += 1,
                Action::Drift if drift == DriftMode::Report => {
                    outcome.drifted.push(item.label());
                    // Keep the digest of what we last applied: the drift is still unresolved.
                    item.entry.digest = previous_digests.get(&key).map(|d| Text::from(*d)).unwrap_or_default();
                }
                _ => to_write.push((idx, action, item.label())),
            }
        }
        let items = &*items;
        let writes = bounded!(to_write, self.concurrency, |next| {
            let (idx, action, label) = next;
            let item = &items[idx];
            async move { (action, label, item.entry.kind.to_string(), self.write(item).await) }
        });
        let mut failures = Vec::new();
        for (action, label, kind, result) in writes {
            match result {
                Ok(()) => {
                    info!(object = %label, ?action, "applied");
                    outcome.kinds_written.insert(kind);
                    match action {
                        Action::Create => outcome.created.push(label),
                        Action::Drift => {
                            outcome.drifted_corrected = true;
                            outcome.drifted.push(label)
                        }
                        _ => outcome.updated.push(label),
                    }
                }
                Err(f) => failures.push(f),
            }
        }
        if failures.is_empty() { Ok(()) } else { Err(ApplyError::Apply(failures)) }
    }

    /// Deletes what a run that only creates managed to create (past the namespaces and CRDs)
    /// before an object was refused: such a run validates by writing, and a refused revision
    /// must leave nothing behind but its foundations, as a refused dry-run would.
    async fn roll_back(&self, items: &[Item], created: &[String]) {
        for item in roll_back_order(items, created) {
            let Some(resolved) = &item.resolved else { continue };
            let api = self.api(resolved, item.entry.namespace.as_deref());
            match api.delete(&item.entry.name, &DeleteParams::background()).await {
                Ok(_) => debug!(object = %describe(&item.entry), "rolled back"),
                Err(e) => warn!(object = %describe(&item.entry), error = %e, "could not roll back"),
            }
        }
    }

    async fn write(&self, item: &Item) -> Result<(), ObjectFailure> {
        let Some(resolved) = &item.resolved else {
            return Err(failure(&item.label(), "UnknownKind", "kind not resolved"));
        };
        let api = self.api(resolved, item.entry.namespace.as_deref());
        let params = PatchParams::apply(FIELD_MANAGER).force();
        api.patch(&item.entry.name, &params, &Patch::Apply(&item.object)).await.map_err(|e| from_kube(item, e))?;
        Ok(())
    }

    /// Deletes the stale entries of `previous`: those to be left alone (annotated, protected,
    /// no longer ours, gone) are dropped from the inventory; every deletion is dry-run first,
    /// and if the API server refuses any of them, none is made and all stay in the inventory
    /// (a half-pruned set is harder to reason about than an untouched one).
    async fn prune(&self, previous: &[InventoryEntry], mode: PruneMode, outcome: &mut Outcome) {
        let stale: Vec<InventoryEntry> = inventory::stale(previous, &outcome.inventory).into_iter().cloned().collect();
        if mode == PruneMode::Disabled {
            outcome.inventory.extend(stale);
            return;
        }
        let mut doomed = Vec::new();
        for entry in stale {
            let describe = describe(&entry);
            match self.prune_target(&entry).await {
                Ok(Prunable::Delete(api)) => doomed.push((entry, api)),
                Ok(Prunable::Leave(why)) => {
                    debug!(object = %describe, why, "not pruned");
                    outcome.prune_skipped.push(format!("{describe}: {why}"))
                }
                Err(why) => {
                    // Kept in the inventory so the next run tries again.
                    outcome.prune_skipped.push(format!("{describe}: {why}"));
                    outcome.inventory.push(entry);
                }
            }
        }
        let dry_run = DeleteParams { dry_run: true, ..delete_params() };
        let mut refused = Vec::new();
        for (entry, api) in &doomed {
            match api.delete(&entry.name, &dry_run).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => refused.push(format!("{}: {}", describe(entry), api_message(&e))),
            }
        }
        if !refused.is_empty() {
            let why = format!("not pruned: the dry-run of this prune was refused ({})", refused.join("; "));
            for (entry, _) in doomed {
                outcome.prune_skipped.push(format!("{}: {why}", describe(&entry)));
                outcome.inventory.push(entry);
            }
            return;
        }
        for (entry, api) in doomed {
            let describe = describe(&entry);
            match api.delete(&entry.name, &delete_params()).await {
                Ok(_) => {
                    info!(object = %describe, "pruned");
                    outcome.pruned.push(describe)
                }
                Err(kube::Error::Api(s)) if s.code == 404 => {
                    outcome.prune_skipped.push(format!("{describe}: already gone"))
                }
                Err(e) => {
                    outcome.prune_skipped.push(format!("{describe}: {}", api_message(&e)));
                    outcome.inventory.push(entry);
                }
            }
        }
    }

    /// Whether one stale object may be deleted (and the API to delete it with).
    async fn prune_target(&self, entry: &InventoryEntry) -> Result<Prunable, String> {
        let Some(resolved) = self.resolver.resolve(&entry.api_version, &entry.kind).await.map_err(|e| e.to_string())?
        else {
            return Ok(Prunable::Leave("its kind is no longer served".into()));
        };
        let api = self.api(&resolved, entry.namespace.as_deref());
        let Some(live) = api.get_opt(&entry.name).await.map_err(|e| api_message(&e))? else {
            return Ok(Prunable::Leave("already gone".into()));
        };
        let meta = &live.metadata;
        if meta.annotations.as_ref().and_then(|a| a.get(labels::PRUNE)).is_some_and(|v| v == labels::PRUNE_DISABLED) {
            return Ok(Prunable::Leave(format!("annotated {}: {}", labels::PRUNE, labels::PRUNE_DISABLED)));
        }
        if meta.labels.as_ref().and_then(|l| l.get(labels::PROTECTED)).is_some_and(|v| v == "true") {
            return Ok(Prunable::Leave("protected".into()));
        }
        let ours = meta.managed_fields.iter().flatten().any(|m| m.manager.as_deref() == Some(FIELD_MANAGER));
        if !ours {
            return Ok(Prunable::Leave("no longer managed by factory-operator".into()));
        }
        Ok(Prunable::Delete(Box::new(api)))
    }
}

/// What to do with one stale inventory entry.
enum Prunable {
    /// Delete it, with this API.
    Delete(Box<Api<DynamicObject>>),
    /// Leave it, for this reason (and drop it from the inventory).
    Leave(String),
}

fn delete_params() -> DeleteParams {
    DeleteParams { propagation_policy: Some(PropagationPolicy::Background), ..DeleteParams::default() }
}

/// An object without the fields that change on every write. Status is left out: apply never writes it, and a status written between the read and the
/// dry-run (by the object's own controller) is not a change to apply.
pub(crate) fn comparable(object: &impl serde::Serialize) -> Value {
    let mut value = serde_json::to_value(object).unwrap_or(Value::Null);
    if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
        meta.remove("resourceVersion");
    }
    if let Some(map) = value.as_object_mut() {
        map.remove("status");
    }
    value
}

/// A failure of a resolved object, named as the cluster sees it (no namespace on a
/// cluster-scoped kind) with the place it came from.
pub(crate) fn from_kube(item: &Item, error: kube::Error) -> ObjectFailure {
    let object = item.label();
    let (reason, message) = match error {
        kube::Error::Api(status) => (
            if status.reason.is_empty() { format!("HTTP{}", status.code) } else { status.reason.clone() },
            status.message,
        ),
        other => ("Unavailable".to_string(), other.to_string()),
    };
    ObjectFailure { object, reason, message }
}
