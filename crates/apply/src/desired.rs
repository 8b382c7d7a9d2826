//! The desired set, made ready to apply one manifest at a time: each object labelled and kept
//! as JSON text, with its inventory entry, its kind's resolution and where it came from. A
//! caller rendering thousands of objects (a platform revision) hands each over as it renders
//! it, instead of holding them all parsed: a parsed object takes several times its text.

use std::collections::BTreeSet;
use std::sync::Arc;

use factory_api::InventoryEntry;
use factory_api::labels;
use factory_core::inventory;
use factory_core::manifests::{Location, Manifest};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::engine::{Action, Engine, Stage, describe};
use crate::error::{ApplyError, ObjectFailure};
use crate::resolve::Resolved;

/// Objects to converge the cluster to, prepared by [`Engine::prepare`].
#[derive(Default)]
pub struct Desired {
    items: Vec<Item>,
    /// Objects that cannot be applied as they are (reported by the run, which then writes nothing).
    failures: Vec<ObjectFailure>,
    /// (group, kind) this set's own CRDs define: objects of those kinds resolve after them.
    defined_here: BTreeSet<(String, String)>,
}

impl Desired {
    /// The items to apply, or every object that cannot be (a kind nobody serves or defines).
    pub(crate) fn finish(mut self) -> Result<Vec<Item>, ApplyError> {
        let defined_here = &self.defined_here;
        let unknown = |i: &Item| {
            i.resolved.is_none()
                && !defined_here.contains(&(group(&i.entry.api_version).into(), i.entry.kind.to_string()))
        };
        self.failures.extend(self.items.iter().filter(|i| unknown(i)).map(|i| {
            failure(
                &i.label(),
                "UnknownKind",
                &format!(
                    "the cluster serves no kind {} in {}; install its CRD or fix apiVersion/kind",
                    i.entry.kind, i.entry.api_version
                ),
            )
        }));
        if self.failures.is_empty() { Ok(self.items) } else { Err(ApplyError::Validation(self.failures)) }
    }
}

/// One object of a run.
pub(crate) struct Item {
    /// Where it came from, for messages.
    pub(crate) at: Location,
    /// The object as it is sent (labelled), kept as JSON text.
    pub(crate) object: Box<RawValue>,
    pub(crate) entry: InventoryEntry,
    pub(crate) resolved: Option<Arc<Resolved>>,
    pub(crate) stage: Stage,
    pub(crate) action: Option<Action>,
}

impl Item {
    /// The object and where it came from: `ConfigMap shop-prod/settings (classes/base.yaml:1 (document 1))`.
    pub(crate) fn label(&self) -> String {
        format!("{} ({})", describe(&self.entry), self.at)
    }
}

impl Engine {
    /// Adds `manifest` to `desired`: labelled, its kind resolved. Fails only when discovery
    /// does; an object that cannot be applied as it is fails the run that gets the set.
    pub async fn prepare(&self, desired: &mut Desired, manifest: &Manifest) -> Result<(), ApplyError> {
        let resolved = self.resolver.resolve(manifest.api_version(), manifest.kind()).await?;
        let group = group(manifest.api_version());
        if let Some(defines) = crd_defines(manifest) {
            desired.defined_here.insert(defines);
        }
        let stage = match (&resolved, manifest.kind()) {
            (_, "Namespace") if group.is_empty() => Stage::Foundations,
            (_, "CustomResourceDefinition") if group == "apiextensions.k8s.io" => Stage::Foundations,
            (Some(r), _) if !r.namespaced => Stage::Cluster,
            // Not served (yet): unknown unless a CRD of the set defines it (see `finish`).
            _ => Stage::Namespaced,
        };
        let mut object = manifest.object.clone();
        self.label(&mut object);
        if let Some(r) = &resolved {
            if r.namespaced && manifest.namespace().is_none() {
                desired.failures.push(failure(
                    &manifest.to_string(),
                    "Invalid",
                    "namespaced object without metadata.namespace",
                ));
                return Ok(());
            }
            if !r.namespaced
                && let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut)
            {
                meta.remove("namespace");
            }
        }
        let entry = inventory::entry(&object);
        match serde_json::value::to_raw_value(&object) {
            Ok(object) => {
                desired.items.push(Item { at: manifest.location(), object, entry, resolved, stage, action: None })
            }
            Err(e) => desired.failures.push(failure(
                &manifest.to_string(),
                "Invalid",
                &format!("cannot be encoded as JSON: {e}"),
            )),
        }
        Ok(())
    }

    /// Every manifest of `manifests`, prepared.
    pub async fn prepare_all(&self, manifests: &[Manifest]) -> Result<Desired, ApplyError> {
        let mut desired = Desired::default();
        for manifest in manifests {
            self.prepare(&mut desired, manifest).await?;
        }
        Ok(desired)
    }

    fn label(&self, object: &mut Value) {
        let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) else { return };
        let labels = meta.entry("labels").or_insert_with(|| Value::Object(Default::default()));
        if let Some(map) = labels.as_object_mut() {
            map.insert(labels::MANAGED_BY.into(), labels::MANAGED_BY_VALUE.into());
            for (k, v) in &self.labels {
                map.insert(k.clone(), Value::String(v.clone()));
            }
        }
    }
}

/// The API group of `api_version` (empty for the core group).
fn group(api_version: &str) -> &str {
    api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("")
}

/// (group, kind) a CRD manifest defines.
fn crd_defines(manifest: &Manifest) -> Option<(String, String)> {
    if manifest.kind() != "CustomResourceDefinition" {
        return None;
    }
    let spec = manifest.object.get("spec")?;
    Some((spec.get("group")?.as_str()?.to_string(), spec.pointer("/names/kind")?.as_str()?.to_string()))
}

pub(crate) fn failure(object: &str, reason: &str, message: &str) -> ObjectFailure {
    ObjectFailure { object: object.to_string(), reason: reason.to_string(), message: message.to_string() }
}
