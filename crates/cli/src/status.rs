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
    match output {
        Output::Json => writeln!(out, "{}", serde_json::to_string_pretty(nodes)?)?,
        Output::Yaml => write!(out, "{}", serde_yaml::to_string(nodes)?)?,
        Output::Table => {
            if nodes.is_empty() {
                writeln!(out, "No factories found.")?;
                return Ok(());
            }
            let mut rows =
                vec![["NAME".to_string(), "KIND".into(), "READY".into(), "REASON".into(), "REVISION".into()]];
            for node in nodes {
                rows.push(row(node, ""));
                let last = node.children.len().saturating_sub(1);
                for (i, child) in node.children.iter().enumerate() {
                    rows.push(row(child, if i == last { "└─ " } else { "├─ " }));
                }
            }
            crate::write_table(&rows, out)?;
        }
    }
    Ok(())
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
