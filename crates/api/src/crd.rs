//! The CustomResourceDefinitions of this API, as objects and as the YAML checked into `crds/`.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use crate::{Environment, Factory, PreviewEnvironment};

/// Every CRD this operator serves, in a stable order, with descriptions reflowed.
pub fn all() -> Vec<CustomResourceDefinition> {
    [Factory::crd(), Environment::crd(), PreviewEnvironment::crd()].into_iter().map(reflow).collect()
}

/// Doc comments wrap at the source's line width; `kubectl explain` wraps by itself, so single
/// line breaks become spaces (blank lines, which separate paragraphs, stay).
fn reflow(crd: CustomResourceDefinition) -> CustomResourceDefinition {
    fn walk(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, child) in map.iter_mut() {
                    match child {
                        serde_json::Value::String(text) if key == "description" => *text = reflow_text(text),
                        _ => walk(child),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    let Ok(mut value) = serde_json::to_value(&crd) else { return crd };
    walk(&mut value);
    serde_json::from_value(value).unwrap_or(crd)
}

fn reflow_text(text: &str) -> String {
    text.split("\n\n")
        .map(|para| para.split('\n').map(str::trim).collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// The file name of a CRD under `crds/`: `<plural>.<group>.yaml`.
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.yaml", crd.metadata.name.as_deref().unwrap_or("unnamed"))
}

/// Renders one CRD as the YAML document kept in `crds/`.
pub fn to_yaml(crd: &CustomResourceDefinition) -> Result<String, serde_yaml::Error> {
    let body = serde_yaml::to_string(crd)?;
    Ok(format!("# Generated from the Rust types in crates/api by `cargo xtask crdgen`. Do not edit.\n{body}"))
}
