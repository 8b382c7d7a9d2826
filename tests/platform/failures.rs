//! Bad input gets a clear error on status and in an Event, and nothing already applied is
//! lost or pruned: invalid YAML, an unknown kind, a forbidden object, an emptied path, an
//! unreachable repository, an authentication failure; a force-push is followed.

use std::time::Duration;

use factory_testkit::eventually;
use k8s_openapi::api::core::v1::{ConfigMap, Event};
use k8s_openapi::api::rbac::v1::ClusterRole;
use k8s_openapi::api::scheduling::v1::PriorityClass;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

use factory_integration_tests::{Tree, test_name, testdata, testdata_tree};

use crate::fixture::{Platform, ready_message};

/// Enough for this test's content, and nothing more: no RBAC objects, no bindings.
async fn limited_role(p: &Platform) -> String {
    let name = p.ctx.name("platform-limited");
    let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": name},
    "rules": [
        {"apiGroups": [""], "resources": ["namespaces", "configmaps"], "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
        {"apiGroups": ["scheduling.k8s.io"], "resources": ["priorityclasses"], "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]}
    ]});
    Api::<ClusterRole>::all(p.ctx.client.clone())
        .create(&PostParams::default(), &serde_json::from_value(role).expect("role"))
        .await
        .expect("limited role");
    name
}

/// The good revision every failure is measured against: a PriorityClass, a namespace and a
/// ConfigMap.
fn good(x: &str) -> Tree {
    testdata_tree("platform/failures/good", &[("prefix", x)])
}

async fn still_there(p: &Platform) {
    let x = &p.ctx.prefix;
    let pcs: Api<PriorityClass> = Api::all(p.ctx.client.clone());
    assert!(pcs.get_opt(&format!("{x}-p1")).await.expect("get").is_some(), "applied objects must stay");
    let cms: Api<ConfigMap> = Api::namespaced(p.ctx.client.clone(), &format!("{x}-ns"));
    assert!(cms.get_opt("cm1").await.expect("get").is_some(), "applied objects must stay");
    assert!(cms.get_opt("cm2").await.expect("get").is_none(), "nothing of a failed revision is applied");
}

#[tokio::test]
async fn bad_revisions_fail_clearly_and_lose_nothing() {
    let p = Platform::with_files(test_name!(), &[], "view").await;
    let role = limited_role(&p).await;
    // Rebind the platform account from `view` to the limited role.
    let binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": p.ctx.name("platform-limited")},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": "platform", "namespace": p.system}]});
    Api::<k8s_openapi::api::rbac::v1::ClusterRoleBinding>::all(p.ctx.client.clone())
        .create(&PostParams::default(), &serde_json::from_value(binding).expect("binding"))
        .await
        .expect("binding");
    let x = p.ctx.prefix.clone();
    for (path, content) in good(&x).files() {
        p.repo.write(path, content).expect("write");
    }
    let first = p.repo.commit("good").expect("commit");
    p.create_factory(json!({"factories": null, "environmentClasses": null})).await;
    let f = p.wait_ready("True", "Reconciled").await;
    let applied = f.status.as_ref().and_then(|s| s.reconcile.last_applied_revision.clone()).expect("applied");
    still_there(&p).await;

    // Invalid YAML: ParseFailed naming the file and line; Stalled; an Event.
    p.repo.write("cluster/bad.yaml", &testdata("platform/failures/bad/invalid-yaml.yaml", &[])).expect("write");
    p.repo.commit("broken yaml").expect("commit");
    p.poke().await;
    let f = p.wait_ready("False", "ParseFailed").await;
    assert!(ready_message(&f).contains("cluster/bad.yaml:"), "{}", ready_message(&f));
    let s = f.status.clone().expect("status");
    assert!(s.reconcile.conditions.iter().any(|c| c.type_ == "Stalled" && c.status == "True"));
    assert_eq!(
        s.reconcile.last_applied_revision.as_deref(),
        Some(applied.as_str()),
        "the last good revision stays recorded"
    );
    still_there(&p).await;
    let events: Api<Event> = Api::all(p.ctx.client.clone());
    eventually("a ParseFailed warning event", Duration::from_secs(20), || async {
        let list = events.list(&ListParams::default().fields(&format!("involvedObject.name={}", p.name))).await?;
        anyhow::Ok(
            list.items
                .iter()
                .any(|e| e.reason.as_deref() == Some("ParseFailed") && e.type_.as_deref() == Some("Warning"))
                .then_some(()),
        )
    })
    .await
    .expect("event");

    // An unknown kind next to a good new object: nothing of the revision is applied.
    p.repo
        .write("cluster/bad.yaml", &testdata("platform/failures/bad/unknown-kind.yaml", &[("prefix", &x)]))
        .expect("write");
    p.repo.commit("unknown kind").expect("commit");
    p.poke().await;
    let f = p.wait_ready("False", "ValidationFailed").await;
    let msg = ready_message(&f);
    assert!(msg.contains("Widget w (cluster/bad.yaml:1 (document 1)): UnknownKind"), "{msg}");
    still_there(&p).await;

    // A forbidden object (a binding the platform account may not create): refused by RBAC
    // at validation, and the good object of the same revision is not applied either.
    p.repo
        .write("cluster/bad.yaml", &testdata("platform/failures/bad/forbidden-binding.yaml", &[("prefix", &x)]))
        .expect("write");
    p.repo.commit("forbidden").expect("commit");
    p.poke().await;
    let f = p.wait_ready("False", "Forbidden").await;
    let msg = ready_message(&f);
    assert!(msg.contains(&format!("ClusterRoleBinding {x}-escalate")) && msg.contains("forbidden"), "{msg}");
    still_there(&p).await;

    // An emptied path prunes nothing without an explicit opt-in, and says so.
    p.repo.remove("cluster").expect("remove");
    p.repo.commit("emptied").expect("commit");
    p.poke().await;
    let f = p.wait_ready("False", "PruneSkipped").await;
    assert!(ready_message(&f).contains("path cluster/ is empty"), "{}", ready_message(&f));
    still_there(&p).await;

    // Unreachable repository: FetchFailed, nothing pruned.
    p.http.set_unavailable(true);
    p.poke().await;
    p.wait_reason("False", "FetchFailed").await;
    still_there(&p).await;

    // Authentication failure: the token was rotated on the server.
    p.http.set_unavailable(false);
    p.http.set_token(Some("rotated".into()));
    p.poke().await;
    p.wait_reason("False", "AuthenticationFailed").await;
    still_there(&p).await;

    // Force-push back to the first commit: the operator follows it and is Ready again.
    p.http.set_token(Some(crate::fixture::TOKEN.into()));
    p.repo.force_push("main", &first).expect("force push");
    p.poke().await;
    let f = p.wait_ready("True", "Reconciled").await;
    assert!(f.status.and_then(|s| s.reconcile.last_applied_revision).is_some_and(|r| r.ends_with(&first)));
    still_there(&p).await;
}
