//! Credentials: Secrets the platform factory copies from a namespace tenants cannot read into
//! chosen environments. The copy is an ordinary desired object of the environment, so updates
//! propagate, removal prunes it, and nothing but its name ever reaches status or Events.

use factory_api::factory::Credential;
use factory_core::manifests::Manifest;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use serde_json::{Value, json};

use crate::services::error::ReconcileError;

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

/// The kubeconfig in key `value` (or `value.yaml`) of Secret `namespace/name`.
pub async fn remote_kubeconfig(client: &kube::Client, namespace: &str, name: &str) -> Result<String, ReconcileError> {
    let err =
        |why: String| ReconcileError::Credentials { namespace: namespace.to_string(), name: name.to_string(), why };
    let secret = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
        .map_err(|e| err(e.to_string()))?
        .ok_or_else(|| err("not found".into()))?;
    let data = secret.data.unwrap_or_default();
    let value = data
        .get("value")
        .or_else(|| data.get("value.yaml"))
        .ok_or_else(|| err("needs a `value` key holding a kubeconfig".into()))?;
    String::from_utf8(value.0.clone()).map_err(|_| err("the kubeconfig is not UTF-8".into()))
}
