//! The engine's decisions, kept apart from its I/O so they can be read and tested alone: which
//! stage an object belongs to, what a prepared object looks like, which objects are checked in
//! which round, whether a revision only creates, when an update is drift, and the order of a
//! roll-back.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use factory_api::{Text, labels};
use factory_core::inventory;
use factory_core::manifests::Manifest;
use serde_json::Value;

use crate::desired::{Action, Desired, Item, Stage, crd_defines, failure, group};
use crate::error::ObjectFailure;
use crate::resolve::Resolved;

impl Stage {
    /// The stage of an object of `kind` in `api_version`: Namespaces and CRDs first (others may
    /// need them), then cluster-scoped objects, then namespaced ones. A kind nobody serves yet
    /// waits with the namespaced objects (unknown unless a CRD of the set defines it).
    pub(crate) fn of(api_version: &str, kind: &str, resolved: Option<&Resolved>) -> Stage {
        let group = group(api_version);
        match (resolved, kind) {
            (_, "Namespace") if group.is_empty() => Stage::Foundations,
            (_, "CustomResourceDefinition") if group == "apiextensions.k8s.io" => Stage::Foundations,
            (Some(r), _) if !r.namespaced => Stage::Cluster,
            _ => Stage::Namespaced,
        }
    }
}

impl Desired {
    /// Adds `manifest`, its kind `resolved` (or not served), with the operator's labels and
    /// `extra_labels`; an object that cannot be applied as it is becomes a failure of the set.
    pub(crate) fn add(
        &mut self,
        manifest: &Manifest,
        resolved: Option<Arc<Resolved>>,
        extra_labels: &BTreeMap<String, String>,
    ) {
        if let Some(defines) = crd_defines(manifest) {
            self.defined_here.insert(defines);
        }
        let stage = Stage::of(manifest.api_version(), manifest.kind(), resolved.as_deref());
        let mut object = manifest.object.clone();
        label(&mut object, extra_labels);
        if let Some(r) = &resolved {
            if r.namespaced && manifest.namespace().is_none() {
                let f = failure(&manifest.to_string(), "Invalid", "namespaced object without metadata.namespace");
                self.failures.push(f);
                return;
            }
            // A namespace on a cluster-scoped object means nothing; the API server would drop it.
            if !r.namespaced
                && let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut)
            {
                meta.remove("namespace");
            }
        }
        let entry = inventory::entry(&object);
        match serde_json::value::to_raw_value(&object) {
            Ok(object) => {
                self.items.push(Item { at: manifest.location(), object, entry, resolved, stage, action: None })
            }
            Err(e) => self.failures.push(failure(
                &manifest.to_string(),
                "Invalid",
                &format!("cannot be encoded as JSON: {e}"),
            )),
        }
    }
}

fn label(object: &mut Value, extra: &BTreeMap<String, String>) {
    let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) else { return };
    let labels = meta.entry("labels").or_insert_with(|| Value::Object(Default::default()));
    if let Some(map) = labels.as_object_mut() {
        map.insert(labels::MANAGED_BY.into(), labels::MANAGED_BY_VALUE.into());
        for (k, v) in extra {
            map.insert(k.clone(), Value::String(v.clone()));
        }
    }
}

/// The items read in one validation round: the foundations (`foundations`), or the rest, less
/// those in a namespace the revision is `creating` (they cannot be read before it exists and
/// are validated after the foundations instead) and those of kinds not served yet.
pub(crate) fn checked_in_round(items: &[Item], foundations: bool, creating: &BTreeSet<Text>) -> Vec<usize> {
    (0..items.len())
        .filter(|&idx| {
            let item = &items[idx];
            let waits = item.entry.namespace.as_ref().is_some_and(|ns| creating.contains(ns));
            item.resolved.is_some() && (item.stage == Stage::Foundations) == foundations && !waits
        })
        .collect()
}

/// The namespaces the revision declares (each created if absent).
pub(crate) fn declared_namespaces(items: &[Item]) -> BTreeSet<Text> {
    items
        .iter()
        .filter(|i| i.entry.kind == "Namespace" && i.stage == Stage::Foundations)
        .map(|i| i.entry.name.clone())
        .collect()
}

/// Whether the run only creates: every object it read is absent, and the others go into
/// namespaces it creates or are of kinds its own CRDs define.
pub(crate) fn creates_only(items: &[Item]) -> bool {
    items.iter().all(|i| i.action.is_none() || i.action == Some(Action::Create))
}

/// The namespaces this run creates (planned `Create`).
pub(crate) fn created_namespaces(items: &[Item]) -> BTreeSet<Text> {
    items
        .iter()
        .filter(|i| i.entry.kind == "Namespace" && i.action == Some(Action::Create))
        .map(|i| i.entry.name.clone())
        .collect()
}

/// Whether `failure` only says that `item`'s namespace does not exist yet, while the revision
/// creates it.
pub(crate) fn is_missing_namespace(failure: &ObjectFailure, item: &Item, new_namespaces: &BTreeSet<Text>) -> bool {
    failure.reason == "NotFound" && item.entry.namespace.as_ref().is_some_and(|ns| new_namespaces.contains(ns))
}

/// What applying `planned` means once the last inventory is known: an update of content that
/// has not changed since it was last applied is a hand-made change (drift).
pub(crate) fn settle(planned: Option<Action>, last_digest: Option<&str>, digest: &str) -> Option<Action> {
    match planned {
        Some(Action::Update) if last_digest == Some(digest) => Some(Action::Drift),
        other => other,
    }
}

/// What a refused fresh revision deletes, in order: what it `created` past its foundations,
/// namespaced objects before the cluster-scoped ones they may depend on.
pub(crate) fn roll_back_order<'a>(items: &'a [Item], created: &[String]) -> Vec<&'a Item> {
    let mut undo: Vec<&Item> =
        items.iter().filter(|i| i.stage != Stage::Foundations && created.contains(&i.label())).collect();
    undo.sort_by_key(|i| std::cmp::Reverse(i.stage));
    undo
}

#[cfg(test)]
mod tests {
    use factory_core::manifests::{SourceFile, load};
    use kube::api::ApiResource;

    use super::*;
    use crate::ApplyError;

    /// A fixture of `tests/testdata/units/apply/`, loaded as a repository file would be.
    fn manifests(name: &str) -> Vec<Manifest> {
        let path = format!("{}/../../tests/testdata/units/apply/{name}", env!("CARGO_MANIFEST_DIR"));
        let content = std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"));
        load(&[SourceFile { path: name.into(), content }], &BTreeMap::new()).expect("fixture loads")
    }

    /// What discovery would say in a cluster serving the built-in kinds and not yet `Widget`.
    fn served(kind: &str) -> Option<Arc<Resolved>> {
        let namespaced = match kind {
            "Namespace" | "CustomResourceDefinition" | "ClusterRole" => false,
            "ConfigMap" => true,
            _ => return None,
        };
        let resource = ApiResource {
            group: String::new(),
            version: "v1".into(),
            api_version: "v1".into(),
            kind: kind.into(),
            plural: format!("{}s", kind.to_lowercase()),
        };
        Some(Arc::new(Resolved { resource, namespaced }))
    }

    fn prepared(name: &str) -> Desired {
        let mut desired = Desired::default();
        let labels = BTreeMap::from([("factories.dev/applied-by".to_string(), "platform.p".to_string())]);
        for m in manifests(name) {
            desired.add(&m, served(m.kind()), &labels);
        }
        desired
    }

    fn names(items: &[Item], indices: &[usize]) -> Vec<String> {
        indices.iter().map(|&i| describe_item(&items[i])).collect()
    }

    fn describe_item(item: &Item) -> String {
        crate::desired::describe(&item.entry)
    }

    #[test]
    fn foundations_come_first_then_cluster_scoped_then_namespaced_objects() {
        let items = prepared("revision.yaml").finish().expect("valid");
        let stages: Vec<(String, Stage)> = items.iter().map(|i| (describe_item(i), i.stage)).collect();
        assert_eq!(
            stages,
            [
                ("Namespace shop".to_string(), Stage::Foundations),
                ("CustomResourceDefinition widgets.example.com".into(), Stage::Foundations),
                ("ClusterRole reader".into(), Stage::Cluster),
                ("ConfigMap shop/settings".into(), Stage::Namespaced),
                ("ConfigMap existing/elsewhere".into(), Stage::Namespaced),
                // Not served yet, defined by the revision's own CRD: waits for it.
                ("Widget shop/first".into(), Stage::Namespaced),
            ]
        );
        // A `Namespace` of another group is not a foundation.
        assert_eq!(Stage::of("example.com/v1", "Namespace", None), Stage::Namespaced);
    }

    #[test]
    fn a_prepared_object_carries_our_labels_and_a_cluster_scoped_one_drops_its_namespace() {
        let items = prepared("revision.yaml").finish().expect("valid");
        let role = items.iter().find(|i| i.entry.kind == "ClusterRole").expect("role");
        let object: Value = serde_json::from_str(role.object.get()).expect("json");
        assert_eq!(object["metadata"]["labels"][labels::MANAGED_BY], labels::MANAGED_BY_VALUE);
        assert_eq!(object["metadata"]["labels"]["factories.dev/applied-by"], "platform.p");
        assert_eq!(object["metadata"].get("namespace"), None);
        assert_eq!(role.entry.namespace, None, "the inventory names it as the cluster does");
        assert_eq!(role.label(), "ClusterRole reader (revision.yaml:17 (document 3))");
    }

    #[test]
    fn a_set_with_an_object_that_cannot_be_applied_fails_naming_each() {
        let Err(ApplyError::Validation(failures)) = prepared("invalid.yaml").finish() else {
            panic!("an invalid set must fail validation")
        };
        let found: Vec<(&str, &str)> = failures.iter().map(|f| (f.object.as_str(), f.reason.as_str())).collect();
        assert_eq!(found[0].1, "Invalid");
        assert!(found[0].0.contains("nowhere"), "{found:?}");
        assert_eq!(found[1], ("Gadget shop/lost (invalid.yaml:6 (document 2))", "UnknownKind"));
        assert!(failures[1].message.contains("install its CRD"), "{}", failures[1].message);
    }

    #[test]
    fn objects_in_a_namespace_being_created_are_checked_after_the_foundations() {
        let items = prepared("revision.yaml").finish().expect("valid");
        let first = checked_in_round(&items, true, &BTreeSet::new());
        assert_eq!(names(&items, &first), ["Namespace shop", "CustomResourceDefinition widgets.example.com"]);
        let creating = BTreeSet::from([Text::from("shop")]);
        let second = checked_in_round(&items, false, &creating);
        // Not shop's objects (their namespace does not exist yet), not the Widget (not served).
        assert_eq!(names(&items, &second), ["ClusterRole reader", "ConfigMap existing/elsewhere"]);
        let later = checked_in_round(&items, false, &BTreeSet::new());
        assert_eq!(
            names(&items, &later),
            ["ClusterRole reader", "ConfigMap shop/settings", "ConfigMap existing/elsewhere"]
        );
        assert_eq!(declared_namespaces(&items), creating);
    }

    #[test]
    fn a_revision_only_creates_while_nothing_it_read_exists() {
        let mut items = prepared("revision.yaml").finish().expect("valid");
        assert!(creates_only(&items), "nothing read yet");
        items[0].action = Some(Action::Create);
        assert!(creates_only(&items));
        assert_eq!(created_namespaces(&items), BTreeSet::from([Text::from("shop")]));
        items[4].action = Some(Action::Unchanged);
        assert!(!creates_only(&items), "an object that exists makes it a change");
        items[0].action = Some(Action::Unchanged);
        assert!(created_namespaces(&items).is_empty());
    }

    #[test]
    fn only_a_not_found_in_a_namespace_being_created_is_waited_for() {
        let items = prepared("revision.yaml").finish().expect("valid");
        let settings = &items[3];
        let new = BTreeSet::from([Text::from("shop")]);
        let not_found = failure("x", "NotFound", "namespaces \"shop\" not found");
        assert!(is_missing_namespace(&not_found, settings, &new));
        assert!(!is_missing_namespace(&not_found, settings, &BTreeSet::new()));
        assert!(!is_missing_namespace(&failure("x", "Forbidden", "no"), settings, &new));
        assert!(!is_missing_namespace(&not_found, &items[4], &new), "its namespace is not being created");
    }

    #[test]
    fn an_update_of_content_unchanged_since_last_applied_is_drift() {
        assert_eq!(settle(Some(Action::Update), Some("d1"), "d1"), Some(Action::Drift));
        assert_eq!(settle(Some(Action::Update), Some("d0"), "d1"), Some(Action::Update), "new content");
        assert_eq!(settle(Some(Action::Update), None, "d1"), Some(Action::Update), "never applied");
        assert_eq!(settle(Some(Action::Create), Some("d1"), "d1"), Some(Action::Create));
        assert_eq!(settle(Some(Action::Unchanged), Some("d1"), "d1"), Some(Action::Unchanged));
        assert_eq!(settle(None, Some("d1"), "d1"), None, "not planned: waits for a later round");
    }

    #[test]
    fn a_roll_back_keeps_the_foundations_and_deletes_namespaced_objects_first() {
        let items = prepared("revision.yaml").finish().expect("valid");
        let created: Vec<String> = items.iter().map(Item::label).collect();
        let order: Vec<String> = roll_back_order(&items, &created).into_iter().map(describe_item).collect();
        assert_eq!(
            order,
            ["ConfigMap shop/settings", "ConfigMap existing/elsewhere", "Widget shop/first", "ClusterRole reader"]
        );
        let only_role = [items[2].label()];
        assert_eq!(roll_back_order(&items, &only_role).len(), 1);
    }
}
