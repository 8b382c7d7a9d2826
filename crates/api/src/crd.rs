//! The CustomResourceDefinitions of this API, as objects and as the YAML checked into `crds/`.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use crate::{Approval, Environment, Factory, PreviewEnvironment, Release};

/// Every CRD this operator serves, in a stable order, with descriptions reflowed.
pub fn all() -> Vec<CustomResourceDefinition> {
    [Factory::crd(), Environment::crd(), PreviewEnvironment::crd(), Release::crd(), Approval::crd()]
        .into_iter()
        .map(reflow)
        .collect()
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

/// The API reference in Markdown, generated from the CRDs' schemas: every field with its type
/// and description, for `docs/crd-reference.md`.
pub fn reference_markdown() -> String {
    let mut out = String::from(
        "# API reference: factories.dev/v1alpha1\n\n\
         Generated from the Rust types in crates/api by `cargo xtask crdgen`. Do not edit.\n\
         `kubectl explain factory.spec` (and so on) shows the same text.\n",
    );
    for crd in all() {
        let kind = &crd.spec.names.kind;
        let Some(version) = crd.spec.versions.first() else { continue };
        let Some(schema) = version.schema.as_ref().and_then(|s| s.open_api_v3_schema.as_ref()) else { continue };
        let Ok(schema) = serde_json::to_value(schema) else { continue };
        out.push_str(&format!("\n## {kind}\n\n"));
        let short = crd.spec.names.short_names.clone().unwrap_or_default().join(", ");
        out.push_str(&format!(
            "`{}` ({}), short names: {}.\n\n",
            crd.metadata.name.as_deref().unwrap_or_default(),
            if crd.spec.scope == "Namespaced" { "namespaced" } else { "cluster-scoped" },
            if short.is_empty() { "none".into() } else { short }
        ));
        if let Some(d) = schema.get("description").and_then(|d| d.as_str()) {
            out.push_str(&format!("{d}\n\n"));
        }
        out.push_str("| Field | Type | Description |\n|---|---|---|\n");
        for part in ["spec", "status"] {
            if let Some(s) = schema.pointer(&format!("/properties/{part}")) {
                fields(part, s, &mut out, 0);
            }
        }
    }
    out
}

fn fields(path: &str, schema: &serde_json::Value, out: &mut String, depth: usize) {
    let ty = match schema.get("type").and_then(|t| t.as_str()) {
        Some("array") => {
            let item = schema.pointer("/items/type").and_then(|t| t.as_str()).unwrap_or("object");
            format!("[]{item}")
        }
        Some(t) => t.to_string(),
        None => "any".into(),
    };
    let description =
        schema.get("description").and_then(|d| d.as_str()).unwrap_or("").replace('\n', " ").replace('|', "\\|");
    out.push_str(&format!("| `{path}` | {ty} | {description} |\n"));
    if depth >= 4 || path.ends_with(".conditions") || path.ends_with(".inventory") {
        return;
    }
    let nested = schema.get("properties").or_else(|| schema.pointer("/items/properties"));
    if let Some(props) = nested.and_then(|p| p.as_object()) {
        let array = schema.get("type").and_then(|t| t.as_str()) == Some("array");
        for (name, child) in props {
            let child_path = if array { format!("{path}[].{name}") } else { format!("{path}.{name}") };
            fields(&child_path, child, out, depth + 1);
        }
    }
}
