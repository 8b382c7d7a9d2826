//! No confused deputy: a Secret a team factory's spec names is read with the factory's own
//! account, so naming another team's is refused, naming it, and loses nothing.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;

use crate::world::{World, allowed};

#[tokio::test]
async fn a_factory_reads_only_the_secrets_its_own_account_may_read() {
    let w = World::new("a_factory_reads_only_the_secrets_its_own_account_may_read", "").await;
    let x = w.x.clone();
    // Its own Secret (in its cicd namespace) works: cart is fetched with it and applied.
    w.wait_cart("test").await;
    allowed("cart applied", Api::<ConfigMap>::namespaced(w.admin(), &w.ns("test")).get("cart-config").await);

    // Another team's Secret with the same content: the operator could read it, the factory may not.
    let other = format!("{x}-other-cicd");
    w.put_git_secret(&w.admin(), &other).await;
    w.edit_team("secretRef: {name: cart-git}", &format!("secretRef: {{namespace: {other}, name: cart-git}}")).await;
    w.poke("test").await;
    let status = w
        .wait_env("test", "cart refused the other team's Secret", |s| {
            s.applications.iter().any(|a| a.name == "cart" && a.error.contains(&format!("{other}/cart-git")))
        })
        .await;
    let error = status.applications.iter().find(|a| a.name == "cart").map(|a| a.error.clone()).unwrap_or_default();
    assert!(error.starts_with("AuthenticationFailed: credentials secret"), "{error}");
    assert!(
        error.contains(&format!(
            "User \"system:serviceaccount:{}:{x}-shop\" cannot get resource \"secrets\"",
            factory_api::DEFAULT_TENANT_NAMESPACE
        )),
        "refused by RBAC as the factory's own account: {error}"
    );
    // Nothing applied before is lost.
    allowed("cart's objects stay", Api::<ConfigMap>::namespaced(w.admin(), &w.ns("test")).get("cart-config").await);
}
