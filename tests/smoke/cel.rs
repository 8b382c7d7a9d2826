//! Every validation rule of the API rejects its bad input, in the real API server, with a
//! message that says what is wrong.

use factory_api::{Environment, Factory, PreviewEnvironment};
use factory_integration_tests::test_name;
use factory_testkit::TestContext;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::api::{platform_factory, team_factory};

/// Creating `object` of kind `K` must fail with a message containing `expected`. The object
/// is sent untyped, so that values the Rust types could not even hold reach the API server.
async fn rejected<K>(api: &Api<K>, object: Value, expected: &str)
where
    K: kube::Resource<DynamicType = ()> + Clone,
{
    let resource = ApiResource::erase::<K>(&());
    let untyped: Api<DynamicObject> = match object.pointer("/metadata/namespace").and_then(Value::as_str) {
        Some(ns) => Api::namespaced_with(api.clone().into_client(), ns, &resource),
        None => Api::all_with(api.clone().into_client(), &resource),
    };
    let dynamic: DynamicObject = serde_json::from_value(object.clone()).expect("test object is an object");
    match untyped.create(&PostParams::default(), &dynamic).await {
        Ok(_) => panic!("the API server accepted an invalid object; expected {expected:?}:\n{object:#}"),
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "{status:?}");
            assert!(status.message.contains(expected), "expected {expected:?} in: {}", status.message);
        }
        Err(other) => panic!("unexpected error: {other}"),
    }
}

fn with(mut base: Value, pointer: &str, value: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').expect("pointer with a parent");
    base.pointer_mut(parent).expect("parent exists")[key] = value;
    base
}

fn without(mut base: Value, pointer: &str) -> Value {
    let (parent, key) = pointer.rsplit_once('/').expect("pointer with a parent");
    base.pointer_mut(parent).and_then(Value::as_object_mut).expect("parent object").remove(key);
    base
}

#[tokio::test]
async fn factory_rules_reject_bad_specs() {
    let ctx = TestContext::new(test_name!()).await;
    let api: Api<Factory> = Api::all(ctx.client.clone());
    let platform = serde_json::to_value(platform_factory(&ctx.name("p"))).expect("json");
    let team = serde_json::to_value(team_factory(&ctx.name("t"))).expect("json");

    let cases: Vec<(Value, &str)> = vec![
        (
            with(team.clone(), "/metadata/name", json!(format!("{}-{}", ctx.prefix, "a".repeat(40)))),
            "at most 30 characters",
        ),
        (with(team.clone(), "/metadata/name", json!(format!("{}.dots", ctx.prefix))), "DNS-1123 label"),
        (with(team.clone(), "/spec/cluster", json!({"path": "cluster/"})), "only allowed when type is Environments"),
        (
            with(platform.clone(), "/spec/environments", json!([{"name": "test"}])),
            "only allowed when type is Applications",
        ),
        (without(platform.clone(), "/spec/serviceAccount"), "needs source and serviceAccount"),
        (
            with(platform.clone(), "/spec/source/ref", json!({"branch": "main", "tag": "v1"})),
            "exactly one of branch, tag or commit",
        ),
        (with(platform.clone(), "/spec/source/ref", json!({"commit": "abc"})), "spec.source.ref.commit"),
        (with(platform.clone(), "/spec/source/url", json!("ftp://example.com/x.git")), "url must be an https://"),
        (with(platform.clone(), "/spec/source/interval", json!("1s")), "interval must be between 10s and 24h"),
        (with(platform.clone(), "/spec/cluster/path", json!("cluster/../../etc")), "must not contain '..'"),
        (with(platform.clone(), "/spec/cluster/path", json!("/etc")), "must be relative"),
        (
            with(
                platform.clone(),
                "/spec/environmentClasses",
                json!([{"name": "base", "path": "b/", "extends": ["base"]}]),
            ),
            "a class cannot extend itself",
        ),
        (
            with(
                platform.clone(),
                "/spec/environmentClasses",
                json!([{"name": "prod", "path": "p/", "extends": ["nope"]}]),
            ),
            "every class named in extends must be defined",
        ),
        (with(team.clone(), "/spec/previews/ttl", json!("5m")), "ttl must be between 10m and 720h"),
        (with(team.clone(), "/spec/previews/ttl", json!("3d")), "spec.previews.ttl"),
        (with(team.clone(), "/spec/previews/max", json!(1000)), "spec.previews.max"),
        (with(team.clone(), "/spec/variables", json!({"1bad": "x"})), "variable names must match"),
        (with(team.clone(), "/spec/environments", json!([{"name": "test"}, {"name": "test"}])), "Duplicate value"),
        (with(team.clone(), "/spec/environments", json!([{"name": "Prod_1"}])), "spec.environments[0].name"),
        (with(team.clone(), "/spec/type", json!("Other")), "Unsupported value"),
    ];
    for (object, expected) in cases {
        rejected(&api, object, expected).await;
    }
}

#[tokio::test]
async fn protected_environment_cannot_be_dropped_in_one_change() {
    let ctx = TestContext::new(test_name!()).await;
    let api: Api<Factory> = Api::all(ctx.client.clone());
    let name = ctx.name("shop");
    api.create(&PostParams::default(), &team_factory(&name)).await.expect("create");
    let params = PatchParams::default();

    // Removing the protected `prod` while it is protected is refused…
    let drop_prod = json!({"spec": {"environments": [{"name": "test"}, {"name": "stage"}]}});
    let err = api.patch(&name, &params, &Patch::Merge(&drop_prod)).await.expect_err("must be refused");
    assert!(err.to_string().contains("a protected environment cannot be removed"), "{err}");
    // …and so is removing every environment at once.
    let drop_all = json!({"spec": {"environments": null}});
    let err = api.patch(&name, &params, &Patch::Merge(&drop_all)).await.expect_err("must be refused");
    assert!(err.to_string().contains("a protected environment cannot be removed"), "{err}");
    // Unprotecting first, then removing, is two deliberate changes and both are accepted.
    let unprotect =
        json!({"spec": {"environments": [{"name": "test"}, {"name": "stage"}, {"name": "prod", "protected": false}]}});
    api.patch(&name, &params, &Patch::Merge(&unprotect)).await.expect("unprotect");
    api.patch(&name, &params, &Patch::Merge(&drop_prod)).await.expect("remove after unprotecting");

    let err = api
        .patch(&name, &params, &Patch::Merge(&json!({"spec": {"type": "Environments"}})))
        .await
        .expect_err("type change refused");
    assert!(err.to_string().contains("type is immutable"), "{err}");
}

#[tokio::test]
async fn environment_and_preview_rules_reject_bad_specs() {
    let ctx = TestContext::new(test_name!()).await;
    let envs: Api<Environment> = Api::all(ctx.client.clone());
    let name = ctx.name("shop-test");
    let env = json!({"apiVersion": "factories.dev/v1alpha1", "kind": "Environment", "metadata": {"name": name},
                     "spec": {"factory": ctx.name("shop"), "namespace": name, "class": "base"}});
    rejected(&envs, with(env.clone(), "/spec/namespace", json!("Not_A_Label")), "spec.namespace").await;
    rejected(&envs, with(env.clone(), "/spec/driftPolicy", json!("Ignore")), "Unsupported value").await;
    envs.create(&PostParams::default(), &serde_json::from_value(env).expect("env")).await.expect("create env");
    let err = envs
        .patch(&name, &PatchParams::default(), &Patch::Merge(&json!({"spec": {"namespace": "elsewhere"}})))
        .await
        .expect_err("namespace change refused");
    assert!(err.to_string().contains("namespace is immutable"), "{err}");

    let ns = ctx.name("shop-cicd");
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    namespaces
        .create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": ns}})).expect("ns"))
        .await
        .expect("namespace");
    let previews: Api<PreviewEnvironment> = Api::namespaced(ctx.client.clone(), &ns);
    let preview = json!({"apiVersion": "factories.dev/v1alpha1", "kind": "PreviewEnvironment",
                         "metadata": {"name": "p1", "namespace": ns},
                         "spec": {"application": "cart", "ref": {"branch": "feature/x"}, "ttl": "24h"}});
    rejected(&previews, with(preview.clone(), "/spec/ttl", json!("1m")), "ttl must be between 10m and 720h").await;
    rejected(&previews, with(preview.clone(), "/spec/ttl", json!("800h")), "ttl must be between 10m and 720h").await;
    rejected(&previews, with(preview.clone(), "/spec/ref", json!({})), "exactly one of branch, tag or commit").await;
    previews.create(&PostParams::default(), &serde_json::from_value(preview).expect("preview")).await.expect("create");
    let err = previews
        .patch("p1", &PatchParams::default(), &Patch::Merge(&json!({"spec": {"application": "other"}})))
        .await
        .expect_err("application change refused");
    assert!(err.to_string().contains("application is immutable"), "{err}");
}
