//! The desired set, made ready to apply one manifest at a time: each object labelled and kept
//! as JSON text, with its inventory entry, its kind's resolution and where it came from. A
//! caller rendering thousands of objects (a platform revision) hands each over as it renders
//! it, instead of holding them all parsed: a parsed object takes several times its text.

use std::collections::BTreeSet;
use std::sync::Arc;

use factory_api::InventoryEntry;
use factory_core::manifests::{Location, Manifest};
use serde_json::value::RawValue;

use crate::error::{ApplyError, ObjectFailure};
use crate::resolve::Resolved;

/// Objects to converge the cluster to, prepared by [`Engine::prepare`].
#[derive(Default)]
pub struct Desired {
    pub(crate) items: Vec<Item>,
    /// Objects that cannot be applied as they are (reported by the run, which then writes nothing).
    pub(crate) failures: Vec<ObjectFailure>,
    /// (group, kind) this set's own CRDs define: objects of those kinds resolve after them.
    pub(crate) defined_here: BTreeSet<(String, String)>,
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

/// The API group of `api_version` (empty for the core group).
pub(crate) fn group(api_version: &str) -> &str {
    api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("")
}

/// (group, kind) a CRD manifest defines.
pub(crate) fn crd_defines(manifest: &Manifest) -> Option<(String, String)> {
    if manifest.kind() != "CustomResourceDefinition" {
        return None;
    }
    let spec = manifest.object.get("spec")?;
    Some((spec.get("group")?.as_str()?.to_string(), spec.pointer("/names/kind")?.as_str()?.to_string()))
}

/// A failure of `object` with the API server's `reason`.
pub(crate) fn failure(object: &str, reason: &str, message: &str) -> ObjectFailure {
    ObjectFailure { object: object.to_string(), reason: reason.to_string(), message: message.to_string() }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Stage {
    /// CRDs and Namespaces: others may need them.
    Foundations,
    /// Cluster-scoped objects.
    Cluster,
    /// Namespaced objects.
    Namespaced,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Create,
    Update,
    Drift,
    Unchanged,
}

/// How an inventory entry is named in messages: `Kind namespace/name`.
pub(crate) fn describe(entry: &InventoryEntry) -> String {
    match &entry.namespace {
        Some(ns) => format!("{} {}/{}", entry.kind, ns, entry.name),
        None => format!("{} {}", entry.kind, entry.name),
    }
}
