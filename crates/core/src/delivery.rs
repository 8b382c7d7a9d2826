//! Which release of an application an environment runs, by its promotion policy, and how a
//! release's images replace the images its configuration names. Time is a parameter.

use std::time::Duration;

use factory_api::environment::Promotion;
use factory_api::{Approval, Release, ReleaseImage, ReleaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde_json::Value;

use crate::manifests::Manifest;

/// What an environment should run of one application.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Decision {
    /// The release to run; `None` while there is none it may take (and none running).
    pub release: Option<String>,
    /// What the next release waits for, or why an approval was refused; empty when nothing waits.
    pub waiting: String,
    /// When a release waiting for time may move on: the environment looks again then.
    pub recheck_at: Option<Timestamp>,
    /// The release that may enter but for an approval, if one waits for it.
    pub awaiting_approval: Option<String>,
}

/// When an object was created, for ordering (the oldest first; unknown sorts first).
fn created(meta: &ObjectMeta) -> Timestamp {
    meta.creation_timestamp.as_ref().map_or(Timestamp::UNIX_EPOCH, |t| t.0)
}

fn name(meta: &ObjectMeta) -> String {
    meta.name.clone().unwrap_or_default()
}

/// A release the application can no longer deploy (its `Ready` condition is false).
fn invalid(release: &Release) -> bool {
    release.status.as_ref().is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "False"))
}

/// Whether `release` may enter an environment with `policy`: it has been healthy in the
/// policy's `from` environment for `healthy_for`. `Err` says what it waits for.
pub fn admissible(release: &Release, policy: Option<&Promotion>, now: Timestamp) -> Result<(), String> {
    let Some(from) = policy.and_then(|p| p.from.as_deref()) else { return Ok(()) };
    let name = name(&release.metadata);
    let healthy = release.status.as_ref().and_then(|s| s.healthy_in.iter().find(|h| h.environment == from));
    let Some(healthy) = healthy else { return Err(format!("release {name} has not been healthy in {from} yet")) };
    let ready_at = ready_at(release, policy).unwrap_or(healthy.since.0);
    if now < ready_at {
        return Err(format!(
            "release {name} has been healthy in {from} since {}; it may move on at {ready_at}",
            healthy.since.0
        ));
    }
    Ok(())
}

/// When `release` has been healthy in the policy's `from` long enough; `None` before it is
/// healthy there (or without `from`).
fn ready_at(release: &Release, policy: Option<&Promotion>) -> Option<Timestamp> {
    let from = policy.and_then(|p| p.from.as_deref())?;
    let healthy = release.status.as_ref()?.healthy_in.iter().find(|h| h.environment == from)?;
    Some(healthy.since.0 + SignedDuration::try_from(healthy_for(policy)).unwrap_or(SignedDuration::MAX))
}

fn healthy_for(policy: Option<&Promotion>) -> Duration {
    policy.and_then(|p| p.healthy_for.as_deref()).and_then(|d| crate::duration::parse(d).ok()).unwrap_or_default()
}

/// Chooses the release of one application an environment runs. `releases` and `approvals` are
/// the application's (approvals from the environment's namespace); `current` is what runs.
///
/// Without `approval` in the policy, the newest release admitted by the policy runs, unless an
/// approval made after it names another (a promotion by hand, a roll-back). With `approval`,
/// only approved releases run: the newest approval whose release is admitted.
pub fn choose(
    policy: Option<&Promotion>,
    releases: &[Release],
    approvals: &[Approval],
    current: Option<&str>,
    now: Timestamp,
) -> Decision {
    let mut valid: Vec<&Release> = releases.iter().filter(|r| !invalid(r)).collect();
    valid.sort_by_key(|r| (created(&r.metadata), name(&r.metadata)));
    let mut approved: Vec<&Approval> = approvals.iter().collect();
    approved.sort_by_key(|a| (created(&a.metadata), name(&a.metadata)));
    let find = |wanted: &str| valid.iter().copied().find(|r| name(&r.metadata) == wanted);

    // The newest approval naming a release that may enter; newer ones that may not are reported.
    let mut refused = Vec::new();
    let mut by_hand = None;
    for approval in approved.iter().rev() {
        let Some(release) = find(&approval.spec.release) else {
            refused.push(format!(
                "approval {} names release {}, which is not a valid release of {}",
                name(&approval.metadata),
                approval.spec.release,
                approval.spec.application
            ));
            continue;
        };
        match admissible(release, policy, now) {
            Ok(()) => {
                by_hand = Some((*approval, release));
                break;
            }
            Err(why) => refused.push(format!("approval {} is not honoured: {why}", name(&approval.metadata))),
        }
    }
    let needs_approval = policy.is_some_and(|p| p.approval);
    let newest = valid.last().copied();
    let automatic =
        if needs_approval { None } else { valid.iter().rev().copied().find(|r| admissible(r, policy, now).is_ok()) };
    let chosen = match (automatic, by_hand) {
        (Some(auto), Some((approval, release))) => {
            Some(if created(&approval.metadata) >= created(&auto.metadata) { release } else { auto })
        }
        (auto, hand) => auto.or(hand.map(|(_, r)| r)),
    };
    let chosen = chosen.map(|r| name(&r.metadata)).or_else(|| current.map(str::to_string));
    let mut waiting = refused;
    let mut recheck_at = None;
    let mut awaiting_approval = None;
    if let Some(newest) = newest.filter(|n| Some(name(&n.metadata)) != chosen) {
        match admissible(newest, policy, now) {
            Err(why) => {
                recheck_at = ready_at(newest, policy).filter(|at| *at > now);
                waiting.push(why);
            }
            Ok(()) if needs_approval => {
                waiting.push(format!("release {} waits for approval", name(&newest.metadata)));
                awaiting_approval = Some(name(&newest.metadata));
            }
            Ok(()) => {}
        }
    }
    if chosen.is_none() && newest.is_none() {
        waiting.push("no release recorded yet".into());
    }
    Decision { release: chosen, waiting: waiting.join("; "), recheck_at, awaiting_approval }
}

/// The release a successful build PipelineRun (`run`, as JSON) produced: the run's name, its
/// application and revision labels and its `IMAGE_URL`/`IMAGE_DIGEST` results, the image named
/// after the last segment of its repository. `None` for a run that did not succeed, or lacks
/// any of them.
pub fn release_from_run(run: &Value) -> Option<(String, ReleaseSpec)> {
    let label = |key: &str| run.pointer("/metadata/labels").and_then(|l| l.get(key)).and_then(Value::as_str);
    let application = label(crate::runs::APPLICATION_LABEL)?;
    let revision = label(crate::runs::REVISION_LABEL)?;
    let succeeded = run
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Succeeded" && c["status"] == "True"));
    let (url, digest) = (crate::runs::result(run, "IMAGE_URL")?, crate::runs::result(run, "IMAGE_DIGEST")?);
    let name = run.pointer("/metadata/name").and_then(Value::as_str)?;
    if !succeeded {
        return None;
    }
    let repository = repository(url);
    let image = repository.rsplit('/').next().unwrap_or(repository);
    let spec = ReleaseSpec {
        application: application.to_string(),
        revision: revision.to_string(),
        images: vec![ReleaseImage { name: image.to_string(), reference: format!("{repository}@{digest}") }],
        pipeline_run: Some(name.to_string()),
    };
    Some((name.to_string(), spec))
}

/// The commit SHA of a release's revision (`main@sha1:<sha>`, `sha1:<sha>` or `<sha>`).
pub fn commit(revision: &str) -> &str {
    let sha = revision.rsplit('@').next().unwrap_or(revision);
    sha.strip_prefix("sha1:").unwrap_or(sha)
}

/// Sets the image of every container (and init container) of the workloads in `objects` that
/// names one of `images` to that image's pinned reference; returns the image names no
/// container used.
pub fn pin_images(objects: &mut [Manifest], images: &[ReleaseImage]) -> Vec<String> {
    let mut used = vec![false; images.len()];
    for manifest in objects.iter_mut() {
        let object = &mut manifest.object;
        let pod = match object["kind"].as_str() {
            Some("Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job") => {
                &mut object["spec"]["template"]["spec"]
            }
            Some("CronJob") => &mut object["spec"]["jobTemplate"]["spec"]["template"]["spec"],
            Some("Pod") => &mut object["spec"],
            _ => continue,
        };
        for list in ["initContainers", "containers"] {
            let Some(containers) = pod.get_mut(list).and_then(Value::as_array_mut) else { continue };
            for container in containers {
                let Some(image) = container["image"].as_str() else { continue };
                if let Some(i) = images.iter().position(|candidate| names(image, candidate)) {
                    container["image"] = Value::String(images[i].reference.clone());
                    used[i] = true;
                }
            }
        }
    }
    images.iter().zip(used).filter(|(_, used)| !used).map(|(image, _)| image.name.clone()).collect()
}

/// The repository of an image reference, without tag or digest.
fn repository(image: &str) -> &str {
    let image = image.split('@').next().unwrap_or(image);
    match image.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => repo,
        _ => image,
    }
}

/// Whether a container's `image` means the release image `candidate`: the name itself, a
/// repository that is the name or ends in `/<name>`, or the reference's own repository.
fn names(image: &str, candidate: &ReleaseImage) -> bool {
    let repo = repository(image);
    image == candidate.name
        || repo == candidate.name
        || repo.ends_with(&format!("/{}", candidate.name))
        || repo == repository(&candidate.reference)
}

#[cfg(test)]
mod tests {
    use super::*;
    use factory_api::release::{ApprovalSpec, HealthyIn, ReleaseSpec, ReleaseStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use serde_json::json;

    fn at(seconds: i64) -> Timestamp {
        "2026-12-04T10:00:00Z".parse::<Timestamp>().expect("time") + SignedDuration::from_secs(seconds)
    }

    fn release(name: &str, created: i64, healthy_in: &[(&str, i64)]) -> Release {
        let mut r = Release::new(
            name,
            ReleaseSpec { application: "web".into(), revision: "a".repeat(40), images: vec![], pipeline_run: None },
        );
        r.metadata.creation_timestamp = Some(Time(at(created)));
        let healthy_in =
            healthy_in.iter().map(|(e, s)| HealthyIn { environment: (*e).into(), since: Time(at(*s)) }).collect();
        r.status = Some(ReleaseStatus { conditions: vec![], healthy_in });
        r
    }

    fn approval(name: &str, release: &str, created: i64) -> Approval {
        let mut a = Approval::new(name, ApprovalSpec { application: "web".into(), release: release.into() });
        a.metadata.creation_timestamp = Some(Time(at(created)));
        a
    }

    fn policy(from: Option<&str>, healthy_for: Option<&str>, approval: bool) -> Promotion {
        Promotion { from: from.map(Into::into), healthy_for: healthy_for.map(Into::into), approval }
    }

    #[test]
    fn the_first_environment_follows_every_new_release() {
        let releases = [release("web-1", 0, &[]), release("web-2", 10, &[])];
        let d = choose(None, &releases, &[], Some("web-1"), at(20));
        assert_eq!(
            d,
            Decision {
                release: Some("web-2".into()),
                waiting: String::new(),
                recheck_at: None,
                awaiting_approval: None
            }
        );
        assert_eq!(choose(None, &[], &[], None, at(0)).waiting, "no release recorded yet");
    }

    #[test]
    fn stage_takes_what_was_healthy_in_test_long_enough() {
        let stage = policy(Some("test"), Some("60s"), false);
        let releases = [release("web-1", 0, &[("test", 5), ("stage", 70)]), release("web-2", 100, &[("test", 110)])];
        let early = choose(Some(&stage), &releases, &[], Some("web-1"), at(150));
        assert_eq!(early.release.as_deref(), Some("web-1"));
        assert!(early.waiting.starts_with("release web-2 has been healthy in test since"), "{}", early.waiting);
        assert_eq!(early.recheck_at, Some(at(170)), "looks again when web-2 may move on");
        let later = choose(Some(&stage), &releases, &[], Some("web-1"), at(171));
        assert_eq!(
            later,
            Decision {
                release: Some("web-2".into()),
                waiting: String::new(),
                recheck_at: None,
                awaiting_approval: None
            }
        );
    }

    #[test]
    fn prod_runs_approved_releases_only() {
        let prod = policy(Some("stage"), None, true);
        let releases = [
            release("web-1", 0, &[("stage", 5)]),
            release("web-2", 100, &[("stage", 110)]),
            release("web-3", 200, &[]),
        ];
        let none = choose(Some(&prod), &releases, &[], None, at(300));
        assert_eq!(none.release, None);
        assert_eq!(none.waiting, "release web-3 has not been healthy in stage yet");
        let approved = [approval("a1", "web-2", 120)];
        let d = choose(Some(&prod), &releases, &approved, None, at(300));
        assert_eq!(d.release.as_deref(), Some("web-2"));
        let skipping = [approval("a1", "web-2", 120), approval("a2", "web-3", 210)];
        let d = choose(Some(&prod), &releases, &skipping, Some("web-2"), at(300));
        assert_eq!(d.release.as_deref(), Some("web-2"), "skipping stage is not honoured");
        assert!(
            d.waiting.starts_with("approval a2 is not honoured: release web-3 has not been healthy in stage yet"),
            "{}",
            d.waiting
        );
        let rollback = [approval("a1", "web-2", 120), approval("a3", "web-1", 250)];
        assert_eq!(choose(Some(&prod), &releases, &rollback, Some("web-2"), at(300)).release.as_deref(), Some("web-1"));
        assert_eq!(none.awaiting_approval, None, "web-3 is not admitted: nobody is asked for it");
        let healthy = [release("web-1", 0, &[("stage", 5)]), release("web-2", 100, &[("stage", 110)])];
        let asking = choose(Some(&prod), &healthy, &[approval("a1", "web-1", 50)], Some("web-1"), at(300));
        assert_eq!(asking.awaiting_approval.as_deref(), Some("web-2"));
        assert_eq!(asking.waiting, "release web-2 waits for approval");
    }

    #[test]
    fn an_approval_after_the_newest_release_rolls_back_an_automatic_environment() {
        let releases = [release("web-1", 0, &[]), release("web-2", 10, &[])];
        let back = [approval("a1", "web-1", 20)];
        assert_eq!(choose(None, &releases, &back, Some("web-2"), at(30)).release.as_deref(), Some("web-1"));
        let newer = [release("web-1", 0, &[]), release("web-2", 10, &[]), release("web-3", 40, &[])];
        assert_eq!(choose(None, &newer, &back, Some("web-1"), at(50)).release.as_deref(), Some("web-3"));
    }

    #[test]
    fn a_successful_build_run_records_its_release() {
        let digest = format!("sha256:{}", "2".repeat(64));
        let sha = "3".repeat(40);
        let run = |state: &str| {
            json!({"metadata": {"name": "web-build-x1", "labels": {"factories.dev/application": "web", "factories.dev/revision": format!("main@sha1:{sha}")}},
            "status": {"conditions": [{"type": "Succeeded", "status": state}],
                "results": [{"name": "IMAGE_URL", "value": "registry.example.com/shop/web:main"}, {"name": "IMAGE_DIGEST", "value": digest}]}})
        };
        let (name, spec) = release_from_run(&run("True")).expect("a release");
        assert_eq!(name, "web-build-x1");
        assert_eq!(
            spec.images,
            vec![ReleaseImage { name: "web".into(), reference: format!("registry.example.com/shop/web@{digest}") }]
        );
        assert_eq!((spec.application.as_str(), commit(&spec.revision)), ("web", sha.as_str()));
        assert_eq!(release_from_run(&run("False")), None);
        assert_eq!(commit(&sha), sha);
    }

    #[test]
    fn images_follow_the_release_by_name_or_repository() {
        let digest = format!("sha256:{}", "1".repeat(64));
        let images = [
            ReleaseImage { name: "web".into(), reference: format!("registry.example.com/shop/web@{digest}") },
            ReleaseImage { name: "unused".into(), reference: format!("registry.example.com/shop/unused@{digest}") },
        ];
        let manifest = |object: Value| Manifest { file: "f.yaml".into(), line: 1, document: 1, object };
        let mut objects = vec![
            manifest(json!({"kind": "Deployment", "spec": {"template": {"spec": {
                "initContainers": [{"name": "init", "image": "web"}],
                "containers": [{"name": "app", "image": "registry.example.com/shop/web:1.0"}, {"name": "side", "image": "busybox:1"}]}}}})),
            manifest(json!({"kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": {"spec": {
                "containers": [{"name": "job", "image": "localhost:5000/web"}]}}}}}})),
            manifest(json!({"kind": "ConfigMap", "data": {"image": "web"}})),
        ];
        assert_eq!(pin_images(&mut objects, &images), vec!["unused".to_string()]);
        let pinned = format!("registry.example.com/shop/web@{digest}");
        let pod = &objects[0].object["spec"]["template"]["spec"];
        assert_eq!(pod["initContainers"][0]["image"], json!(pinned));
        assert_eq!(pod["containers"][0]["image"], json!(pinned));
        assert_eq!(pod["containers"][1]["image"], json!("busybox:1"));
        assert_eq!(
            objects[1].object["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"],
            json!(pinned)
        );
        assert_eq!(objects[2].object["data"]["image"], json!("web"));
    }
}
