//! Checks of a Factory spec that the API server's CEL rules cannot express: cycles between
//! environment classes, names that would not fit a namespace, colliding namespaces.

use std::collections::{BTreeMap, BTreeSet};

use factory_api::factory::EnvironmentClass;
use factory_api::{FactorySpec, FactoryType};

use crate::names::{MAX_LABEL_LEN, cicd_namespace, environment_namespace, is_dns1123_label};

/// One problem found in a spec; `field` is the JSON path of the offending field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SpecError {
    /// Path of the field, such as `spec.environmentClasses[prod].extends`.
    pub field: String,
    /// What is wrong, for a human.
    pub message: String,
}

fn err(field: impl Into<String>, message: impl Into<String>) -> SpecError {
    SpecError { field: field.into(), message: message.into() }
}

/// Validates a Factory named `name`; returns every problem found, in a stable order.
pub fn factory(name: &str, spec: &FactorySpec) -> Vec<SpecError> {
    let mut errors = Vec::new();
    if let Some(classes) = &spec.environment_classes {
        errors.extend(class_cycles(classes));
    }
    if spec.factory_type == FactoryType::Applications {
        let cicd = cicd_namespace(name);
        if !is_dns1123_label(&cicd) {
            errors.push(err("metadata.name", format!("namespace {cicd:?} would not be a valid DNS-1123 label")));
        }
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        seen.insert(cicd, "cicd".to_string());
        for env in spec.environments.iter().flatten() {
            let field = format!("spec.environments[{}]", env.name);
            let ns = env.namespace.clone().unwrap_or_else(|| environment_namespace(name, &env.name));
            if ns.len() > MAX_LABEL_LEN || !is_dns1123_label(&ns) {
                errors.push(err(
                    &field,
                    format!("namespace {ns:?} is not a valid DNS-1123 label of at most 63 characters"),
                ));
            }
            if let Some(other) = seen.insert(ns.clone(), env.name.clone()) {
                errors.push(err(&field, format!("namespace {ns:?} is already used by environment {other:?}")));
            }
        }
    }
    errors
}

/// Finds cycles in `extends` (`a → b → a`), reporting each class that is part of one.
fn class_cycles(classes: &[EnvironmentClass]) -> Vec<SpecError> {
    let graph: BTreeMap<&str, Vec<&str>> =
        classes.iter().map(|c| (c.name.as_str(), c.extends.iter().flatten().map(String::as_str).collect())).collect();
    let mut errors = Vec::new();
    for start in graph.keys() {
        // Depth-first search from `start`; a path back to `start` is a cycle through it.
        let mut stack: Vec<(&str, Vec<&str>)> = vec![(start, vec![start])];
        let mut visited = BTreeSet::new();
        while let Some((node, path)) = stack.pop() {
            for next in graph.get(node).into_iter().flatten() {
                if next == start {
                    let mut cycle = path.clone();
                    cycle.push(next);
                    errors.push(err(
                        format!("spec.environmentClasses[{start}].extends"),
                        format!("classes extend each other in a cycle: {}", cycle.join(" → ")),
                    ));
                    stack.clear();
                    break;
                }
                if visited.insert(*next) {
                    let mut p = path.clone();
                    p.push(next);
                    stack.push((next, p));
                }
            }
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use factory_api::factory::EnvironmentTemplate;

    fn class(name: &str, extends: &[&str]) -> EnvironmentClass {
        EnvironmentClass {
            name: name.into(),
            path: format!("classes/{name}/"),
            extends: Some(extends.iter().map(|s| s.to_string()).collect()),
        }
    }

    fn spec(t: FactoryType) -> FactorySpec {
        serde_json::from_value(serde_json::json!({"type": match t {
            FactoryType::Environments => "Environments",
            FactoryType::Applications => "Applications",
        }}))
        .expect("minimal spec")
    }

    #[test]
    fn class_cycle_is_reported_with_its_path() {
        let mut s = spec(FactoryType::Environments);
        s.environment_classes = Some(vec![class("a", &["b"]), class("b", &["a"]), class("c", &["a"])]);
        let errors = factory("platform", &s);
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_eq!(errors[0].field, "spec.environmentClasses[a].extends");
        assert!(errors[0].message.contains("a → b → a"), "{}", errors[0].message);
    }

    #[test]
    fn acyclic_classes_pass() {
        let mut s = spec(FactoryType::Environments);
        s.environment_classes = Some(vec![class("base", &[]), class("prod", &["base"]), class("x", &["prod", "base"])]);
        assert!(factory("platform", &s).is_empty());
    }

    #[test]
    fn colliding_and_overlong_namespaces_are_reported() {
        let mut s = spec(FactoryType::Applications);
        s.environments = Some(vec![
            EnvironmentTemplate { name: "test".into(), ..Default::default() },
            EnvironmentTemplate { name: "other".into(), namespace: Some("shop-test".into()), ..Default::default() },
            EnvironmentTemplate { name: "ci".into(), namespace: Some("shop-cicd".into()), ..Default::default() },
        ]);
        let errors = factory("shop", &s);
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].message.contains("already used by environment \"test\""));
        assert!(errors[1].message.contains("\"cicd\""));
        let long = "a".repeat(60);
        assert!(!factory(&long, &spec(FactoryType::Applications)).is_empty());
    }
}
