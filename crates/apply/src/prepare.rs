//! Preparing the desired set: each manifest labelled, its kind resolved, its stage chosen, as
//! the caller renders it ([`Desired`] holds the result).

use factory_api::labels;
use factory_core::inventory;
use factory_core::manifests::Manifest;
use serde_json::Value;

use crate::desired::{Desired, Item, Stage, crd_defines, failure, group};
use crate::engine::Engine;
use crate::error::ApplyError;

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
