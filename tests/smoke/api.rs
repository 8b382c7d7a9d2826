//! The CRDs install, become Established, round-trip objects and read well in kubectl.

use factory_integration_tests::test_name;
use std::time::Duration;

use factory_api::{Environment, Factory, PreviewEnvironment};
use factory_testkit::{TestContext, eventually};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

/// A platform factory and a team factory shaped like the sketch in MISSION.md.
pub fn platform_factory(name: &str) -> Factory {
    serde_json::from_value(json!({
        "apiVersion": "factories.dev/v1alpha1", "kind": "Factory", "metadata": {"name": name},
        "spec": {
            "type": "Environments",
            "source": {"url": "https://git.example.com/platform.git", "ref": {"branch": "main"},
                       "secretRef": {"namespace": "factory-system", "name": "platform-git"}, "interval": "1m"},
            "serviceAccount": {"namespace": "factory-system", "name": "platform"},
            "cluster": {"path": "cluster/"},
            "environmentClasses": [
                {"name": "base", "path": "classes/base/"},
                {"name": "prod", "path": "classes/prod/", "extends": ["base"]},
                {"name": "preview", "path": "classes/preview/", "extends": ["base"]}
            ],
            "factories": {"path": "factories/"},
            "credentials": [{"name": "shop-db", "from": {"namespace": "platform-secrets", "name": "shop-db"},
                             "to": {"factory": "shop", "environments": ["stage", "prod"]}}],
            "images": {"path": "images/pipelines/", "caPath": "images/ca.crt", "schedule": "168h",
                       "images": [{"name": "base", "pipeline": "build-image", "context": "images/base"}]}
        }
    }))
    .expect("valid platform factory")
}

/// A team factory shaped like the sketch in MISSION.md.
pub fn team_factory(name: &str) -> Factory {
    serde_json::from_value(json!({
        "apiVersion": "factories.dev/v1alpha1", "kind": "Factory", "metadata": {"name": name},
        "spec": {
            "type": "Applications",
            "owners": {"groups": ["team-shop"]},
            "environments": [
                {"name": "test", "class": "base", "access": [{"clusterRole": "edit"}]},
                {"name": "stage", "class": "base"},
                {"name": "prod", "class": "prod", "protected": true, "access": [{"clusterRole": "view"}],
                 "quota": {"requests.cpu": "8", "limits.memory": "16Gi"}}
            ],
            "previews": {"class": "preview", "ttl": "72h", "max": 10, "branches": "feature/*"},
            "applications": [{"name": "cart",
                "source": {"url": "https://git.example.com/cart.git", "ref": {"branch": "main"}},
                "config": {"path": "deploy/"}, "pipelines": {"path": ".tekton/"}}]
        }
    }))
    .expect("valid team factory")
}

#[tokio::test]
async fn crds_are_installed_and_established() {
    let ctx = TestContext::new(test_name!()).await;
    let crds: Api<CustomResourceDefinition> = Api::all(ctx.client.clone());
    for name in [
        "factories.factories.dev",
        "environments.factories.dev",
        "previewenvironments.factories.dev",
        "pipelines.tekton.dev",
        "tasks.tekton.dev",
        "pipelineruns.tekton.dev",
        "eventlisteners.triggers.tekton.dev",
        "triggerbindings.triggers.tekton.dev",
        "triggertemplates.triggers.tekton.dev",
    ] {
        let crd = crds.get(name).await.unwrap_or_else(|e| panic!("CRD {name} missing: {e}"));
        let established = crd
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        assert!(established, "CRD {name} is not Established");
    }
    let version = ctx.client.apiserver_version().await.expect("server version");
    eprintln!("kube-apiserver reports {}", version.git_version);
    assert_eq!(format!("{}.{}", version.major, version.minor), "1.37");
}

#[tokio::test]
async fn factories_environments_and_previews_round_trip() {
    let ctx = TestContext::new(test_name!()).await;
    let factories: Api<Factory> = Api::all(ctx.client.clone());
    for factory in [platform_factory(&ctx.name("platform")), team_factory(&ctx.name("shop"))] {
        let created = factories.create(&PostParams::default(), &factory).await.expect("create factory");
        assert_eq!(created.spec, factory.spec, "the API server must keep every field");
    }

    let environments: Api<Environment> = Api::all(ctx.client.clone());
    let env: Environment = serde_json::from_value(json!({
        "apiVersion": "factories.dev/v1alpha1", "kind": "Environment", "metadata": {"name": ctx.name("shop-prod")},
        "spec": {"factory": ctx.name("shop"), "namespace": ctx.name("shop-prod"), "class": "prod", "protected": true,
                 "driftPolicy": "Report", "quota": {"requests.cpu": "8"}}
    }))
    .expect("valid environment");
    let created = environments.create(&PostParams::default(), &env).await.expect("create environment");
    assert_eq!(created.spec, env.spec);

    let ns = ctx.name("shop-cicd");
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    namespaces
        .create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": ns}})).expect("namespace"))
        .await
        .expect("create namespace");
    let previews: Api<PreviewEnvironment> = Api::namespaced(ctx.client.clone(), &ns);
    let preview: PreviewEnvironment = serde_json::from_value(json!({
        "apiVersion": "factories.dev/v1alpha1", "kind": "PreviewEnvironment",
        "metadata": {"name": "cart-feature-login"},
        "spec": {"application": "cart", "ref": {"branch": "feature/login"}, "ttl": "24h"}
    }))
    .expect("valid preview");
    let created = previews.create(&PostParams::default(), &preview).await.expect("create preview");
    assert_eq!(created.spec, preview.spec);

    // The status subresource takes status writes and ignores status in main-resource writes.
    let status = json!({"status": {"observedGeneration": 1, "phase": "Ready", "namespace": "shop-pr-1",
        "expiresAt": "2030-01-01T00:00:00Z", "sourceRevision": format!("feature/login@sha1:{}", "a".repeat(40)),
        "conditions": [{"type": "Ready", "status": "True", "reason": "Reconciled", "message": "ok",
                        "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
    let patched = previews
        .patch_status("cart-feature-login", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("patch status");
    let got = patched.status.expect("status written");
    assert_eq!(got.namespace.as_deref(), Some("shop-pr-1"));
    assert_eq!(got.reconcile.conditions[0].reason, "Reconciled");
}

#[tokio::test]
async fn kubectl_reads_well() {
    let ctx = TestContext::new(test_name!()).await;
    let explain = ctx.kubectl(&["explain", "factory.spec"]).expect("kubectl explain");
    for text in ["Environments only: the platform repository", "Applications only: the permanent environments"] {
        assert!(explain.contains(text), "kubectl explain factory.spec lacks {text:?}:\n{explain}");
    }
    let explain = ctx.kubectl(&["explain", "previewenvironment.spec.ttl"]).expect("kubectl explain ttl");
    assert!(explain.contains("Lifetime from creation"), "{explain}");

    let factories: Api<Factory> = Api::all(ctx.client.clone());
    let name = ctx.name("columns");
    factories.create(&PostParams::default(), &team_factory(&name)).await.expect("create factory");
    let table = ctx.kubectl(&["get", "factories", &name]).expect("kubectl get factories");
    let header: Vec<&str> = table.lines().next().unwrap_or("").split_whitespace().collect();
    assert_eq!(header, ["NAME", "TYPE", "READY", "REVISION", "ENVIRONMENTS", "PREVIEWS", "RUNS", "AGE"], "{table}");
    // Short names and the category resolve.
    eventually("short names in discovery", Duration::from_secs(10), || async {
        let out = ctx.kubectl(&["get", "fac,fenv,pe", "-A", "-o", "name"])?;
        let all = ctx.kubectl(&["get", "factory-operator", "-A", "-o", "name"])?;
        anyhow::Ok((out.contains(&name) && all.contains(&name)).then_some(()))
    })
    .await
    .expect("short names and category work");
}
