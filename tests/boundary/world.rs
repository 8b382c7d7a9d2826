//! One team's world: a platform with a delivered credential, team factory `shop` (and team
//! `other`), application `cart` served over HTTPS-style token auth, and `alice`.

use std::time::Duration;

use factory_api::{Environment, Factory};
use factory_testkit::eventually;
use factory_testkit::git::{GitHttpServer, GitRoot, Repo};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use factory_integration_tests::testdata;

use crate::fixture::Platform;

/// The token the application repositories are served with.
pub const APP_TOKEN: &str = "cart-token";

pub struct World {
    pub p: Platform,
    pub x: String,
    pub cart: Repo,
    _server: GitHttpServer,
    /// The team member, by her own client certificate.
    pub alice: Client,
    _apps: GitRoot,
}

impl World {
    /// Builds the world for `test`; `team_extra` adds lines to shop's spec (two-space indented).
    pub async fn new(test: &str, team_extra: &str) -> Self {
        let p = Platform::serving(test, "boundary/platform").await;
        let x = p.ctx.prefix.clone();
        let apps = GitRoot::new().expect("root");
        let cart = apps
            .repo(
                "cart",
                &[
                    ("deploy/base/config.yaml", &testdata("common/cart/configmap-cart-config.yaml", &[])),
                    (".tekton/ci.yaml", &testdata("boundary/ci/pipeline.yaml", &[])),
                ],
            )
            .expect("cart repo");
        let server = GitHttpServer::start(apps.path().to_path_buf(), Some(APP_TOKEN.into())).await.expect("git");
        let url = server.url("cart");
        p.repo
            .write(
                "factories/shop.yaml",
                &testdata("boundary/factories/shop.yaml", &[("prefix", &x), ("team_extra", team_extra), ("url", &url)]),
            )
            .expect("write shop");
        p.repo
            .write("factories/other.yaml", &testdata("boundary/factories/other.yaml", &[("prefix", &x)]))
            .expect("write other");
        p.repo.commit("teams").expect("commit");
        let admin = p.ctx.client.clone();
        Api::<Secret>::namespaced(admin.clone(), &p.system)
            .create(
                &PostParams::default(),
                &object(json!({"metadata": {"name": "db-source"}, "stringData": {"password": "s3cret"}})),
            )
            .await
            .expect("credential source");
        p.create_factory(json!({
            "cluster": null,
            "environmentClasses": [{"name": "base", "path": "classes/base/"},
                                   {"name": "preview", "path": "classes/preview/"},
                                   {"name": "wide", "path": "classes/wide/"}],
            "credentials": [{"name": "db", "from": {"namespace": p.system, "name": "db-source"},
                             "to": {"factory": format!("{x}-shop"), "environments": ["prod"]}}]
        }))
        .await;
        p.wait_ready("True", "Reconciled").await;
        // The team's own git credential, in its cicd namespace (as its owners would put it there).
        let cicd = format!("{x}-shop-cicd");
        eventually("the cicd namespace", Duration::from_secs(30), || async {
            anyhow::Ok(Api::<Namespace>::all(admin.clone()).get_opt(&cicd).await?.map(|_| ()))
        })
        .await
        .expect("cicd namespace");
        let alice = p.ctx.client_as_user("alice", &[&format!("{x}-shop-team")]).await.expect("alice");
        let world = Self { p, x, cart, _server: server, alice, _apps: apps };
        world.put_git_secret(&world.alice.clone(), &cicd).await;
        world
    }

    /// Writes the `cart-git` Secret into `namespace` as `client` (retrying while a binding
    /// just written reaches the API server's authorizer).
    pub async fn put_git_secret(&self, client: &Client, namespace: &str) {
        let secret = object::<Secret>(json!({"metadata": {"name": "cart-git"},
            "stringData": {"username": "git", "password": APP_TOKEN}}));
        let api = Api::<Secret>::namespaced(client.clone(), namespace);
        eventually(&format!("cart-git written into {namespace}"), Duration::from_secs(30), || async {
            match api.create(&PostParams::default(), &secret).await {
                Ok(_) => anyhow::Ok(Some(())),
                Err(kube::Error::Api(s)) if s.code == 403 || s.code == 404 => anyhow::Ok(None),
                Err(e) => Err(e.into()),
            }
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    }

    /// `<prefix>-shop-<env>`.
    pub fn ns(&self, env: &str) -> String {
        format!("{}-shop-{env}", self.x)
    }

    pub fn admin(&self) -> Client {
        self.p.ctx.client.clone()
    }

    pub fn envs(&self) -> Api<Environment> {
        Api::all(self.admin())
    }

    /// Waits until Environment `shop-<env>` satisfies `check` on its status; panics with it.
    pub async fn wait_env(
        &self,
        env: &str,
        what: &str,
        check: impl Fn(&factory_api::EnvironmentStatus) -> bool,
    ) -> factory_api::EnvironmentStatus {
        let name = self.ns(env);
        let envs = self.envs();
        let result = eventually(&format!("{name}: {what}"), Duration::from_secs(90), || async {
            let s = envs.get(&name).await?.status.unwrap_or_default();
            anyhow::Ok(check(&s).then_some(s))
        })
        .await;
        match result {
            Ok(s) => s,
            Err(e) => panic!("{e}\nlast status: {:#?}", envs.get(&name).await.ok().and_then(|e| e.status)),
        }
    }

    /// Waits until `cart` is applied in `env` at the repository's HEAD without error.
    pub async fn wait_cart(&self, env: &str) -> factory_api::EnvironmentStatus {
        let head = self.cart.head().expect("head");
        self.wait_env(env, &format!("cart applied at {head}"), |s| {
            s.applications.iter().any(|a| {
                a.name == "cart"
                    && a.error.is_empty()
                    && a.last_applied_revision.as_deref().is_some_and(|r| r.ends_with(&head))
            })
        })
        .await
    }

    /// Asks for an immediate reconcile of Environment `shop-<env>`.
    pub async fn poke(&self, env: &str) {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let patch = json!({"metadata": {"annotations": {"factories.dev/requested-at": now.to_string()}}});
        self.envs().patch(&self.ns(env), &PatchParams::default(), &Patch::Merge(&patch)).await.expect("poke");
    }

    /// Rewrites shop's definition in the platform repository with `from` replaced by `to`, and
    /// waits for the platform to apply it.
    pub async fn edit_team(&self, from: &str, to: &str) {
        let path = self.p.repo.work_tree().join("factories/shop.yaml");
        let text = std::fs::read_to_string(&path).expect("read shop");
        assert!(text.contains(from), "{from:?} not in {text}");
        self.p.repo.write("factories/shop.yaml", &text.replacen(from, to, 1)).expect("write");
        self.p.repo.commit("edit shop").expect("commit");
        self.p.poke().await;
        self.p.wait_ready("True", "Reconciled").await;
    }

    pub fn factories(&self) -> Api<Factory> {
        Api::all(self.admin())
    }
}

pub fn object<T: serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).expect("test object")
}

/// The request was refused by the API server with 403; returns its message (the reason the
/// callers assert on).
pub fn refused<T: std::fmt::Debug>(what: &str, result: Result<T, kube::Error>) -> String {
    match result {
        Err(kube::Error::Api(s)) if s.code == 403 => s.message,
        other => panic!("{what}: expected 403 Forbidden, got {other:?}"),
    }
}

/// The request succeeded (the control beside every refusal).
pub fn allowed<T>(what: &str, result: Result<T, kube::Error>) -> T {
    result.unwrap_or_else(|e| panic!("{what}: expected it to succeed for an allowed identity, got {e}"))
}
