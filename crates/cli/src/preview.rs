//! `kubectl factory preview create|delete|list`: preview environments of a team factory, which
//! live as PreviewEnvironment objects in its cicd namespace.

use std::io::Write;

use anyhow::{Context, Result};
use factory_api::conditions::READY;
use factory_api::{PreviewEnvironment, labels};
use factory_core::names::cicd_namespace;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, ResourceExt};
use serde::Serialize;
use serde_json::json;

use crate::Output;

/// One preview as listed.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    /// Preview name.
    pub name: String,
    /// Team factory.
    pub factory: String,
    /// Application.
    pub application: String,
    /// Branch, tag or commit.
    pub reference: String,
    /// Its namespace.
    pub namespace: String,
    /// Ready condition status.
    pub ready: String,
    /// When it expires, or `never` when kept.
    pub expires: String,
}

/// What `preview create` asks for.
pub struct NewPreview<'a> {
    /// Preview name.
    pub name: &'a str,
    /// Team factory.
    pub factory: &'a str,
    /// Application.
    pub application: &'a str,
    /// `branch`, `tag` or `commit`, and its value.
    pub reference: (&'a str, &'a str),
    /// Lifetime, such as `24h`.
    pub ttl: Option<&'a str>,
}

/// Creates a preview; the API server's validation and the factory's preview quota decide.
pub async fn create(client: &Client, new: &NewPreview<'_>) -> Result<String> {
    let namespace = cicd_namespace(new.factory);
    let mut spec = json!({"application": new.application, "ref": {new.reference.0: new.reference.1}});
    if let Some(ttl) = new.ttl {
        spec["ttl"] = json!(ttl);
    }
    let preview: PreviewEnvironment = serde_json::from_value(json!({
        "apiVersion": "factories.dev/v1alpha1", "kind": "PreviewEnvironment",
        "metadata": {"name": new.name, "namespace": namespace}, "spec": spec}))?;
    Api::<PreviewEnvironment>::namespaced(client.clone(), &namespace)
        .create(&PostParams::default(), &preview)
        .await
        .with_context(|| format!("creating preview {} in {namespace}", new.name))?;
    Ok(format!("previewenvironment.factories.dev/{} created in {namespace}", new.name))
}

/// Deletes a preview; its namespace goes with it.
pub async fn delete(client: &Client, factory: &str, name: &str) -> Result<String> {
    let namespace = cicd_namespace(factory);
    Api::<PreviewEnvironment>::namespaced(client.clone(), &namespace)
        .delete(name, &DeleteParams::default())
        .await
        .with_context(|| format!("deleting preview {name} in {namespace}"))?;
    Ok(format!("previewenvironment.factories.dev/{name} deleted from {namespace}"))
}

/// The previews of `factory`, or of every factory.
pub async fn list(client: &Client, factory: Option<&str>) -> Result<Vec<Row>> {
    let items = match factory {
        Some(f) => {
            Api::<PreviewEnvironment>::namespaced(client.clone(), &cicd_namespace(f)).list(&ListParams::default()).await
        }
        None => Api::<PreviewEnvironment>::all(client.clone()).list(&ListParams::default()).await,
    }
    .context("listing previews")?
    .items;
    Ok(items
        .iter()
        .map(|p| {
            let status = p.status.clone().unwrap_or_default();
            let r = &p.spec.git_ref;
            let reference = r.branch.clone().or_else(|| r.tag.clone()).or_else(|| r.commit.clone()).unwrap_or_default();
            let kept = p.annotations().get(labels::KEEP).is_some_and(|v| v == "forever");
            Row {
                name: p.name_any(),
                factory: p.namespace().unwrap_or_default().trim_end_matches("-cicd").to_string(),
                application: p.spec.application.clone(),
                reference,
                namespace: status.namespace.clone().unwrap_or_default(),
                ready: status
                    .reconcile
                    .conditions
                    .iter()
                    .find(|c| c.type_ == READY)
                    .map_or_else(|| "Unknown".into(), |c| c.status.clone()),
                expires: if kept {
                    "never".into()
                } else {
                    status.expires_at.map(|t| t.0.to_string()).unwrap_or_default()
                },
            }
        })
        .collect())
}

/// Prints the rows.
pub fn print(rows: &[Row], output: Output, out: &mut dyn Write) -> Result<()> {
    crate::render(rows, output, out, |out| {
        let mut table =
            vec![["NAME", "FACTORY", "APPLICATION", "REF", "NAMESPACE", "READY", "EXPIRES"].map(String::from)];
        for r in rows {
            table.push([
                r.name.clone(),
                r.factory.clone(),
                r.application.clone(),
                r.reference.clone(),
                r.namespace.clone(),
                r.ready.clone(),
                r.expires.clone(),
            ]);
        }
        crate::write_table_or(&table, "No previews found.", out)
    })
}
