//! The aggregated view of a team factory's Tekton PipelineRuns: counts by state, the latest run
//! of each application and pipeline, and the last failure. Pure: runs in, summary out.

use std::collections::BTreeMap;

use factory_api::factory::{RunSummary, RunsSummary};
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

/// Label naming the application a PipelineRun belongs to.
pub const APPLICATION_LABEL: &str = "factories.dev/application";
/// Label naming the revision a PipelineRun builds.
pub const REVISION_LABEL: &str = "factories.dev/revision";
/// Label naming the environment a PipelineRun deploys to.
pub const ENVIRONMENT_LABEL: &str = "factories.dev/environment";

fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn label<'a>(run: &'a Value, key: &str) -> &'a str {
    run.pointer("/metadata/labels").and_then(|l| l.get(key)).and_then(Value::as_str).unwrap_or("")
}

/// The value of a PipelineRun's result `name`, when it is set.
pub fn result<'a>(run: &'a Value, name: &str) -> Option<&'a str> {
    run.pointer("/status/results")
        .and_then(Value::as_array)
        .and_then(|rs| rs.iter().find(|r| text(r, "/name") == name))
        .and_then(|r| r.get("value"))
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
}

/// One run as the summary shows it; `now` measures runs still going.
pub fn run(run: &Value, now: Timestamp) -> RunSummary {
    let succeeded = run
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| text(c, "/type") == "Succeeded"));
    let (result, reason) = match succeeded.map(|c| (text(c, "/status"), text(c, "/reason"))) {
        Some(("True", reason)) => ("Succeeded", reason),
        Some(("False", reason)) => ("Failed", reason),
        Some((_, reason)) => ("Running", reason),
        None => ("Pending", ""),
    };
    let start = run.pointer("/status/startTime").and_then(Value::as_str);
    let end = run.pointer("/status/completionTime").and_then(Value::as_str);
    let parse = |t: Option<&str>| t.and_then(|t| t.parse::<Timestamp>().ok());
    let duration = parse(start).map(|s| parse(end).unwrap_or(now).duration_since(s).as_secs());
    let pipeline = match label(run, "tekton.dev/pipeline") {
        "" => text(run, "/spec/pipelineRef/name"),
        p => p,
    };
    RunSummary {
        application: label(run, APPLICATION_LABEL).to_string(),
        pipeline: pipeline.to_string(),
        name: text(run, "/metadata/name").to_string(),
        result: result.to_string(),
        revision: label(run, REVISION_LABEL).to_string(),
        environment: label(run, ENVIRONMENT_LABEL).to_string(),
        start_time: start.map(str::to_string),
        duration_seconds: duration,
        reason: reason.to_string(),
        // A successful build run records a release named after it (`factory_core::delivery`).
        release: (result == "Succeeded" && self::result(run, "IMAGE_DIGEST").is_some())
            .then(|| text(run, "/metadata/name").to_string()),
    }
}

/// Summarises `runs` (PipelineRun objects as JSON).
pub fn summarise(runs: &[Value], now: Timestamp) -> RunsSummary {
    let mut summary = RunsSummary::default();
    let mut latest: BTreeMap<(String, String), (String, RunSummary)> = BTreeMap::new();
    let mut last_failure: Option<(String, String)> = None;
    for value in runs {
        let r = run(value, now);
        match r.result.as_str() {
            "Succeeded" => summary.succeeded += 1,
            "Failed" => summary.failed += 1,
            _ => summary.running += 1,
        }
        let when = r.start_time.clone().unwrap_or_else(|| text(value, "/metadata/creationTimestamp").to_string());
        if r.result == "Failed" {
            let message = value
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .and_then(|cs| cs.iter().find(|c| text(c, "/type") == "Succeeded"))
                .map(|c| text(c, "/message"))
                .unwrap_or("");
            let why = format!("{} ({} of {}): {}: {message}", r.name, r.pipeline, r.application, r.reason);
            if last_failure.as_ref().is_none_or(|(t, _)| when > *t) {
                last_failure = Some((when.clone(), why));
            }
        }
        let key = (r.application.clone(), r.pipeline.clone());
        if latest.get(&key).is_none_or(|(t, _)| when > *t) {
            latest.insert(key, (when, r));
        }
    }
    summary.latest = latest.into_values().map(|(_, r)| r).collect();
    summary.last_failure = last_failure.map(|(_, why)| why);
    summary.overview = format!("{} ok, {} failed, {} running", summary.succeeded, summary.failed, summary.running);
    summary
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pr(name: &str, app: &str, start: &str, status: Option<(&str, &str)>, end: Option<&str>) -> Value {
        let mut v = json!({"metadata": {"name": name, "labels": {APPLICATION_LABEL: app, "tekton.dev/pipeline": "build",
            REVISION_LABEL: "abc", ENVIRONMENT_LABEL: "test"}}, "status": {"startTime": start}});
        if let Some((s, reason)) = status {
            v["status"]["conditions"] =
                json!([{"type": "Succeeded", "status": s, "reason": reason, "message": "step build failed"}]);
        }
        if let Some(e) = end {
            v["status"]["completionTime"] = json!(e);
        }
        v
    }

    #[test]
    fn counts_latest_and_last_failure() {
        let now: Timestamp = "2026-01-01T00:10:00Z".parse().unwrap();
        let runs = vec![
            pr("a-1", "a", "2026-01-01T00:00:00Z", Some(("True", "Succeeded")), Some("2026-01-01T00:01:00Z")),
            pr("a-2", "a", "2026-01-01T00:05:00Z", Some(("False", "Failed")), Some("2026-01-01T00:06:30Z")),
            pr("b-1", "b", "2026-01-01T00:08:00Z", Some(("Unknown", "Running")), None),
            pr("c-1", "c", "2026-01-01T00:09:00Z", None, None),
        ];
        let s = summarise(&runs, now);
        assert_eq!((s.succeeded, s.failed, s.running), (1, 1, 2));
        assert_eq!(s.overview, "1 ok, 1 failed, 2 running");
        assert_eq!(s.latest.len(), 3);
        assert_eq!((s.latest[0].name.as_str(), s.latest[0].result.as_str()), ("a-2", "Failed"));
        assert_eq!(s.latest[0].duration_seconds, Some(90));
        assert_eq!(s.latest[1].duration_seconds, Some(120), "a running run counts up to now");
        assert_eq!(s.latest[2].result, "Pending");
        assert!(s.last_failure.unwrap().contains("a-2 (build of a): Failed: step build failed"));
    }
}
