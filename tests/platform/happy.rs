//! From an empty cluster to the platform's revision; a one-file change writes only what
//! changed; removed files are pruned, except what is annotated or was never ours.

use std::time::Duration;

use factory_api::Factory;
use factory_testkit::eventually;
use k8s_openapi::api::core::v1::{Event, Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, RoleBinding};
use k8s_openapi::api::scheduling::v1::PriorityClass;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use factory_integration_tests::{test_name, testdata};

use crate::fixture::{Platform, ready_message};

fn roles(prefix: &str, verbs: &str) -> String {
    testdata("platform/happy/roles.yaml", &[("prefix", prefix), ("verbs", verbs)])
}

fn fixture(name: &str, prefix: &str) -> String {
    testdata(&format!("platform/happy/{name}"), &[("prefix", prefix)])
}

#[tokio::test]
async fn platform_repository_converges_changes_and_prunes_safely() {
    let p = Platform::new(test_name!()).await;
    let x = p.ctx.prefix.clone();
    p.repo.write("cluster/roles.yaml", &roles(&x, "get")).expect("write");
    p.repo.write("cluster/priority.yaml", &fixture("priority.yaml", &x)).expect("write");
    p.repo.write("factories/shop.yaml", &fixture("team.yaml", &x)).expect("write");
    p.repo.write("classes/base/limits.yaml", &testdata("platform/happy/base-limits.yaml", &[])).expect("write");
    p.repo.write("cluster/widgets.yaml", &fixture("widgets.yaml", &x)).expect("write");
    p.repo.write("README.md", "not applied\n").expect("write");
    p.repo.commit("platform content").expect("commit");

    let first = the_first_revision_is_applied_in_order(&p).await;
    a_foreign_object_with_our_labels_is_created(&p).await;
    steady_state_writes_nothing_and_fetches_nothing(&p, &first).await;
    a_one_file_change_writes_only_that_object(&p, &first).await;
    hand_made_drift_is_corrected(&p).await;
    removed_files_are_pruned_except_annotated_and_foreign(&p).await;
}

/// The roles as first applied, to compare resource versions with later.
struct FirstApplied {
    viewer: ClusterRole,
    auditor: ClusterRole,
}

fn cluster_roles(p: &Platform) -> Api<ClusterRole> {
    Api::all(p.ctx.client.clone())
}

/// Everything in the revision is applied (a CRD before its objects), labelled, counted and
/// announced by an Event.
async fn the_first_revision_is_applied_in_order(p: &Platform) -> FirstApplied {
    let x = p.ctx.prefix.clone();
    p.create_factory(json!({})).await;
    let f = p.wait_ready("True", "Reconciled").await;
    let status = f.status.clone().expect("status");
    let head = p.repo.head().expect("head");
    assert_eq!(status.reconcile.last_applied_revision.as_deref(), Some(format!("main@sha1:{head}").as_str()));
    // 2 ClusterRoles + PriorityClass + (Factory, Namespace, ServiceAccount, RoleBinding,
    // preview ResourceQuota, owners Role and RoleBinding, the members' read ClusterRole, its
    // binding and their releases RoleBinding; no deploy account: the owners may not write the
    // test environment; the built-in cicd baseline's quota, limits and network policy: this
    // platform defines no `cicd` class) + CRD, Widget, Namespace, Task.
    assert_eq!(status.objects, Some(20), "{}", ready_message(&f));
    let widget = kube::api::ApiResource {
        group: format!("{x}.example.com"),
        version: "v1".into(),
        api_version: format!("{x}.example.com/v1"),
        kind: "Widget".into(),
        plural: "widgets".into(),
    };
    Api::<kube::api::DynamicObject>::all_with(p.ctx.client.clone(), &widget)
        .get("first")
        .await
        .expect("widget applied after its CRD");
    let task = kube::api::ApiResource {
        group: "tekton.dev".into(),
        version: "v1".into(),
        api_version: "tekton.dev/v1".into(),
        kind: "Task".into(),
        plural: "tasks".into(),
    };
    Api::<kube::api::DynamicObject>::namespaced_with(p.ctx.client.clone(), &format!("{x}-tools"), &task)
        .get("hello")
        .await
        .expect("tekton task");

    let client = p.ctx.client.clone();
    let roles_api = cluster_roles(p);
    let viewer = roles_api.get(&format!("{x}-viewer")).await.expect("viewer applied");
    let auditor = roles_api.get(&format!("{x}-auditor")).await.expect("auditor applied (variable substituted)");
    assert_eq!(
        viewer.metadata.labels.as_ref().and_then(|l| l.get("app.kubernetes.io/managed-by")).map(String::as_str),
        Some("factory-operator")
    );
    Api::<PriorityClass>::all(client.clone()).get(&format!("{x}-high")).await.expect("priority class");
    let shop = Api::<Factory>::all(client.clone()).get(&format!("{x}-shop")).await.expect("team factory built");
    assert_eq!(shop.metadata.labels.as_ref().and_then(|l| l.get("factories.dev/platform")), Some(&p.name));
    let cicd = format!("{x}-shop-cicd");
    Api::<Namespace>::all(client.clone()).get(&cicd).await.expect("cicd namespace");
    Api::<ServiceAccount>::namespaced(client.clone(), factory_api::DEFAULT_TENANT_NAMESPACE)
        .get(&format!("{x}-shop"))
        .await
        .expect("the team's account, in the tenant namespace");
    let binding =
        Api::<RoleBinding>::namespaced(client.clone(), &cicd).get("factory-tenant").await.expect("tenant rights");
    assert_eq!(binding.role_ref.name, "admin");

    // An Event says what was applied.
    let events: Api<Event> = Api::all(client.clone());
    eventually("an Applied event", Duration::from_secs(20), || async {
        let list = events.list(&ListParams::default().fields(&format!("involvedObject.name={}", p.name))).await?;
        anyhow::Ok(list.items.iter().any(|e| e.reason.as_deref() == Some("Applied")).then_some(()))
    })
    .await
    .expect("event");

    FirstApplied { viewer, auditor }
}

/// A foreign object carrying our labels is not ours: it must survive every prune.
async fn a_foreign_object_with_our_labels_is_created(p: &Platform) {
    let x = &p.ctx.prefix;
    let foreign = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": format!("{x}-foreign"), "labels": {"app.kubernetes.io/managed-by": "factory-operator",
            "factories.dev/applied-by": format!("factory.{}", p.name)}}, "rules": []});
    cluster_roles(p)
        .create(&PostParams::default(), &serde_json::from_value(foreign).expect("role"))
        .await
        .expect("foreign");
}

/// A reconcile with no change leaves every object as it was, and costs git only a ref listing,
/// no pack negotiation.
async fn steady_state_writes_nothing_and_fetches_nothing(p: &Platform, first: &FirstApplied) {
    let x = &p.ctx.prefix;
    let packs = p.http.upload_packs();
    p.poke().await;
    eventually("a no-change reconcile", Duration::from_secs(30), || async {
        let f = p.factories().get(&p.name).await?;
        anyhow::Ok(ready_message(&f).contains("0 created, 0 updated, 20 unchanged").then_some(()))
    })
    .await
    .expect("steady state");
    assert_eq!(p.http.upload_packs(), packs, "a poll with nothing new must not fetch");
    let viewer_again = cluster_roles(p).get(&format!("{x}-viewer")).await.expect("viewer");
    assert_eq!(viewer_again.metadata.resource_version, first.viewer.metadata.resource_version);
}

/// A commit changing one file writes only the changed object.
async fn a_one_file_change_writes_only_that_object(p: &Platform, first: &FirstApplied) {
    let x = p.ctx.prefix.clone();
    let client = p.ctx.client.clone();
    let roles_api = cluster_roles(p);
    let pcs: Api<PriorityClass> = Api::all(client.clone());
    let high = pcs.get(&format!("{x}-high")).await.expect("priority class");
    p.repo.write("cluster/roles.yaml", &roles(&x, "get, list")).expect("write");
    p.repo.commit("viewer may list").expect("commit");
    p.poke().await;
    p.wait_ready("True", "Reconciled").await;
    let viewer_new = eventually("the viewer update", Duration::from_secs(30), || async {
        let r = roles_api.get(&format!("{x}-viewer")).await?;
        let verbs = r.rules.clone().unwrap_or_default().first().map(|r| r.verbs.clone()).unwrap_or_default();
        anyhow::Ok((verbs == ["get", "list"]).then_some(r))
    })
    .await
    .expect("updated");
    assert_ne!(viewer_new.metadata.resource_version, first.viewer.metadata.resource_version);
    let auditor_new = roles_api.get(&format!("{x}-auditor")).await.expect("auditor");
    assert_eq!(
        auditor_new.metadata.resource_version, first.auditor.metadata.resource_version,
        "untouched objects are not written"
    );
    let high_new = pcs.get(&format!("{x}-high")).await.expect("priority class");
    assert_eq!(high_new.metadata.resource_version, high.metadata.resource_version, "untouched objects are not written");
}

/// Hand-made drift is corrected on the next reconcile.
async fn hand_made_drift_is_corrected(p: &Platform) {
    let x = &p.ctx.prefix;
    let roles_api = cluster_roles(p);
    let drift = json!({"rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]});
    roles_api.patch(&format!("{x}-viewer"), &PatchParams::default(), &Patch::Merge(&drift)).await.expect("drift");
    p.poke().await;
    eventually("drift corrected", Duration::from_secs(30), || async {
        let r = roles_api.get(&format!("{x}-viewer")).await?;
        anyhow::Ok(
            (r.rules.unwrap_or_default().first().map(|r| r.verbs.clone()) == Some(vec!["get".into(), "list".into()]))
                .then_some(()),
        )
    })
    .await
    .expect("drift corrected");
}

/// A removed file is pruned; an object annotated `prune: disabled` is kept; the foreign one too.
async fn removed_files_are_pruned_except_annotated_and_foreign(p: &Platform) {
    let x = p.ctx.prefix.clone();
    let client = p.ctx.client.clone();
    let roles_api = cluster_roles(p);
    roles_api
        .patch(
            &format!("{x}-auditor"),
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"annotations": {"factories.dev/prune": "disabled"}}})),
        )
        .await
        .expect("annotate");
    p.repo.remove("cluster/priority.yaml").expect("remove");
    p.repo.write("cluster/roles.yaml", roles(&x, "get, list").split("---").next().unwrap_or_default()).expect("write");
    p.repo.commit("drop priority class and auditor").expect("commit");
    p.poke().await;
    let f = p.wait_ready("True", "Reconciled").await;
    assert!(ready_message(&f).contains("1 pruned"), "{}", ready_message(&f));
    assert_eq!(f.status.as_ref().and_then(|s| s.objects), Some(18));
    assert!(
        Api::<PriorityClass>::all(client.clone()).get_opt(&format!("{x}-high")).await.expect("get").is_none(),
        "pruned"
    );
    assert!(roles_api.get_opt(&format!("{x}-auditor")).await.expect("get").is_some(), "prune: disabled is honoured");
    assert!(
        roles_api.get_opt(&format!("{x}-foreign")).await.expect("get").is_some(),
        "foreign objects are never pruned"
    );
}
