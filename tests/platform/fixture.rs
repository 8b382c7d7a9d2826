//! A platform repository, its git server, credentials and the platform Factory pointing at it.

use std::time::Duration;

use factory_api::Factory;
use factory_integration_tests::{testdata, testdata_tree};
use factory_testkit::git::{GitHttpServer, GitRoot, Repo};
use factory_testkit::{TestContext, ensure_operator, eventually};
use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, Role, RoleBinding};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

/// Application repositories on loopback, served over HTTP without credentials.
pub struct Apps {
    root: GitRoot,
    server: GitHttpServer,
}

impl Apps {
    /// A served folder of repositories, empty until [`Apps::repo`] adds one.
    pub async fn serve() -> Self {
        let root = GitRoot::new().expect("app root");
        let server = GitHttpServer::start(root.path().to_path_buf(), None).await.expect("app server");
        Self { root, server }
    }

    /// Repository `name` holding `files` in one commit.
    pub fn repo(&self, name: &str, files: &[(&str, &str)]) -> Repo {
        self.root.repo(name, files).expect("app repo")
    }

    /// The clone URL of repository `name`.
    pub fn url(&self, name: &str) -> String {
        self.server.url(name)
    }
}

/// Everything one platform test needs.
pub struct Platform {
    pub ctx: TestContext,
    pub repo: Repo,
    pub http: GitHttpServer,
    pub name: String,
    pub system: String,
    _root: GitRoot,
}

pub const TOKEN: &str = "platform-token";

/// Annotates `name` with `factories.dev/requested-at`, as `kubectl factory reconcile` does.
pub async fn poke<K>(api: &Api<K>, name: &str)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let patch = json!({"metadata": {"annotations": {"factories.dev/requested-at": now.to_string()}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.expect("annotate");
}

fn object<T: serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).expect("test object deserialises")
}

impl Platform {
    /// An empty platform repository, its factory bound to `cluster-admin`.
    pub async fn new(test: &str) -> Self {
        Self::with_files(test, &[], "cluster-admin").await
    }

    /// A platform repository holding the tree `tests/testdata/<dir>`, its factory bound to
    /// `cluster-admin`.
    pub async fn serving(test: &str, dir: &str) -> Self {
        Self::with_files(test, &testdata_tree(dir, &[]).files(), "cluster-admin").await
    }

    /// A platform repository with `files`, served with a token; a system namespace holding the
    /// credentials Secret and the factory's service account, bound to `cluster_role`.
    pub async fn with_files(test: &str, files: &[(&str, &str)], cluster_role: &str) -> Self {
        ensure_operator();
        Self::started(test, files, cluster_role).await
    }

    /// Like [`Platform::new`], with no operator started: the test runs its own.
    pub async fn without_operator(test: &str) -> Self {
        Self::started(test, &[], "cluster-admin").await
    }

    async fn started(test: &str, files: &[(&str, &str)], cluster_role: &str) -> Self {
        let ctx = TestContext::new(test).await;
        let root = GitRoot::new().expect("git root");
        let repo = root.repo("platform", files).expect("repo");
        let http = GitHttpServer::start(root.path().to_path_buf(), Some(TOKEN.into())).await.expect("git server");
        let system = ctx.name("system");
        let name = ctx.name("platform");
        Api::<Namespace>::all(ctx.client.clone())
            .create(&PostParams::default(), &object(json!({"metadata": {"name": system}})))
            .await
            .expect("system namespace");
        Api::<Secret>::namespaced(ctx.client.clone(), &system)
            .create(
                &PostParams::default(),
                &object(json!({"metadata": {"name": "platform-git"},
                "stringData": {"username": "git", "password": TOKEN}})),
            )
            .await
            .expect("secret");
        Api::<ServiceAccount>::namespaced(ctx.client.clone(), &system)
            .create(&PostParams::default(), &object(json!({"metadata": {"name": "platform"}})))
            .await
            .expect("service account");
        // The factory reads its own git Secret, with its own rights (no confused deputy).
        let reader = json!({"metadata": {"name": "platform-git-reader"},
            "rules": [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["platform-git"], "verbs": ["get"]}]});
        Api::<Role>::namespaced(ctx.client.clone(), &system)
            .create(&PostParams::default(), &object(reader))
            .await
            .expect("secret reader role");
        let bind = json!({"metadata": {"name": "platform-git-reader"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "platform-git-reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "platform", "namespace": system}]});
        Api::<RoleBinding>::namespaced(ctx.client.clone(), &system)
            .create(&PostParams::default(), &object(bind))
            .await
            .expect("secret reader binding");
        Api::<ClusterRoleBinding>::all(ctx.client.clone())
            .create(
                &PostParams::default(),
                &object(json!({"metadata": {"name": ctx.name("platform")},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_role},
                "subjects": [{"kind": "ServiceAccount", "name": "platform", "namespace": system}]})),
            )
            .await
            .expect("binding");
        Self { ctx, repo, http, name, system, _root: root }
    }

    /// Commits `teams` (each a file name under `factories/` and its content) with whatever else
    /// the test wrote, creates the platform Factory with `extra_spec` and waits until it is Ready.
    pub async fn start_with(&self, teams: &[(&str, &str)], extra_spec: Value) -> Factory {
        for (name, team) in teams {
            self.repo.write(&format!("factories/{name}.yaml"), team).expect("write a team factory");
        }
        self.repo.commit("team factories").expect("commit");
        self.create_factory(extra_spec).await;
        self.wait_ready("True", "Reconciled").await
    }

    /// Creates the platform Factory.
    pub async fn create_factory(&self, extra_spec: Value) -> Factory {
        let mut spec = json!({
            "type": "Environments",
            "source": {"url": self.http.url("platform"), "ref": {"branch": "main"},
                       "secretRef": {"namespace": self.system, "name": "platform-git"}, "interval": "10m"},
            "serviceAccount": {"namespace": self.system, "name": "platform"},
            "cluster": {"path": "cluster/"},
            "factories": {"path": "factories/"},
            "environmentClasses": [{"name": "base", "path": "classes/base/"}],
            "variables": {"prefix": self.ctx.prefix}
        });
        if let (Some(target), Some(extra)) = (spec.as_object_mut(), extra_spec.as_object()) {
            for (k, v) in extra {
                target.insert(k.clone(), v.clone());
            }
        }
        let factory: Factory = object(json!({"apiVersion": "factories.dev/v1alpha1", "kind": "Factory",
            "metadata": {"name": self.name}, "spec": spec}));
        self.factories().create(&PostParams::default(), &factory).await.expect("create platform factory")
    }

    pub fn factories(&self) -> Api<Factory> {
        Api::all(self.ctx.client.clone())
    }

    /// Asks for an immediate reconcile, as `kubectl factory reconcile` does.
    pub async fn poke(&self) {
        poke(&self.factories(), &self.name).await;
    }

    /// Asks Environment `name` for an immediate reconcile (it fetches its applications again).
    pub async fn poke_environment(&self, name: &str) {
        poke(&Api::<factory_api::Environment>::all(self.ctx.client.clone()), name).await;
    }

    /// Waits until the factory's Ready condition has `status` and `reason` for the revision at
    /// the repository's HEAD (attempted), and returns the factory.
    pub async fn wait_ready(&self, status: &str, reason: &str) -> Factory {
        let head = self.repo.head().expect("head");
        let result = eventually(
            &format!("{} Ready={status} ({reason}) at {head}", self.name),
            Duration::from_secs(60),
            || async {
                let f = self.factories().get(&self.name).await?;
                let s = f.status.clone().unwrap_or_default();
                let attempted = s.reconcile.last_attempted_revision.as_deref().is_some_and(|r| r.ends_with(&head));
                let ready = s
                    .reconcile
                    .conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == status && c.reason == reason);
                let current = s.reconcile.observed_generation == f.metadata.generation;
                anyhow::Ok((attempted && ready && current).then_some(f))
            },
        )
        .await;
        match result {
            Ok(f) => f,
            Err(e) => {
                panic!("{e}\nlast status: {:#?}", self.factories().get(&self.name).await.ok().and_then(|f| f.status))
            }
        }
    }
}

impl Platform {
    /// Waits until Ready has `status` and `reason`, whatever the revision (fetch failures
    /// never get to a new revision).
    pub async fn wait_reason(&self, status: &str, reason: &str) -> Factory {
        let result =
            eventually(&format!("{} Ready={status} ({reason})", self.name), Duration::from_secs(60), || async {
                let f = self.factories().get(&self.name).await?;
                let ready = f.status.as_ref().is_some_and(|s| {
                    s.reconcile
                        .conditions
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == status && c.reason == reason)
                });
                anyhow::Ok(ready.then_some(f))
            })
            .await;
        match result {
            Ok(f) => f,
            Err(e) => {
                panic!("{e}\nlast status: {:#?}", self.factories().get(&self.name).await.ok().and_then(|f| f.status))
            }
        }
    }
}

/// The Ready condition's message.
pub fn ready_message(f: &Factory) -> String {
    f.status
        .as_ref()
        .and_then(|s| s.reconcile.conditions.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

/// A team factory definition `<prefix>-<name>` with one environment `test`, the application
/// `cart` from `url` (config under `deploy/`), and `extra` spec lines (such as `  previews: {max: 3}\n`).
pub fn team_with_cart(prefix: &str, name: &str, url: &str, extra: &str) -> String {
    testdata(
        "platform/factories/team-with-cart.yaml",
        &[("prefix", prefix), ("name", name), ("extra", extra), ("url", url)],
    )
}
