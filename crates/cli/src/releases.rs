//! `kubectl factory release create`, `kubectl factory releases`, `kubectl factory promote` and
//! `kubectl factory approve`: recording a release, seeing where each runs, and letting one into
//! an environment (an Approval in its namespace, which the cluster's RBAC allows or refuses).

use std::io::Write;

use anyhow::{Context, Result, bail};
use factory_api::factory::{Delivery, DeliveryStatus};
use factory_api::release::ApprovalSpec;
use factory_api::{Approval, Environment, Factory, Release, ReleaseImage, ReleaseSpec, labels};
use factory_core::names::{cicd_namespace, environment_object_name};
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde::Serialize;

use crate::Output;

async fn team(client: &Client, factory: &str) -> Result<Factory> {
    Api::<Factory>::all(client.clone())
        .get_opt(factory)
        .await
        .with_context(|| format!("reading factory {factory}"))?
        .with_context(|| format!("factory {factory} not found (kubectl get factories lists them)"))
}

/// Refuses an application `factory` does not deliver by releases, naming those it does.
fn delivered(factory: &Factory, application: &str) -> Result<()> {
    let apps = factory.spec.applications.iter().flatten();
    let by_releases: Vec<&str> =
        apps.filter(|a| a.delivery == Some(Delivery::Releases)).map(|a| a.name.as_str()).collect();
    if !by_releases.contains(&application) {
        bail!(
            "factory {} has no application {application} delivered by releases (those it has: {})",
            factory.name_any(),
            if by_releases.is_empty() { "none".to_string() } else { by_releases.join(", ") }
        );
    }
    Ok(())
}

/// Records a release of `application` at `revision` with `images` (`NAME=REPOSITORY@sha256:…`);
/// returns what was created.
pub async fn create(
    client: &Client,
    factory: &str,
    application: &str,
    revision: &str,
    images: &[String],
) -> Result<String> {
    let team = team(client, factory).await?;
    delivered(&team, application)?;
    let images = images
        .iter()
        .map(|i| match i.split_once('=') {
            Some((name, reference)) => Ok(ReleaseImage { name: name.into(), reference: reference.into() }),
            None => bail!("--image {i}: want NAME=REPOSITORY@sha256:DIGEST"),
        })
        .collect::<Result<Vec<_>>>()?;
    let sha = factory_core::delivery::commit(revision);
    let spec = ReleaseSpec { application: application.into(), revision: revision.into(), images, pipeline_run: None };
    let mut release = Release::new("", spec);
    release.metadata.name = None;
    release.metadata.generate_name = Some(format!("{application}-{}-", sha.chars().take(7).collect::<String>()));
    release.metadata.labels = Some([(labels::APPLICATION.to_string(), application.to_string())].into_iter().collect());
    let cicd = cicd_namespace(factory);
    let made = Api::<Release>::namespaced(client.clone(), &cicd)
        .create(&PostParams::default(), &release)
        .await
        .map_err(|e| anyhow::anyhow!("release of {application} refused: {}", factory_apply::api_message(&e)))?;
    Ok(format!("release {} of {application} recorded in {cicd}", made.name_any()))
}

/// What `kubectl factory releases` shows.
#[derive(Debug, Serialize)]
pub struct View {
    /// Where each application's releases run.
    pub delivery: Vec<DeliveryStatus>,
    /// The releases, newest first.
    pub releases: Vec<Release>,
}

/// Reads where the releases of `factory` (of `application`, if given) run.
pub async fn load(client: &Client, factory: &str, application: Option<&str>) -> Result<View> {
    let team = team(client, factory).await?;
    let wanted = |app: &str| application.is_none_or(|a| a == app);
    let delivery =
        team.status.map(|s| s.releases).unwrap_or_default().into_iter().filter(|d| wanted(&d.application)).collect();
    let mut releases: Vec<Release> = Api::<Release>::namespaced(client.clone(), &cicd_namespace(factory))
        .list(&ListParams::default())
        .await
        .context("listing releases")?
        .items
        .into_iter()
        .filter(|r| wanted(&r.spec.application))
        .collect();
    releases.sort_by_key(|r| std::cmp::Reverse(r.creation_timestamp().map(|t| t.0)));
    Ok(View { delivery, releases })
}

/// Prints the view: one table of environments per application, then the releases.
pub fn print(view: &View, output: Output, out: &mut dyn Write) -> Result<()> {
    crate::render(view, output, out, |out| {
        for app in &view.delivery {
            writeln!(out, "{}:", app.application)?;
            let mut rows = vec![["  ENVIRONMENT", "RELEASE", "HEALTH", "WAITING", "LAST FAILURE"].map(String::from)];
            for stage in &app.environments {
                rows.push([
                    format!("  {}", stage.environment),
                    stage.release.clone().unwrap_or_else(|| "-".into()),
                    stage.health.map(|h| format!("{h:?}")).unwrap_or_else(|| "-".into()),
                    stage.waiting.clone(),
                    stage.last_failure.clone(),
                ]);
            }
            crate::write_table(&rows, out)?;
        }
        let mut rows = vec![["RELEASE", "APPLICATION", "REVISION", "HEALTHY IN", "VALID"].map(String::from)];
        for r in &view.releases {
            let status = r.status.clone().unwrap_or_default();
            let valid = status.conditions.iter().find(|c| c.type_ == "Ready");
            rows.push([
                r.name_any(),
                r.spec.application.clone(),
                factory_core::delivery::commit(&r.spec.revision).chars().take(12).collect(),
                status.healthy_in.iter().map(|h| h.environment.as_str()).collect::<Vec<_>>().join(","),
                valid
                    .map(|c| if c.status == "True" { "yes".into() } else { format!("no: {}", c.message) })
                    .unwrap_or_default(),
            ]);
        }
        crate::write_table_or(&rows, "no releases recorded", out)
    })
}

/// Lets `release` (by default, what the environment's `from` runs, else the newest) of
/// `application` into environment `environment` of `factory`: creates an Approval in its
/// namespace, after checking the promotion policy allows it. RBAC decides whether you may.
pub async fn promote(
    client: &Client,
    factory: &str,
    application: &str,
    environment: &str,
    release: Option<&str>,
) -> Result<String> {
    let team = team(client, factory).await?;
    delivered(&team, application)?;
    let names: Vec<&str> = team.spec.environments.iter().flatten().map(|e| e.name.as_str()).collect();
    if !names.contains(&environment) {
        bail!("factory {factory} has no environment {environment} (it has: {})", names.join(", "));
    }
    let envs = Api::<Environment>::all(client.clone());
    let object = environment_object_name(factory, environment);
    let env = envs
        .get_opt(&object)
        .await
        .with_context(|| format!("reading environment {object}"))?
        .filter(|e| e.spec.factory == factory)
        .with_context(|| format!("environment {object} of factory {factory} does not exist yet"))?;
    let releases = Api::<Release>::namespaced(client.clone(), &cicd_namespace(factory));
    let name = match release {
        Some(name) => name.to_string(),
        None => default_release(&envs, &releases, factory, application, &env).await?,
    };
    let chosen = releases
        .get_opt(&name)
        .await?
        .with_context(|| format!("release {name} not found in {}", cicd_namespace(factory)))?;
    if chosen.spec.application != application {
        bail!("release {name} is a release of {}, not of {application}", chosen.spec.application);
    }
    if let Err(why) = factory_core::delivery::admissible(&chosen, env.spec.promotion.as_ref(), Timestamp::now()) {
        bail!("promotion of {name} to {environment} refused by its policy: {why}");
    }
    let mut approval = Approval::new("", ApprovalSpec { application: application.into(), release: name.clone() });
    approval.metadata.name = None;
    approval.metadata.generate_name = Some(format!("{application}-"));
    approval.metadata.labels = Some([(labels::APPLICATION.to_string(), application.to_string())].into_iter().collect());
    Api::<Approval>::namespaced(client.clone(), &env.spec.namespace)
        .create(&PostParams::default(), &approval)
        .await
        .map_err(|e| {
            anyhow::anyhow!("approval of {name} for {environment} refused: {}", factory_apply::api_message(&e))
        })?;
    Ok(format!("release {name} of {application} approved for {environment} ({})", env.spec.namespace))
}

/// What the environment's `from` runs, else the newest release of `application`.
async fn default_release(
    envs: &Api<Environment>,
    releases: &Api<Release>,
    factory: &str,
    application: &str,
    env: &Environment,
) -> Result<String> {
    if let Some(from) = env.spec.promotion.as_ref().and_then(|p| p.from.as_deref()) {
        let upstream = envs.get_opt(&environment_object_name(factory, from)).await?;
        let running = upstream
            .and_then(|e| e.status)
            .and_then(|s| s.applications.into_iter().find(|a| a.name == application))
            .and_then(|a| a.release);
        return running
            .map(|r| r.name)
            .with_context(|| format!("{from} runs no release of {application} yet; say which with --release"));
    }
    let mut all: Vec<Release> = releases
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|r| r.spec.application == application)
        .collect();
    all.sort_by_key(|r| r.creation_timestamp().map(|t| t.0));
    all.last().map(ResourceExt::name_any).with_context(|| format!("no release of {application} recorded yet"))
}
