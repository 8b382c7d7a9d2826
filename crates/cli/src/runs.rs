//! `kubectl factory runs <factory>`: one table of the pipeline runs of every application of a
//! team factory, read from its status (the operator keeps it current from a watch).

use std::io::Write;

use anyhow::{Context, Result, bail};
use factory_api::Factory;
use factory_api::factory::RunsSummary;
use kube::{Api, Client};

use crate::Output;

/// Reads the runs view of `factory`.
pub async fn load(client: &Client, factory: &str) -> Result<RunsSummary> {
    let f = Api::<Factory>::all(client.clone())
        .get_opt(factory)
        .await
        .with_context(|| format!("reading factory {factory}"))?
        .with_context(|| format!("factory {factory} not found (kubectl get factories lists them)"))?;
    match f.status.and_then(|s| s.runs) {
        Some(runs) => Ok(runs),
        None => {
            bail!("factory {factory} has no pipeline runs view yet (is it a team factory, and has it been reconciled?)")
        }
    }
}

/// Prints the view as a table, JSON or YAML.
pub fn print(runs: &RunsSummary, output: Output, out: &mut dyn Write) -> Result<()> {
    crate::render(runs, output, out, |out| {
        if let Some(why) = &runs.unavailable {
            writeln!(out, "{why}")?;
            return Ok(());
        }
        let mut rows = vec![
            ["APPLICATION", "PIPELINE", "RUN", "RESULT", "REVISION", "ENVIRONMENT", "STARTED", "DURATION"]
                .map(String::from),
        ];
        for r in &runs.latest {
            rows.push([
                r.application.clone(),
                r.pipeline.clone(),
                r.name.clone(),
                r.result.clone(),
                r.revision.chars().take(12).collect(),
                r.environment.clone(),
                r.start_time.clone().unwrap_or_default(),
                r.duration_seconds.map(|d| format!("{d}s")).unwrap_or_default(),
            ]);
        }
        crate::write_table(&rows, out)?;
        writeln!(out, "\n{} succeeded, {} failed, {} running", runs.succeeded, runs.failed, runs.running)?;
        if let Some(f) = &runs.last_failure {
            writeln!(out, "last failure: {f}")?;
        }
        Ok(())
    })
}
