//! Shared images of a platform factory: when a build is due, what its PipelineRun looks like,
//! and what the last runs say about the image. Pure: definitions, runs and the time in.

use std::collections::BTreeMap;

use factory_api::factory::{ImageStatus, SharedImage};
use factory_api::labels;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use crate::names::{sanitize_label, stable_hash};

/// Default period after which every image is built again.
pub const DEFAULT_SCHEDULE_SECS: u64 = 168 * 3600;

/// Digest of what an image is built from: the git tree ids of its context and of the CA bundle
/// (content hashes, so any change inside them changes it) and its spec.
pub fn definition(image: &SharedImage, context_id: Option<&str>, ca_id: Option<&str>) -> String {
    let spec = serde_json::to_string(image).unwrap_or_default();
    let text = format!("{}\n{}\n{spec}", context_id.unwrap_or("-"), ca_id.unwrap_or("-"));
    format!("{:016x}", stable_hash(text.as_bytes()))
}

/// Name of the run that builds `image` at `definition` in the schedule period holding `now`.
/// The same inputs give the same name, so a repeated reconcile never starts a build twice; a
/// new definition or a new period gives a new one. Each image's periods are offset by a hash of
/// its name, so images are not all rebuilt at the same moment.
pub fn run_name(image: &str, definition: &str, schedule_secs: u64, now: Timestamp) -> String {
    let schedule = schedule_secs.max(1);
    let offset = stable_hash(image.as_bytes()) % schedule;
    let secs = u64::try_from(now.as_second()).unwrap_or(0);
    let period = (secs + offset) / schedule;
    let suffix = stable_hash(format!("{definition}/{period}").as_bytes());
    sanitize_label(&format!("image-{image}-{:010x}", suffix & 0xff_ffff_ffff), 63)
}

/// Everything a build of `image` needs to know, passed as params.
pub struct BuildInput<'a> {
    /// The platform repository's URL.
    pub url: &'a str,
    /// The commit to build from.
    pub revision: &'a str,
    /// The CA bundle's path in the repository, or empty.
    pub ca_path: &'a str,
    /// The definition digest.
    pub definition: &'a str,
}

/// The PipelineRun that builds `image`.
pub fn build_run(image: &SharedImage, name: &str, namespace: &str, input: &BuildInput<'_>) -> Value {
    let mut params = vec![
        json!({"name": "image", "value": image.name}),
        json!({"name": "context", "value": image.context}),
        json!({"name": "ca-path", "value": input.ca_path}),
        json!({"name": "url", "value": input.url}),
        json!({"name": "revision", "value": input.revision}),
    ];
    params.extend(image.params.iter().map(|(k, v)| json!({"name": k, "value": v})));
    json!({"apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
        "metadata": {"name": name, "namespace": namespace, "labels": {
            labels::IMAGE: image.name, labels::DEFINITION: input.definition,
            "tekton.dev/pipeline": image.pipeline, labels::MANAGED_BY: labels::MANAGED_BY_VALUE}},
        "spec": {"pipelineRef": {"name": image.pipeline}, "params": params}})
}

fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// The status of `image` from its runs (PipelineRuns labelled with it): the latest run and the
/// image of the latest successful one, from its `IMAGE_URL` and `IMAGE_DIGEST` results.
pub fn status(image: &str, definition: &str, runs: &[Value], now: Timestamp) -> ImageStatus {
    let mut out = ImageStatus { name: image.into(), definition: definition.into(), ..Default::default() };
    let created = |r: &Value| text(r, "/metadata/creationTimestamp").to_string();
    let mut mine: Vec<&Value> = runs
        .iter()
        .filter(|r| r.pointer("/metadata/labels").and_then(|l| l.get(labels::IMAGE)) == Some(&json!(image)))
        .collect();
    mine.sort_by_key(|r| (created(r), text(r, "/metadata/name").to_string()));
    if let Some(last) = mine.last() {
        out.last_run = Some(text(last, "/metadata/name").to_string());
        out.last_result = crate::runs::run(last, now).result;
    }
    let built = mine.iter().rev().find_map(|r| {
        let ok = crate::runs::run(r, now).result == "Succeeded";
        let reference = format!("{}@{}", crate::runs::result(r, "IMAGE_URL")?, crate::runs::result(r, "IMAGE_DIGEST")?);
        ok.then(|| (reference, r.pointer("/status/completionTime").and_then(Value::as_str).map(String::from)))
    });
    if let Some((reference, at)) = built {
        out.reference = Some(reference);
        out.built_at = at;
    }
    out
}

/// The images built so far, by name, for the `shared-images` ConfigMap of team factories.
pub fn references(images: &[ImageStatus]) -> BTreeMap<String, String> {
    images.iter().filter_map(|i| Some((i.name.clone(), i.reference.clone()?))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> SharedImage {
        SharedImage {
            name: "base".into(),
            pipeline: "build-image".into(),
            context: "images/base".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_new_ca_or_context_is_a_new_definition() {
        let a = definition(&image(), Some("tree1"), Some("ca1"));
        assert_eq!(a, definition(&image(), Some("tree1"), Some("ca1")));
        assert_ne!(a, definition(&image(), Some("tree1"), Some("ca2")));
        assert_ne!(a, definition(&image(), Some("tree2"), Some("ca1")));
        let mut other = image();
        other.params.insert("platform".into(), "linux/arm64".into());
        assert_ne!(a, definition(&other, Some("tree1"), Some("ca1")));
    }

    #[test]
    fn the_run_name_changes_with_the_definition_and_the_period_only() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let later = t0 + k8s_openapi::jiff::SignedDuration::from_secs(60);
        let week = t0 + k8s_openapi::jiff::SignedDuration::from_secs(7 * 24 * 3600);
        let name = run_name("base", "d1", DEFAULT_SCHEDULE_SECS, t0);
        assert!(name.starts_with("image-base-") && name.len() <= 63, "{name}");
        assert_eq!(name, run_name("base", "d1", DEFAULT_SCHEDULE_SECS, later));
        assert_ne!(name, run_name("base", "d2", DEFAULT_SCHEDULE_SECS, later));
        assert_ne!(name, run_name("base", "d1", DEFAULT_SCHEDULE_SECS, week));
    }

    #[test]
    fn status_takes_the_last_successful_image() {
        let now: Timestamp = "2026-01-02T00:00:00Z".parse().unwrap();
        let run = |name: &str, created: &str, ok: &str, url: Option<&str>| {
            let mut v = json!({"metadata": {"name": name, "creationTimestamp": created, "labels": {labels::IMAGE: "base"}},
                "status": {"conditions": [{"type": "Succeeded", "status": ok, "reason": "x"}],
                           "completionTime": created}});
            if let Some(url) = url {
                v["status"]["results"] =
                    json!([{"name": "IMAGE_URL", "value": url}, {"name": "IMAGE_DIGEST", "value": "sha256:ab"}]);
            }
            v
        };
        let runs = vec![
            run("r1", "2026-01-01T00:00:00Z", "True", Some("reg/base")),
            run("r2", "2026-01-01T01:00:00Z", "False", None),
            json!({"metadata": {"name": "other", "labels": {labels::IMAGE: "builder"}}}),
        ];
        let s = status("base", "d", &runs, now);
        assert_eq!(s.last_run.as_deref(), Some("r2"));
        assert_eq!(s.last_result, "Failed");
        assert_eq!(s.reference.as_deref(), Some("reg/base@sha256:ab"));
        assert_eq!(s.built_at.as_deref(), Some("2026-01-01T00:00:00Z"));
        assert_eq!(references(&[s]), BTreeMap::from([("base".to_string(), "reg/base@sha256:ab".to_string())]));
    }
}
