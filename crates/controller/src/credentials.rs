//! Credentials: Secrets the platform factory copies from a namespace tenants cannot read into
//! chosen environments. The copy is an ordinary desired object of the environment, so updates
//! propagate, removal prunes it, and nothing but its name ever reaches status or Events.

use factory_api::factory::Credential;
use factory_core::manifests::Manifest;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use serde_json::{Value, json};

use crate::error::ReconcileError;

/// The copy of `credential`'s source Secret for `namespace`, read with `client` (the platform
/// factory's account).
pub async fn copy(client: &Client, credential: &Credential, namespace: &str) -> Result<Manifest, ReconcileError> {
    let source_ns = credential.from.namespace.clone().unwrap_or_default();
    let source = &credential.from.name;
    let origin = format!("credential {} from Secret {source_ns}/{source}", credential.name);
    let secret = Api::<Secret>::namespaced(client.clone(), &source_ns)
        .get_opt(source)
        .await
        .map_err(|e| ReconcileError::Waiting(format!("{origin}: {}", kube_reason(&e))))?
        .ok_or_else(|| ReconcileError::Waiting(format!("{origin}: the source Secret does not exist")))?;
    let data: serde_json::Map<String, Value> = secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, serde_json::to_value(v).unwrap_or(Value::Null)))
        .collect();
    let object = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": credential.name, "namespace": namespace,
                     "annotations": {"factories.dev/credential-source": format!("{source_ns}/{source}")}},
        "type": secret.type_.unwrap_or_else(|| "Opaque".into()),
        "data": data,
    });
    Ok(Manifest { file: origin, line: 0, document: 0, object })
}

/// The API server's reason and message, never the request body.
fn kube_reason(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => format!("{} ({})", status.reason, status.message),
        other => other.to_string(),
    }
}
