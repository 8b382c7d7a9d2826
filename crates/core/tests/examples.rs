//! Snapshots of what the renderers make of the repository's `examples/`: the platform's team
//! factories, the environments they materialise, an environment's baseline, an application's
//! layers and a cicd namespace's baseline. A change to a renderer shows here as a diff of
//! objects (`cargo insta review`), not as a surprise in a cluster.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use factory_api::environment::EnvironmentSpec;
use factory_api::{DEFAULT_TENANT_NAMESPACE, FactorySpec};
use factory_core::baseline::{self, Target};
use factory_core::manifests::{Manifest, SourceFile, load};
use factory_core::{objects, render};
use serde_json::{Value, json};

/// The repository's `examples/` folder.
fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// Every file under `root/dir`, named relative to `root`, as a revision of a repository holds it.
fn files(root: &Path, dir: &str) -> Vec<SourceFile> {
    let mut out = Vec::new();
    let mut stack = vec![root.join(dir)];
    while let Some(path) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&path) else { continue };
        for entry in entries.flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let name = p.strip_prefix(root).expect("under root").to_string_lossy().replace('\\', "/");
                out.push(SourceFile { path: name, content: std::fs::read(&p).expect("readable") });
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// The example platform Factory's spec (`examples/platform-factory.yaml`).
fn platform_spec() -> FactorySpec {
    let text = std::fs::read_to_string(examples().join("platform-factory.yaml")).expect("platform factory");
    let factory: Value = serde_yaml::from_str(&text).expect("yaml");
    serde_json::from_value(factory["spec"].clone()).expect("a Factory spec")
}

/// The platform's variables, with `git` as the demo serves it.
fn platform_vars() -> BTreeMap<String, String> {
    let mut vars = platform_spec().variables;
    vars.insert("git".into(), "http://127.0.0.1:9418".into());
    vars
}

/// The team Factory definitions of the example platform repository.
fn team_definitions() -> Vec<Manifest> {
    load(&files(&examples().join("platform"), "factories"), &platform_vars()).expect("factories load")
}

/// Manifests as a snapshot shows them: where each came from, then the object.
fn shown(manifests: &[Manifest]) -> Vec<Value> {
    manifests.iter().map(|m| json!({"from": format!("{}:{}", m.file, m.line), "object": m.object})).collect()
}

fn spec_of(definition: &Manifest) -> FactorySpec {
    serde_json::from_value(definition.object["spec"].clone()).expect("a team spec")
}

#[test]
fn team_factories_render_as_the_platform_builds_them() {
    for definition in team_definitions() {
        let images = BTreeMap::from([("base".to_string(), "registry.example.com/base@sha256:0123".to_string())]);
        let objects = render::team_factory("platform", &definition, &images, DEFAULT_TENANT_NAMESPACE)
            .unwrap_or_else(|e| panic!("{}: {}", e.object, e.why));
        insta::assert_yaml_snapshot!(format!("team_factory_{}", definition.name()), shown(&objects));
    }
}

#[test]
fn team_factories_materialise_their_environments() {
    for definition in team_definitions() {
        let environments = render::team_environments(definition.name(), &spec_of(&definition));
        insta::assert_yaml_snapshot!(format!("environments_{}", definition.name()), environments);
    }
}

/// The `Environment` named `<factory>-<environment>` that `factory` materialises.
fn environment(definition: &Manifest, environment: &str) -> EnvironmentSpec {
    let name = format!("{}-{environment}", definition.name());
    let all = render::team_environments(definition.name(), &spec_of(definition));
    let env = all.into_iter().find(|e| e["metadata"]["name"] == name.as_str()).expect("materialised");
    serde_json::from_value(env["spec"].clone()).expect("an Environment spec")
}

#[test]
fn a_protected_environment_gets_its_class_chain_access_and_shared_defaults() {
    let platform = platform_spec();
    let shop = team_definitions().into_iter().find(|d| d.name() == "shop").expect("shop");
    let team = spec_of(&shop);
    for short in ["test", "prod"] {
        let env = environment(&shop, short);
        let target = Target {
            factory: "shop",
            platform: "platform",
            namespace: &env.namespace,
            class: &env.class,
            environment: short,
            kind: "permanent",
            protected: env.protected,
            tenant_namespace: DEFAULT_TENANT_NAMESPACE,
        };
        let paths = baseline::class_paths(platform.environment_classes.as_deref().unwrap_or_default(), &env.class)
            .expect("class defined");
        let root = examples().join("platform");
        // The prod class is a Kustomize overlay, rendered by the real kustomize in the operator
        // (tests/platform/render.rs, and the demo checks its annotation); here, its resources.
        let class_files: Vec<SourceFile> = paths
            .iter()
            .flat_map(|p| files(&root, p.trim_end_matches('/')))
            .filter(|f| !f.path.ends_with("/kustomization.yaml"))
            .collect();
        let manifests = load(&class_files, &baseline::vars(&platform_vars(), &target)).expect("class loads");
        let mut desired = baseline::objects(&target, &team.shared.clone().unwrap_or_default(), manifests, &shop);
        let owners = team.owners.clone().unwrap_or_default();
        let bindings = baseline::environment_bindings(&env, short, &owners);
        desired.extend(bindings.into_iter().map(|object| Manifest { object, ..shop.clone() }));
        insta::assert_yaml_snapshot!(format!("baseline_shop_{short}"), shown(&desired));
    }
}

#[test]
fn an_application_is_its_base_then_class_then_environment_layer() {
    let root = examples().join("apps/storefront");
    let layers = baseline::application_paths("deploy/", "prod", "prod")
        .iter()
        .map(|path| {
            let vars = baseline::application_vars("shop", "prod", "shop-prod", "prod", "storefront");
            load(&files(&root, path), &vars).expect("layer loads")
        })
        .collect();
    insta::assert_yaml_snapshot!("storefront_in_shop_prod", shown(&objects::layered_objects(layers, "shop-prod")));
}

#[test]
fn a_cicd_namespace_gets_the_platforms_cicd_class_and_the_pipeline_accounts() {
    let platform = platform_spec();
    let shop = team_definitions().into_iter().find(|d| d.name() == "shop").expect("shop");
    let team = spec_of(&shop);
    let paths =
        baseline::class_paths(platform.environment_classes.as_deref().unwrap_or_default(), "cicd").expect("cicd class");
    let root = examples().join("platform");
    let class_files: Vec<SourceFile> = paths.iter().flat_map(|p| files(&root, p.trim_end_matches('/'))).collect();
    let vars = BTreeMap::from([("namespace".to_string(), "shop-cicd".to_string())]);
    let class = load(&class_files, &vars).expect("cicd class loads");
    let mut desired = render::cicd_class_objects("shop-cicd", Some(class), &shop);
    let owners = team.owners.clone().unwrap_or_default();
    let accounts = factory_core::pipelines::cicd_objects("shop", &["test".into()], true, &BTreeMap::new(), &owners);
    desired.extend(accounts.into_iter().map(|object| Manifest { object, ..shop.clone() }));
    insta::assert_yaml_snapshot!("cicd_shop", shown(&desired));
}
