//! `kubectl factory plan`: render a local checkout the way the operator would and show, for
//! the factory and every environment it touches, what applying it would create, change and
//! prune — a server-side dry-run as the account the operator would apply as.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use factory_api::{Environment, Factory, FactoryType, labels};
use factory_apply::{Change, Engine, Planned, Resolver, impersonating_client};
use factory_core::admission::PLATFORM_GROUP;
use factory_core::manifests::{self, Manifest};
use factory_core::names::{cicd_namespace, environment_short_name};
use factory_core::{baseline, images, render};
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use serde::Serialize;

use crate::Output;
use crate::tools::Renderer;
use factory_tools::Chart;

/// The plan for one thing the checkout touches.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetPlan {
    /// `Factory platform`, `Environment shop-prod`.
    pub target: String,
    /// Every object and what would happen to it.
    pub changes: Vec<Planned>,
    /// Why this target was not planned, when it was not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// How to plan.
pub struct Request<'a> {
    /// The factory in the cluster whose repository `root` is a checkout of.
    pub factory: &'a str,
    /// The checkout.
    pub root: &'a Path,
    /// kustomize and helm over the checkout.
    pub tools: &'a Renderer,
    /// For a team factory: the application whose repository it is.
    pub application: Option<&'a str>,
    /// Dry-run with the caller's own identity instead of impersonating the factory's account.
    pub as_self: bool,
    /// Namespace of the team factories' accounts (the operator's `--tenant-namespace`).
    pub tenant_namespace: &'a str,
}

struct Planner<'a> {
    client: Client,
    resolver: Arc<Resolver>,
    as_self: bool,
    tenant_namespace: &'a str,
}

impl Planner<'_> {
    fn engine(&self, account: (&str, &str), group: Option<&str>, labels: BTreeMap<String, String>) -> Result<Engine> {
        let client = if self.as_self {
            self.client.clone()
        } else {
            impersonating_client(&self.client, account.0, account.1, group)?
        };
        Ok(Engine::new(client, self.resolver.clone(), labels))
    }
}

fn load(tools: &Renderer, path: &str, vars: &BTreeMap<String, String>) -> Result<Vec<Manifest>> {
    let files = tools.read(path)?;
    manifests::load(&files, vars)
        .map_err(|errors| anyhow::anyhow!("{}", errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")))
}

fn origin(what: &str) -> Manifest {
    Manifest { file: what.into(), line: 0, document: 0, object: serde_json::Value::Null }
}

/// Plans `request` against the cluster `client` talks to.
pub async fn plan(client: Client, request: &Request<'_>) -> Result<Vec<TargetPlan>> {
    let planner = Planner {
        client: client.clone(),
        resolver: Arc::new(Resolver::new(client.clone())),
        as_self: request.as_self,
        tenant_namespace: request.tenant_namespace,
    };
    let factory = Api::<Factory>::all(client.clone())
        .get_opt(request.factory)
        .await
        .context("reading the factory")?
        .with_context(|| format!("factory {} not found (kubectl get factories lists them)", request.factory))?;
    let environments = Api::<Environment>::all(client.clone()).list(&ListParams::default()).await?.items;
    match factory.spec.factory_type {
        FactoryType::Environments => plan_platform(&planner, &factory, &environments, request.tools).await,
        FactoryType::Applications => {
            let Some(app) = request.application else {
                bail!(
                    "{} is a team factory: say which application's repository this is with --application",
                    request.factory
                )
            };
            plan_application(&planner, &factory, &environments, app, request.tools).await
        }
    }
}

async fn plan_platform(
    planner: &Planner<'_>,
    factory: &Factory,
    environments: &[Environment],
    tools: &Renderer,
) -> Result<Vec<TargetPlan>> {
    let name = factory.name_any();
    let spec = &factory.spec;
    let account = spec.service_account.clone().context("the platform factory has no serviceAccount")?;
    let status = factory.status.clone().unwrap_or_default();
    let mut vars = spec.variables.clone();
    vars.insert("factory".into(), name.clone());
    let mut desired = Vec::new();
    if let Some(cluster) = &spec.cluster {
        desired.extend(load(tools, &cluster.path, &vars)?);
    }
    if spec.images.is_some() {
        let object = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {
            "name": cicd_namespace(&name),
            "labels": {labels::NAMESPACE_KIND: "cicd", labels::PLATFORM: name, labels::PART_OF: name}}});
        desired.push(Manifest { object, ..origin(&format!("Factory {name} spec.images")) });
    }
    let references = images::references(&status.images);
    let classes = spec.environment_classes.clone().unwrap_or_default();
    // The `cicd` class, when defined, is every team cicd namespace's baseline.
    let cicd_paths = baseline::class_paths(&classes, "cicd").unwrap_or_default();
    let cicd_defined = classes.iter().any(|c| c.name == "cicd");
    if let Some(factories) = &spec.factories {
        for definition in load(tools, &factories.path, &vars)? {
            desired.extend(render::team_factory(&name, &definition, &references, planner.tenant_namespace)?);
            let cicd = cicd_namespace(definition.name());
            let target = baseline::Target {
                factory: definition.name(),
                platform: &name,
                namespace: &cicd,
                class: "cicd",
                environment: "cicd",
                kind: "cicd",
                protected: false,
                tenant_namespace: planner.tenant_namespace,
            };
            let team_vars = baseline::vars(&spec.variables, &target);
            let mut class_manifests = Vec::new();
            for path in &cicd_paths {
                class_manifests.extend(load(tools, path, &team_vars)?);
            }
            desired.extend(render::cicd_class_objects(&cicd, cicd_defined.then_some(class_manifests), &definition));
        }
    }
    let engine_labels = BTreeMap::from([(labels::APPLIED_BY.to_string(), format!("factory.{name}"))]);
    let engine = planner.engine((&account.namespace, &account.name), Some(PLATFORM_GROUP), engine_labels)?;
    let mut out = vec![TargetPlan {
        target: format!("Factory {name}"),
        changes: engine.plan(&desired, &status.inventory).await?,
        note: None,
    }];

    // Every environment of every team factory this platform built gets its class baseline.
    let teams: Vec<Factory> = Api::<Factory>::all(planner.client.clone())
        .list(&ListParams::default().labels(&format!("{}={name}", labels::PLATFORM)))
        .await?
        .items;
    for env in environments.iter().filter(|e| teams.iter().any(|t| t.name_any() == e.spec.factory)) {
        let target = format!("Environment {}", env.name_any());
        if env.spec.kubeconfig_secret_ref.is_some() {
            out.push(TargetPlan { target, changes: vec![], note: Some("in another cluster: not planned".into()) });
            continue;
        }
        let team = teams.iter().find(|t| t.name_any() == env.spec.factory);
        let short = environment_short_name(env);
        let core_target = baseline::Target {
            factory: &env.spec.factory,
            platform: &name,
            namespace: &env.spec.namespace,
            class: &env.spec.class,
            environment: &short,
            kind: "permanent",
            protected: env.spec.protected,
            tenant_namespace: planner.tenant_namespace,
        };
        let paths = baseline::class_paths(&classes, &env.spec.class).map_err(anyhow::Error::msg)?;
        let class_vars = baseline::vars(&spec.variables, &core_target);
        let mut class_manifests = Vec::new();
        for path in paths {
            class_manifests.extend(load(tools, &path, &class_vars)?);
        }
        let shared = team.and_then(|t| t.spec.shared.clone()).unwrap_or_default();
        let at = origin(&format!("Environment {}", env.name_any()));
        let mut desired = baseline::objects(&core_target, &shared, class_manifests, &at);
        let quota: BTreeMap<String, String> = env.spec.quota.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect();
        baseline::apply_quota(&mut desired, &quota, &env.spec.namespace, &at);
        let owners = team.and_then(|t| t.spec.owners.clone()).unwrap_or_default();
        let bindings = baseline::environment_bindings(&env.spec, &short, &owners);
        desired.extend(bindings.into_iter().map(|object| Manifest { object, ..at.clone() }));
        // Delivered credentials are copied from Secrets at apply time, not rendered: leave them out.
        let credentials: Vec<String> = spec.credentials.iter().flatten().map(|c| c.name.clone()).collect();
        let previous: Vec<factory_api::InventoryEntry> = env
            .status
            .clone()
            .unwrap_or_default()
            .inventory
            .into_iter()
            .filter(|e| !(e.kind == "Secret" && credentials.iter().any(|c| *c == e.name)))
            .collect();
        let engine_labels =
            BTreeMap::from([(labels::APPLIED_BY.to_string(), format!("environment.{}", env.name_any()))]);
        let engine = planner.engine((&account.namespace, &account.name), Some(PLATFORM_GROUP), engine_labels)?;
        out.push(TargetPlan { target, changes: engine.plan(&desired, &previous).await?, note: None });
    }
    Ok(out)
}

async fn plan_application(
    planner: &Planner<'_>,
    factory: &Factory,
    environments: &[Environment],
    app: &str,
    tools: &Renderer,
) -> Result<Vec<TargetPlan>> {
    let team = factory.name_any();
    let application = factory
        .spec
        .applications
        .iter()
        .flatten()
        .find(|a| a.name == app)
        .with_context(|| format!("factory {team} has no application {app}"))?;
    if !application.deploys() {
        bail!("application {app} has neither a config path nor a chart");
    }
    let capabilities = planner.resolver.capabilities().await?;
    let mut out = Vec::new();
    for env in environments.iter().filter(|e| e.spec.factory == team) {
        let target = format!("Environment {}", env.name_any());
        if env.spec.kubeconfig_secret_ref.is_some() {
            out.push(TargetPlan { target, changes: vec![], note: Some("in another cluster: not planned".into()) });
            continue;
        }
        let short = environment_short_name(env);
        let vars = baseline::application_vars(&team, &short, &env.spec.namespace, &env.spec.class, app);
        let paths = match &application.config {
            Some(config) => baseline::application_paths(&config.path, &env.spec.class, &short),
            None => Vec::new(),
        };
        let mut layers = Vec::new();
        if let Some(helm) = &application.helm {
            // As the operator: each layer's values.yaml, base first, over the chart's own.
            let values_files =
                baseline::helm_values_files(&paths, |f| tools.read(f).is_ok_and(|files| !files.is_empty()));
            let chart = Chart {
                path: helm.chart.clone(),
                values_files,
                values: helm.values.clone(),
                release: app.to_string(),
                namespace: env.spec.namespace.clone(),
                capabilities: factory_tools::Capabilities {
                    kube_version: capabilities.0.clone(),
                    api_versions: capabilities.1.clone(),
                },
            };
            layers.push(tools.chart(&chart)?);
        }
        for path in &paths {
            let files = tools.read(path)?;
            let files: Vec<_> = match application.helm {
                Some(_) => files.into_iter().filter(|f| !baseline::is_helm_values(&f.path)).collect(),
                None => files,
            };
            layers.push(manifests::load(&files, &vars).map_err(|e| {
                anyhow::anyhow!("{}", e.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))
            })?);
        }
        let desired = factory_core::objects::layered_objects(layers, &env.spec.namespace);
        let previous = env
            .status
            .clone()
            .unwrap_or_default()
            .applications
            .into_iter()
            .find(|a| a.name == app)
            .map(|a| a.inventory)
            .unwrap_or_default();
        let engine_labels = BTreeMap::from([
            (labels::APPLIED_BY.to_string(), format!("application.{app}")),
            (labels::FACTORY.to_string(), team.clone()),
        ]);
        let engine = planner.engine((planner.tenant_namespace, &team), None, engine_labels)?;
        out.push(TargetPlan { target, changes: engine.plan(&desired, &previous).await?, note: None });
    }
    Ok(out)
}

/// Whether the plan would write anything.
pub fn has_changes(plans: &[TargetPlan]) -> bool {
    plans.iter().flat_map(|p| &p.changes).any(|c| !matches!(c.change, Change::Unchanged | Change::Keep))
}

/// Prints the plan: one block per target, one line per object that would change.
pub fn print(plans: &[TargetPlan], output: Output, out: &mut dyn Write) -> Result<()> {
    crate::render(plans, output, out, |out| {
        let mut totals = BTreeMap::new();
        for plan in plans {
            writeln!(out, "{}:", plan.target)?;
            if let Some(note) = &plan.note {
                writeln!(out, "  ({note})")?;
            }
            let mut unchanged = 0;
            for c in &plan.changes {
                *totals.entry(format!("{:?}", c.change).to_lowercase()).or_insert(0) += 1;
                let (mark, word) = match c.change {
                    Change::Create => ("+", "create"),
                    Change::Change => ("~", "change"),
                    Change::Prune => ("-", "prune"),
                    Change::Keep => ("=", "keep"),
                    Change::Refused => ("!", "refused"),
                    Change::Unchanged => {
                        unchanged += 1;
                        continue;
                    }
                };
                let details =
                    if c.details.is_empty() { String::new() } else { format!("  ({})", c.details.join(", ")) };
                writeln!(out, "  {mark} {word:<8} {}{details}", c.object)?;
            }
            writeln!(out, "  {unchanged} unchanged")?;
        }
        let summary: Vec<String> = totals.iter().map(|(k, v)| format!("{v} {k}")).collect();
        writeln!(out, "plan: {}", if summary.is_empty() { "nothing".into() } else { summary.join(", ") })?;
        Ok(())
    })
}
