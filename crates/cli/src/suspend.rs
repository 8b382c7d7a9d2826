//! `kubectl factory suspend|resume`: stop or restart reconciling a factory, an environment or
//! a preview by setting its `spec.suspend`.

use anyhow::{Context, Result, bail};
use factory_api::{Environment, Factory, PreviewEnvironment};
use factory_core::names::cicd_namespace;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

/// What to suspend or resume, from the command's words: `NAME` (a factory) or `KIND NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A Factory.
    Factory(String),
    /// An Environment.
    Environment(String),
    /// A PreviewEnvironment of a team factory.
    Preview {
        /// The team factory (its cicd namespace holds the preview).
        factory: String,
        /// The preview.
        name: String,
    },
}

impl Target {
    /// Reads `NAME` or `KIND NAME` (`factory`, `environment` or `preview`; previews need `factory`).
    pub fn parse(words: &[String], factory: Option<&str>) -> Result<Self> {
        match words {
            [name] => Ok(Target::Factory(name.clone())),
            [kind, name] => match kind.as_str() {
                "factory" | "factories" | "fac" => Ok(Target::Factory(name.clone())),
                "environment" | "environments" | "env" => Ok(Target::Environment(name.clone())),
                "preview" | "previews" | "previewenvironment" | "pe" => match factory {
                    Some(f) => Ok(Target::Preview { factory: f.to_string(), name: name.clone() }),
                    None => bail!("a preview lives in its factory's cicd namespace: say which with --factory"),
                },
                other => bail!("unknown kind {other}: factory, environment or preview"),
            },
            _ => bail!("say NAME (a factory) or KIND NAME (factory, environment or preview)"),
        }
    }
}

/// `kubectl factory suspend|resume WORDS [--factory F]`: parses the target and sets it.
pub async fn run(client: &Client, words: &[String], factory: Option<&str>, suspend: bool) -> Result<String> {
    set(client, &Target::parse(words, factory)?, suspend).await
}

/// Sets `spec.suspend` of `target` to `suspend`; returns what was done, kubectl style.
pub async fn set(client: &Client, target: &Target, suspend: bool) -> Result<String> {
    let patch = Patch::Merge(json!({"spec": {"suspend": suspend}}));
    let params = PatchParams::default();
    let done = if suspend { "suspended" } else { "resumed" };
    let (what, result) = match target {
        Target::Factory(name) => (
            format!("factory.factories.dev/{name}"),
            Api::<Factory>::all(client.clone()).patch(name, &params, &patch).await.map(drop),
        ),
        Target::Environment(name) => (
            format!("environment.factories.dev/{name}"),
            Api::<Environment>::all(client.clone()).patch(name, &params, &patch).await.map(drop),
        ),
        Target::Preview { factory, name } => (
            format!("previewenvironment.factories.dev/{name}"),
            Api::<PreviewEnvironment>::namespaced(client.clone(), &cicd_namespace(factory))
                .patch(name, &params, &patch)
                .await
                .map(drop),
        ),
    };
    result.with_context(|| format!("setting spec.suspend of {what}"))?;
    Ok(format!("{what} {done}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_name_alone_is_a_factory_and_previews_need_their_factory() {
        assert_eq!(Target::parse(&words(&["shop"]), None).unwrap(), Target::Factory("shop".into()));
        assert_eq!(
            Target::parse(&words(&["env", "shop-prod"]), None).unwrap(),
            Target::Environment("shop-prod".into())
        );
        assert!(Target::parse(&words(&["preview", "p"]), None).unwrap_err().to_string().contains("--factory"));
        assert_eq!(
            Target::parse(&words(&["preview", "p"]), Some("shop")).unwrap(),
            Target::Preview { factory: "shop".into(), name: "p".into() }
        );
        assert!(Target::parse(&words(&["widget", "w"]), None).is_err());
    }
}
