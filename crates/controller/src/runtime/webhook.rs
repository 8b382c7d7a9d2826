//! The webhook receiver: git hosts announce pushes, and every factory whose source is that
//! repository is reconciled at once instead of at its next poll. GitHub and Gitea payloads
//! are verified by their HMAC-SHA256 signature, GitLab's by its token; anything else is
//! refused with 401 before its body is even parsed. A verified push annotates the matching
//! factories (`factories.dev/requested-at`), which the leader's watch turns into a reconcile —
//! so every replica, standby included, can receive pushes behind one Service.
//!
//! `POST /hooks/git` is verified with the operator's shared secret and may reconcile any
//! factory using the pushed repository; `POST /hooks/git/<factory>` with that factory's own
//! `webhookSecretRef` (read with the factory's rights), and reconciles that factory alone, so a
//! team's push can trigger its own factory only.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use factory_api::{Factory, labels};
use hmac::{Hmac, Mac};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::Value;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use tracing::{info, warn};

use crate::services::context::Context;

/// What the receiver needs.
#[derive(Clone)]
pub struct Receiver {
    /// Shared secret: the HMAC key for GitHub/Gitea, the token for GitLab.
    pub secret: String,
    /// The operator's context: its client finds and annotates the factories a push concerns,
    /// and a factory's own identity reads its webhook Secret.
    pub ctx: Arc<Context>,
}

/// The router: `POST /hooks/git` and `POST /hooks/git/{factory}`.
pub fn router(receiver: Receiver) -> Router {
    Router::new()
        .route("/hooks/git", post(receive))
        .route("/hooks/git/{factory}", post(receive_for))
        .with_state(receiver)
}

/// Which provider signed the request, if the signature or token is right.
fn verify(headers: &HeaderMap, body: &[u8], secret: &str) -> Result<&'static str, &'static str> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let hmac_ok = |hex_sig: &str| {
        let Ok(sig) = hex::decode(hex_sig.trim()) else { return false };
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else { return false };
        mac.update(body);
        mac.verify_slice(&sig).is_ok()
    };
    // Gitea sends GitHub's header too; its own says which host it is.
    if let Some(sig) = header("x-gitea-signature") {
        return if hmac_ok(sig) { Ok("gitea") } else { Err("bad Gitea signature") };
    }
    if let Some(sig) = header("x-hub-signature-256") {
        return if sig.strip_prefix("sha256=").is_some_and(hmac_ok) {
            Ok("github")
        } else {
            Err("bad GitHub signature")
        };
    }
    if let Some(token) = header("x-gitlab-token") {
        return if bool::from(token.as_bytes().ct_eq(secret.as_bytes())) {
            Ok("gitlab")
        } else {
            Err("bad GitLab token")
        };
    }
    Err("no X-Hub-Signature-256, X-Gitea-Signature or X-Gitlab-Token header")
}

/// `https://Host/org/repo.git/` and `https://host/org/repo` name the same repository.
pub fn normalise_url(url: &str) -> String {
    let url = url.trim().trim_end_matches('/').trim_end_matches(".git");
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
            let host = host.rsplit('@').next().unwrap_or(host).to_ascii_lowercase();
            format!("{}://{host}/{path}", scheme.to_ascii_lowercase())
        }
        None => url.to_string(),
    }
}

/// Every repository URL a push payload mentions (GitHub, Gitea and GitLab shapes).
fn payload_urls(payload: &Value) -> BTreeSet<String> {
    let mut urls = BTreeSet::new();
    for object in ["repository", "project"] {
        for key in ["clone_url", "html_url", "git_http_url", "http_url", "url", "ssh_url", "git_ssh_url"] {
            if let Some(url) = payload.get(object).and_then(|o| o.get(key)).and_then(Value::as_str) {
                urls.insert(normalise_url(url));
            }
        }
    }
    urls
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> (StatusCode, String) {
    let provider = match verify(&headers, &body, &receiver.secret) {
        Ok(p) => p,
        Err(why) => {
            warn!(why, "webhook refused");
            return (StatusCode::UNAUTHORIZED, format!("refused: {why}\n"));
        }
    };
    let Ok(payload) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "body is not JSON\n".into());
    };
    let urls = payload_urls(&payload);
    let api: Api<Factory> = Api::all(receiver.ctx.client.clone());
    let factories = match api.list(&ListParams::default()).await {
        Ok(list) => list.items,
        Err(e) => {
            warn!(error = %e, "webhook: cannot list factories");
            return (StatusCode::SERVICE_UNAVAILABLE, format!("cannot list factories: {e}\n"));
        }
    };
    let triggered = trigger(&api, factories, &urls).await;
    info!(provider, ?urls, ?triggered, "webhook received");
    accepted(&triggered)
}

/// `POST /hooks/git/{factory}`: verified with that factory's own secret; reconciles it alone.
async fn receive_for(
    State(receiver): State<Receiver>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let api: Api<Factory> = Api::all(receiver.ctx.client.clone());
    let factory = match api.get_opt(&name).await {
        Ok(Some(f)) => f,
        Ok(None) => return (StatusCode::NOT_FOUND, format!("no factory {name}\n")),
        Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, format!("cannot read factory {name}: {e}\n")),
    };
    let secret = match factory_secret(&receiver, &factory).await {
        Ok(secret) => secret,
        Err((status, why)) => {
            warn!(factory = %name, why, "webhook refused");
            return (status, format!("{why}\n"));
        }
    };
    let provider = match verify(&headers, &body, &secret) {
        Ok(p) => p,
        Err(why) => {
            warn!(factory = %name, why, "webhook refused");
            return (StatusCode::UNAUTHORIZED, format!("refused: {why}\n"));
        }
    };
    let Ok(payload) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "body is not JSON\n".into());
    };
    let urls = payload_urls(&payload);
    let triggered = trigger(&api, vec![factory], &urls).await;
    info!(provider, factory = %name, ?urls, ?triggered, "webhook received");
    accepted(&triggered)
}

/// The `token` of `factory`'s `webhookSecretRef`, read with the factory's own rights.
async fn factory_secret(receiver: &Receiver, factory: &Factory) -> Result<String, (StatusCode, String)> {
    let name = kube::ResourceExt::name_any(factory);
    let Some(secret_ref) = &factory.spec.webhook_secret_ref else {
        return Err((StatusCode::NOT_FOUND, format!("factory {name} has no webhookSecretRef")));
    };
    let unavailable = |e: &dyn std::fmt::Display| (StatusCode::SERVICE_UNAVAILABLE, e.to_string());
    let (reader, default_namespace) = receiver.ctx.identity(factory).map_err(|e| unavailable(&e))?;
    let namespace = secret_ref.namespace.clone().unwrap_or(default_namespace);
    let secret = Api::<Secret>::namespaced(reader, &namespace).get(&secret_ref.name).await.map_err(|e| {
        unavailable(&format!("cannot read {namespace}/{}: {}", secret_ref.name, factory_apply::api_message(&e)))
    })?;
    let token =
        secret.data.unwrap_or_default().remove("token").map(|b| String::from_utf8_lossy(&b.0).trim().to_string());
    token.filter(|t| !t.is_empty()).ok_or_else(|| {
        (StatusCode::SERVICE_UNAVAILABLE, format!("Secret {namespace}/{} has no key `token`", secret_ref.name))
    })
}

fn accepted(triggered: &[String]) -> (StatusCode, String) {
    (StatusCode::ACCEPTED, format!("{{\"triggered\":{}}}\n", serde_json::to_string(triggered).unwrap_or_default()))
}

/// Annotates each of `factories` that uses a repository of `urls`; returns their names.
async fn trigger(api: &Api<Factory>, factories: Vec<Factory>, urls: &BTreeSet<String>) -> Vec<String> {
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let mut triggered = Vec::new();
    for factory in factories {
        // The platform repository of a platform factory, or any application repository of a
        // team factory (whose reconcile keeps branch previews and re-reconciles its environments).
        let mut sources =
            factory.spec.source.iter().chain(factory.spec.applications.iter().flatten().map(|a| &a.source));
        if sources.any(|s| urls.contains(&normalise_url(&s.url))) {
            let name = kube::ResourceExt::name_any(&factory);
            let patch = serde_json::json!({"metadata": {"annotations": {labels::REQUESTED_AT: now}}});
            match api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => triggered.push(name),
                Err(e) => warn!(error = %e, factory = %name, "webhook: cannot request a reconcile"),
            }
        }
    }
    triggered
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(body: &[u8], secret: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }

    #[test]
    fn signatures_and_tokens_are_checked() {
        let body = br#"{"repository":{"clone_url":"https://x/a.git"}}"#;
        let mut h = HeaderMap::new();
        h.insert("x-hub-signature-256", format!("sha256={}", sign(body, "s")).parse().unwrap());
        assert_eq!(verify(&h, body, "s"), Ok("github"));
        assert!(verify(&h, body, "other").is_err());
        assert!(verify(&h, b"tampered", "s").is_err());
        let mut h = HeaderMap::new();
        h.insert("x-gitea-signature", sign(body, "s").parse().unwrap());
        assert_eq!(verify(&h, body, "s"), Ok("gitea"));
        let mut h = HeaderMap::new();
        h.insert("x-gitlab-token", "s".parse().unwrap());
        assert_eq!(verify(&h, body, "s"), Ok("gitlab"));
        assert!(verify(&HeaderMap::new(), body, "s").is_err());
    }

    #[test]
    fn urls_are_compared_without_case_credentials_or_suffix() {
        assert_eq!(normalise_url("HTTPS://Git.Example.com/org/repo.git/"), "https://git.example.com/org/repo");
        assert_eq!(normalise_url("https://user:pw@git.example.com/org/repo"), "https://git.example.com/org/repo");
        let payload = serde_json::json!({"project": {"git_http_url": "https://git.example.com/org/repo.git"}});
        assert!(payload_urls(&payload).contains("https://git.example.com/org/repo"));
    }
}
