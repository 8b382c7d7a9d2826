//! The control plane is a real one: the controller-manager deletes namespaces and collects
//! garbage, and RBAC judges users and service accounts.

use factory_integration_tests::test_name;
use std::time::Duration;

use factory_api::Factory;
use factory_testkit::{TestContext, eventually};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;

fn from_json<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
    serde_json::from_value(value).expect("test object deserialises")
}

#[tokio::test]
async fn a_deleted_namespace_and_its_contents_disappear() {
    let ctx = TestContext::new(test_name!()).await;
    let ns = ctx.name("doomed");
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    namespaces.create(&PostParams::default(), &from_json(json!({"metadata": {"name": ns}}))).await.expect("create");
    let cms: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
    cms.create(&PostParams::default(), &from_json(json!({"metadata": {"name": "content"}, "data": {"k": "v"}})))
        .await
        .expect("configmap");
    namespaces.delete(&ns, &DeleteParams::default()).await.expect("delete");
    // Only the namespace controller empties the namespace and removes its finalizer.
    eventually("namespace to be gone", Duration::from_secs(60), || async {
        Ok::<_, kube::Error>(namespaces.get_opt(&ns).await?.is_none().then_some(()))
    })
    .await
    .expect("the namespace controller deletes the namespace");
}

#[tokio::test]
async fn owner_references_are_garbage_collected() {
    let ctx = TestContext::new(test_name!()).await;
    let ns = ctx.name("gc");
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    namespaces.create(&PostParams::default(), &from_json(json!({"metadata": {"name": ns}}))).await.expect("create");
    let cms: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
    let owner =
        cms.create(&PostParams::default(), &from_json(json!({"metadata": {"name": "owner"}}))).await.expect("owner");
    let uid = owner.metadata.uid.expect("uid");
    cms.create(
        &PostParams::default(),
        &from_json(json!({"metadata": {"name": "dependent", "ownerReferences": [
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid}]}})),
    )
    .await
    .expect("dependent");
    cms.delete("owner", &DeleteParams::default()).await.expect("delete owner");
    eventually("dependent to be collected", Duration::from_secs(60), || async {
        Ok::<_, kube::Error>(cms.get_opt("dependent").await?.is_none().then_some(()))
    })
    .await
    .expect("the garbage collector removes the dependent");
}

#[tokio::test]
async fn rbac_judges_users_and_service_accounts() {
    let ctx = TestContext::new(test_name!()).await;
    let ns = ctx.name("rbac");
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    namespaces.create(&PostParams::default(), &from_json(json!({"metadata": {"name": ns}}))).await.expect("create");

    // A user with no bindings is refused, through client-certificate authentication.
    let mallory = ctx.client_as_user("mallory", &["team-nobody"]).await.expect("client");
    let err = Api::<Factory>::all(mallory.clone()).list(&ListParams::default()).await.expect_err("refused");
    assert!(matches!(&err, kube::Error::Api(s) if s.code == 403), "{err}");
    assert!(err.to_string().contains("User \"mallory\" cannot list resource \"factories\""), "{err}");

    // Binding `edit` to the user's group in one namespace allows that namespace only: this
    // also proves the clusterrole-aggregation controller filled in the `edit` role.
    let bindings: Api<RoleBinding> = Api::namespaced(ctx.client.clone(), &ns);
    bindings
        .create(
            &PostParams::default(),
            &from_json(json!({"metadata": {"name": "team-edit"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "team-nobody"}]})),
        )
        .await
        .expect("binding");
    let cms: Api<ConfigMap> = Api::namespaced(mallory.clone(), &ns);
    eventually("edit to take effect", Duration::from_secs(30), || async {
        Ok::<_, kube::Error>(cms.list(&ListParams::default()).await.ok().map(|_| ()))
    })
    .await
    .expect("edit in own namespace");
    cms.create(&PostParams::default(), &from_json(json!({"metadata": {"name": "mine"}}))).await.expect("create cm");
    let elsewhere: Api<ConfigMap> = Api::namespaced(mallory, "default");
    let err = elsewhere.create(&PostParams::default(), &from_json(json!({"metadata": {"name": "x"}}))).await;
    assert!(matches!(err, Err(kube::Error::Api(ref s)) if s.code == 403), "{err:?}");

    // A service account, impersonated the way the operator applies tenant content.
    let sas: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), &ns);
    sas.create(&PostParams::default(), &from_json(json!({"metadata": {"name": "factory"}}))).await.expect("sa");
    let sa = ctx.client_as_service_account(&ns, "factory").await.expect("sa client");
    let err = Api::<ConfigMap>::namespaced(sa, &ns).list(&ListParams::default()).await.expect_err("refused");
    assert!(err.to_string().contains(&format!("system:serviceaccount:{ns}:factory")), "{err}");
}
