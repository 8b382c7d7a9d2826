//! `kubectl factory validate`: an offline check of a local checkout of a platform or application
//! repository, as the operator would load it — for pull-request checks. No cluster needed.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use factory_api::factory::HelmSpec;
use factory_api::{Factory, FactoryType};
use factory_core::manifests::{self, Manifest};
use factory_core::{baseline, render, validate};
use factory_tools::Chart;
use serde::Serialize;

use crate::tools::Renderer;
use crate::{Output, local};

/// What validation found.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// `platform` or `application`.
    pub repository: String,
    /// YAML files read.
    pub files: usize,
    /// Objects loaded.
    pub objects: usize,
    /// Every problem, naming file, line and object.
    pub errors: Vec<String>,
}

/// Where things are in the repository: from a Factory definition, or the conventions of
/// `examples/`.
pub enum Layout {
    /// A platform repository.
    Platform(Box<Factory>),
    /// An application repository: config root and pipelines path.
    Application {
        /// The application's name (a chart's release name).
        name: String,
        /// The configuration root (`deploy/`).
        config: String,
        /// The Tekton objects (`.tekton/`).
        pipelines: String,
        /// Its chart, if it has one.
        helm: Option<HelmSpec>,
    },
}

/// Decides the layout: the Factory in `factory_file` (for an application repository,
/// `application` picks the application), else a platform when `factories/` exists.
pub fn layout(root: &Path, factory_file: Option<&Path>, application: Option<&str>) -> Result<Layout> {
    let Some(file) = factory_file else {
        if root.join("factories").is_dir() {
            let factory: Factory = serde_json::from_value(serde_json::json!({
                "apiVersion": "factories.dev/v1alpha1", "kind": "Factory", "metadata": {"name": "platform"},
                "spec": {"type": "Environments", "cluster": {"path": "cluster/"}, "factories": {"path": "factories/"},
                         "pipelineTemplates": {"path": "pipelines/"},
                         "environmentClasses": local::subdirectories(root, "classes").iter()
                             .map(|c| serde_json::json!({"name": c, "path": format!("classes/{c}/")})).collect::<Vec<_>>()}
            }))?;
            return Ok(Layout::Platform(Box::new(factory)));
        }
        return Ok(Layout::Application {
            name: "application".into(),
            config: "deploy".into(),
            pipelines: ".tekton".into(),
            helm: None,
        });
    };
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let factory: Factory = serde_yaml::from_str(&text)
        .with_context(|| format!("{} is not a factories.dev/v1alpha1 Factory", file.display()))?;
    if factory.spec.factory_type == FactoryType::Environments {
        return Ok(Layout::Platform(Box::new(factory)));
    }
    let apps = factory.spec.applications.clone().unwrap_or_default();
    let app = match application {
        Some(name) => apps.iter().find(|a| a.name == name).with_context(|| {
            format!("factory {} has no application {name}", factory.metadata.name.clone().unwrap_or_default())
        })?,
        None if apps.len() == 1 => &apps[0],
        None => anyhow::bail!("the factory has {} applications: say which with --application", apps.len()),
    };
    Ok(Layout::Application {
        name: app.name.clone(),
        config: app.config.as_ref().map_or_else(|| "deploy".into(), |c| c.path.clone()),
        pipelines: app.pipelines.as_ref().map_or_else(|| ".tekton".into(), |p| p.path.clone()),
        helm: app.helm.clone(),
    })
}

fn load_into(report: &mut Report, tools: &Renderer, path: &str, vars: &BTreeMap<String, String>) -> Vec<Manifest> {
    load_layer(report, tools, path, vars, false)
}

/// Loads `path` into the report; with `chart_values`, leaving out the chart's values files.
fn load_layer(
    report: &mut Report,
    tools: &Renderer,
    path: &str,
    vars: &BTreeMap<String, String>,
    chart_values: bool,
) -> Vec<Manifest> {
    let files = match tools.read(path) {
        Ok(files) => {
            files.into_iter().filter(|f| !(chart_values && baseline::is_helm_values(&f.path))).collect::<Vec<_>>()
        }
        Err(e) => {
            report.errors.push(format!("{e:#}"));
            return Vec::new();
        }
    };
    report.files += files.len();
    match manifests::load(&files, vars) {
        Ok(m) => {
            report.objects += m.len();
            m
        }
        Err(errors) => {
            report.errors.extend(errors.iter().map(ToString::to_string));
            Vec::new()
        }
    }
}

/// Placeholder values for the variables the operator sets per target.
fn with_placeholders(mut vars: BTreeMap<String, String>, keys: &[&str]) -> BTreeMap<String, String> {
    for key in keys {
        vars.entry((*key).to_string()).or_insert_with(|| "validation".into());
    }
    vars
}

/// Validates the checkout at `root` laid out as `layout`, rendering kustomizations and charts
/// with `tools`.
pub fn check(root: &Path, layout: &Layout, tools: &Renderer) -> Report {
    let mut report = Report::default();
    match layout {
        Layout::Platform(factory) => {
            report.repository = "platform".into();
            let name = factory.metadata.name.clone().unwrap_or_else(|| "platform".into());
            let spec = &factory.spec;
            report.errors.extend(validate::factory(&name, spec).iter().map(ToString::to_string));
            let mut vars = spec.variables.clone();
            vars.insert("factory".into(), name.clone());
            if let Some(cluster) = &spec.cluster {
                load_into(&mut report, tools, &cluster.path, &vars);
            }
            if let Some(factories) = &spec.factories {
                for definition in load_into(&mut report, tools, &factories.path, &vars) {
                    check_definition(&mut report, &name, &definition);
                }
            }
            let class_vars = with_placeholders(vars.clone(), &["namespace", "environment", "class", "platform"]);
            for class in spec.environment_classes.iter().flatten() {
                load_into(&mut report, tools, &class.path, &class_vars);
            }
            let tekton_vars = with_placeholders(vars, &["namespace", "platform"]);
            if let Some(templates) = &spec.pipeline_templates {
                load_into(&mut report, tools, &templates.path, &tekton_vars);
            }
            if let Some(images) = &spec.images {
                load_into(&mut report, tools, &images.path, &tekton_vars);
                for image in &images.images {
                    if !root.join(&image.context).is_dir() {
                        report
                            .errors
                            .push(format!("image {}: context {} is not a directory", image.name, image.context));
                    }
                }
            }
        }
        Layout::Application { name, config, pipelines, helm } => {
            report.repository = "application".into();
            let vars =
                with_placeholders(BTreeMap::new(), &["factory", "environment", "namespace", "class", "application"]);
            let root_path = config.trim_end_matches('/');
            let mut layers = vec![format!("{root_path}/base")];
            for layer in ["classes", "environments"] {
                for name in local::subdirectories(root, &format!("{root_path}/{layer}")) {
                    layers.push(format!("{root_path}/{layer}/{name}"));
                }
            }
            for layer in &layers {
                // With a chart, the layers' values files are its values, not manifests.
                load_layer(&mut report, tools, layer, &vars, helm.is_some());
            }
            if let Some(helm) = helm {
                // With each layer's values in turn over the base's, as each environment has them.
                for layer in &layers {
                    let mut files =
                        baseline::helm_values_files(&[layers[0].clone(), layer.clone()], |f| root.join(f).is_file());
                    files.dedup();
                    let chart = Chart {
                        path: helm.chart.clone(),
                        values_files: files,
                        values: helm.values.clone(),
                        release: name.clone(),
                        namespace: "validation".into(),
                        capabilities: Default::default(),
                    };
                    match tools.chart(&chart) {
                        Ok(objects) => report.objects += objects.len(),
                        Err(e) => report.errors.push(format!("{e:#}")),
                    }
                }
            }
            let tekton_vars = with_placeholders(BTreeMap::new(), &["factory", "application", "namespace"]);
            load_into(&mut report, tools, pipelines, &tekton_vars);
        }
    }
    report
}

/// A team factory definition: it must build, and its spec must be valid.
fn check_definition(report: &mut Report, platform: &str, definition: &Manifest) {
    if let Err(e) = render::team_factory(platform, definition, &BTreeMap::new(), factory_api::DEFAULT_TENANT_NAMESPACE)
    {
        report.errors.push(e.to_string());
        return;
    }
    match serde_json::from_value::<Factory>(definition.object.clone()) {
        Ok(team) => report
            .errors
            .extend(validate::factory(definition.name(), &team.spec).iter().map(|e| format!("{definition}: {e}"))),
        Err(e) => report.errors.push(format!("{definition}: not a valid Factory: {e}")),
    }
}

/// Prints the report; the caller exits non-zero when it has errors.
pub fn print(report: &Report, output: Output, out: &mut dyn Write) -> Result<()> {
    crate::render(report, output, out, |out| {
        for error in &report.errors {
            writeln!(out, "error: {error}")?;
        }
        let verdict = if report.errors.is_empty() { "valid" } else { "INVALID" };
        writeln!(
            out,
            "{} repository {verdict}: {} files, {} objects, {} errors",
            report.repository,
            report.files,
            report.objects,
            report.errors.len()
        )?;
        Ok(())
    })
}
