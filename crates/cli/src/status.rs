//! `kubectl factory status`: factories → environments → previews.

use std::io::Write;

use anyhow::{Context, Result};
use factory_api::conditions::READY;
use factory_api::{Environment, Factory, PreviewEnvironment};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use serde::Serialize;

use crate::Output;

/// One line of the tree.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    /// `Factory`, `Environment` or `PreviewEnvironment`.
    pub kind: String,
    /// Object name (`namespace/name` for previews).
    pub name: String,
    /// The Ready condition's status, or `Unknown`.
    pub ready: String,
    /// The Ready condition's reason, or empty.
    pub reason: String,
    /// The revision applied, or empty.
    pub revision: String,
    /// Children.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<Node>,
}

fn ready(conditions: &[Condition]) -> (String, String) {
    conditions
        .iter()
        .find(|c| c.type_ == READY)
        .map(|c| (c.status.clone(), c.reason.clone()))
        .unwrap_or_else(|| ("Unknown".into(), String::new()))
}

/// Reads factories, environments and previews and arranges them as a tree.
pub async fn load(client: &Client, only: Option<&str>) -> Result<Vec<Node>> {
    let lp = ListParams::default();
    let factories = Api::<Factory>::all(client.clone()).list(&lp).await.context("listing factories")?;
    let environments = Api::<Environment>::all(client.clone()).list(&lp).await.context("listing environments")?;
    let previews = Api::<PreviewEnvironment>::all(client.clone()).list(&lp).await.context("listing previews")?;
    Ok(tree(factories.items, &environments.items, &previews.items, only))
}

/// Pure: arranges objects as factory → environments, previews. Previews belong to the
/// factory whose cicd namespace holds them.
pub fn tree(
    factories: Vec<Factory>,
    environments: &[Environment],
    previews: &[PreviewEnvironment],
    only: Option<&str>,
) -> Vec<Node> {
    factories
        .into_iter()
        .filter(|f| only.is_none_or(|name| f.name_any() == name))
        .map(|f| {
            let name = f.name_any();
            let status = f.status.clone().unwrap_or_default();
            let (r, reason) = ready(&status.reconcile.conditions);
            let mut children: Vec<Node> = environments
                .iter()
                .filter(|e| e.spec.factory == name)
                .map(|e| {
                    let s = e.status.clone().unwrap_or_default();
                    let (r, reason) = ready(&s.reconcile.conditions);
                    Node {
                        kind: "Environment".into(),
                        name: e.name_any(),
                        ready: r,
                        reason,
                        revision: s.reconcile.last_applied_revision.unwrap_or_default(),
                        children: vec![],
                    }
                })
                .collect();
            let cicd = factory_core::names::cicd_namespace(&name);
            children.extend(previews.iter().filter(|p| p.namespace().as_deref() == Some(cicd.as_str())).map(|p| {
                let s = p.status.clone().unwrap_or_default();
                let (r, reason) = ready(&s.reconcile.conditions);
                Node {
                    kind: "PreviewEnvironment".into(),
                    name: format!("{cicd}/{}", p.name_any()),
                    ready: r,
                    reason,
                    revision: s.source_revision.unwrap_or_default(),
                    children: vec![],
                }
            }));
            Node {
                kind: "Factory".into(),
                name,
                ready: r,
                reason,
                revision: status.reconcile.last_applied_revision.unwrap_or_default(),
                children,
            }
        })
        .collect()
}

/// Prints the tree as a table, JSON or YAML.
pub fn print(nodes: &[Node], output: Output, out: &mut dyn Write) -> Result<()> {
    crate::render(nodes, output, out, |out| {
        let mut rows = vec![["NAME".to_string(), "KIND".into(), "READY".into(), "REASON".into(), "REVISION".into()]];
        for node in nodes {
            rows.push(row(node, ""));
            let last = node.children.len().saturating_sub(1);
            for (i, child) in node.children.iter().enumerate() {
                rows.push(row(child, if i == last { "└─ " } else { "├─ " }));
            }
        }
        crate::write_table_or(&rows, "No factories found.", out)
    })
}

fn row(node: &Node, indent: &str) -> [String; 5] {
    [
        format!("{indent}{}", node.name),
        node.kind.clone(),
        node.ready.clone(),
        node.reason.clone(),
        node.revision.clone(),
    ]
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::Value;

    use super::*;

    /// The objects of `tests/testdata/units/status/objects.yaml`, by kind.
    fn objects() -> (Vec<Factory>, Vec<Environment>, Vec<PreviewEnvironment>) {
        let path = format!("{}/../../tests/testdata/units/status/objects.yaml", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"));
        let (mut factories, mut environments, mut previews) = (vec![], vec![], vec![]);
        for document in serde_yaml::Deserializer::from_str(&text) {
            let value = Value::deserialize(document).expect("a YAML document");
            let kind = value["kind"].as_str().unwrap_or_default().to_string();
            match kind.as_str() {
                "Factory" => factories.push(serde_json::from_value(value).expect("a Factory")),
                "Environment" => environments.push(serde_json::from_value(value).expect("an Environment")),
                "PreviewEnvironment" => previews.push(serde_json::from_value(value).expect("a PreviewEnvironment")),
                other => panic!("unexpected kind {other} in {path}"),
            }
        }
        (factories, environments, previews)
    }

    fn printed(nodes: &[Node], output: Output) -> String {
        let mut out = Vec::new();
        print(nodes, output, &mut out).expect("print");
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn environments_and_previews_hang_under_their_factory() {
        let (factories, environments, previews) = objects();
        let nodes = tree(factories, &environments, &previews, None);
        let shape: Vec<(String, Vec<String>)> =
            nodes.iter().map(|n| (n.name.clone(), n.children.iter().map(|c| c.name.clone()).collect())).collect();
        assert_eq!(
            shape,
            [
                ("shop".to_string(), vec!["shop-test".to_string(), "shop-prod".into(), "shop-cicd/pr-7".into()]),
                // An environment of an unlisted factory and a preview outside a cicd namespace
                // belong to no one here.
                ("platform".into(), vec![]),
            ]
        );
        let prod = &nodes[0].children[1];
        assert_eq!((prod.ready.as_str(), prod.reason.as_str()), ("False", "Forbidden"));
        assert_eq!(nodes[1].ready, "Unknown", "no status yet");
        assert_eq!(nodes[0].children[2].revision, "feature-login@sha1:3333333", "a preview shows its source revision");
        insta::assert_yaml_snapshot!(nodes);
    }

    #[test]
    fn one_factory_is_chosen_by_name() {
        let (factories, environments, previews) = objects();
        let nodes = tree(factories.clone(), &environments, &previews, Some("platform"));
        assert_eq!(nodes.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(), ["platform"]);
        assert!(tree(factories, &environments, &previews, Some("nothing")).is_empty());
    }

    #[test]
    fn the_table_draws_the_tree() {
        let (factories, environments, previews) = objects();
        let nodes = tree(factories, &environments, &previews, None);
        insta::assert_snapshot!(printed(&nodes, Output::Table));
        assert_eq!(printed(&[], Output::Table), "No factories found.\n");
    }
}
