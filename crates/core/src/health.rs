//! Whether an applied object is healthy, by the status rules Kubernetes tools share (kstatus):
//! a workload is current once its controller has seen its latest generation and rolled it out
//! (Deployments updated and available, StatefulSets updated and ready, DaemonSets scheduled and
//! available, Jobs complete); a Pod is running and ready; a claim is bound; any other kind is
//! judged by its `Ready` (and `Stalled`/`Reconciling`) conditions, and is current without them.

use std::time::Duration;

use factory_api::{ApplicationHealth, HealthState};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde_json::Value;

/// How long an application may take to become healthy when it says nothing.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// Objects named in a health message, at most.
const NAMED: usize = 5;

/// What an object's status says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Rolled out and serving as its spec asks.
    Current,
    /// Not there yet; the text says what is missing, such as `available 0/2`.
    InProgress(String),
    /// It will not get there without a change, such as a Deployment past its progress deadline.
    Failed(String),
}

/// One object that is not current.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unhealthy {
    /// `Kind namespace/name`.
    pub object: String,
    /// What its status says: in progress or failed.
    pub health: Health,
}

impl std::fmt::Display for Unhealthy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.health {
            Health::Current => write!(f, "{} is current", self.object),
            Health::InProgress(why) | Health::Failed(why) => write!(f, "{}: {why}", self.object),
        }
    }
}

/// An application's health in one place, from its objects that are not current (`unhealthy`),
/// what it was before (`previous`), whether this reconcile changed what it applied (`changed`:
/// its deadline starts again), its `timeout` and the time `now`.
pub fn assess(
    unhealthy: &[Unhealthy],
    previous: Option<&ApplicationHealth>,
    changed: bool,
    timeout: Duration,
    now: Timestamp,
) -> ApplicationHealth {
    let was = |state: HealthState| previous.filter(|p| p.state == state && !changed).and_then(|p| p.since.clone());
    let now_time = Time(now);
    if unhealthy.is_empty() {
        let since = was(HealthState::Healthy).unwrap_or(now_time);
        return ApplicationHealth { state: HealthState::Healthy, message: String::new(), since: Some(since) };
    }
    let failed: Vec<&Unhealthy> = unhealthy.iter().filter(|u| matches!(u.health, Health::Failed(_))).collect();
    let named = |list: &[&Unhealthy]| {
        let mut text: Vec<String> = list.iter().take(NAMED).map(ToString::to_string).collect();
        if list.len() > NAMED {
            text.push(format!("and {} more", list.len() - NAMED));
        }
        text.join("; ")
    };
    if !failed.is_empty() {
        let since = was(HealthState::Degraded).unwrap_or(now_time);
        return ApplicationHealth { state: HealthState::Degraded, message: named(&failed), since: Some(since) };
    }
    let waiting: Vec<&Unhealthy> = unhealthy.iter().collect();
    if let Some(since) = was(HealthState::Degraded) {
        // Still not there after its deadline: stays Degraded until a change or health, and
        // keeps saying why (the objects named are the ones waiting now).
        let message = format!("not healthy within {}s: {}", timeout.as_secs(), named(&waiting));
        return ApplicationHealth { state: HealthState::Degraded, message, since: Some(since) };
    }
    let started = was(HealthState::Progressing).unwrap_or(now_time);
    let deadline = started.0 + SignedDuration::try_from(timeout).unwrap_or(SignedDuration::MAX);
    if now > deadline {
        let message = format!("not healthy within {}s: {}", timeout.as_secs(), named(&waiting));
        return ApplicationHealth { state: HealthState::Degraded, message, since: Some(Time(now)) };
    }
    ApplicationHealth { state: HealthState::Progressing, message: named(&waiting), since: Some(started) }
}

/// The built-in kinds with a rule of their own; other built-in kinds (ConfigMaps, RBAC,
/// Services, CronJobs, ...) are current once written, and custom kinds are read for their conditions.
const WORKLOAD_KINDS: [(&str, &str); 8] = [
    ("apps", "Deployment"),
    ("apps", "StatefulSet"),
    ("apps", "DaemonSet"),
    ("apps", "ReplicaSet"),
    ("batch", "Job"),
    ("", "Pod"),
    ("", "PersistentVolumeClaim"),
    ("policy", "PodDisruptionBudget"),
];

/// Built-in groups whose kinds carry no status worth waiting for, unless listed above.
const BUILT_IN_GROUPS: [&str; 5] = ["", "apps", "batch", "policy", "autoscaling"];

/// Whether objects of `api_version`/`kind` have a status worth reading to judge their health.
pub fn has_rules(api_version: &str, kind: &str) -> bool {
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    WORKLOAD_KINDS.contains(&(group, kind)) || !(BUILT_IN_GROUPS.contains(&group) || group.ends_with(".k8s.io"))
}

/// The health of `object`, a live object as the API server returns it.
pub fn judge(object: &Value) -> Health {
    let status = &object["status"];
    let generation = object["metadata"]["generation"].as_i64();
    let observed = status["observedGeneration"].as_i64();
    if let (Some(generation), Some(observed)) = (generation, observed)
        && observed < generation
    {
        return Health::InProgress(format!("generation {generation} not yet observed (at {observed})"));
    }
    if let Some(failed) = condition(status, "Stalled").filter(|c| c.is_true()) {
        return Health::Failed(failed.text());
    }
    match object["kind"].as_str().unwrap_or_default() {
        "Deployment" => deployment(object, status),
        "StatefulSet" => stateful_set(object, status),
        "DaemonSet" => daemon_set(status),
        "ReplicaSet" => replica_set(object, status),
        "Job" => job(status),
        "Pod" => pod(status),
        "PersistentVolumeClaim" => match status["phase"].as_str() {
            Some("Bound") => Health::Current,
            phase => Health::InProgress(format!("claim is {}", phase.unwrap_or("Pending"))),
        },
        _ => generic(status),
    }
}

/// `spec.replicas`, which defaults to 1.
fn replicas(object: &Value) -> i64 {
    object["spec"]["replicas"].as_i64().unwrap_or(1)
}

fn count(status: &Value, field: &str) -> i64 {
    status[field].as_i64().unwrap_or(0)
}

/// The first rule a workload fails: `(what, have, want)` where `have < want`.
fn short_of(checks: &[(&str, i64, i64)]) -> Option<Health> {
    checks
        .iter()
        .find(|(_, have, want)| have < want)
        .map(|(what, have, want)| Health::InProgress(format!("{what} {have}/{want}")))
}

fn deployment(object: &Value, status: &Value) -> Health {
    if object["spec"]["paused"].as_bool() == Some(true) {
        return Health::InProgress("rollout is paused".into());
    }
    if let Some(c) = condition(status, "Progressing").filter(|c| c.reason() == "ProgressDeadlineExceeded") {
        return Health::Failed(c.text());
    }
    let want = replicas(object);
    let updated = count(status, "updatedReplicas");
    if let Some(short) = short_of(&[
        ("updated", updated, want),
        ("ready", count(status, "readyReplicas"), want),
        ("available", count(status, "availableReplicas"), want),
    ]) {
        return short;
    }
    let old = count(status, "replicas") - updated;
    if old > 0 {
        return Health::InProgress(format!("{old} old replicas are terminating"));
    }
    Health::Current
}

fn stateful_set(object: &Value, status: &Value) -> Health {
    let want = replicas(object);
    let partition = object["spec"]["updateStrategy"]["rollingUpdate"]["partition"].as_i64().unwrap_or(0);
    if let Some(short) = short_of(&[
        ("ready", count(status, "readyReplicas"), want),
        ("updated", count(status, "updatedReplicas"), want - partition),
    ]) {
        return short;
    }
    let (update, current) = (status["updateRevision"].as_str(), status["currentRevision"].as_str());
    if partition == 0 && update.is_some() && update != current {
        return Health::InProgress("the update is rolling out".into());
    }
    Health::Current
}

fn daemon_set(status: &Value) -> Health {
    let want = count(status, "desiredNumberScheduled");
    short_of(&[
        ("scheduled", count(status, "currentNumberScheduled"), want),
        ("updated", count(status, "updatedNumberScheduled"), want),
        ("available", count(status, "numberAvailable"), want),
        ("ready", count(status, "numberReady"), want),
    ])
    .unwrap_or(Health::Current)
}

fn replica_set(object: &Value, status: &Value) -> Health {
    if let Some(c) = condition(status, "ReplicaFailure").filter(|c| c.is_true()) {
        return Health::InProgress(c.text());
    }
    let want = replicas(object);
    short_of(&[
        ("labelled", count(status, "fullyLabeledReplicas"), want),
        ("ready", count(status, "readyReplicas"), want),
        ("available", count(status, "availableReplicas"), want),
    ])
    .unwrap_or(Health::Current)
}

fn job(status: &Value) -> Health {
    if let Some(c) = condition(status, "Failed").filter(|c| c.is_true()) {
        return Health::Failed(c.text());
    }
    if condition(status, "Complete").is_some_and(|c| c.is_true()) {
        return Health::Current;
    }
    Health::InProgress(format!(
        "job running: {} active, {} succeeded",
        count(status, "active"),
        count(status, "succeeded")
    ))
}

fn pod(status: &Value) -> Health {
    match status["phase"].as_str() {
        Some("Succeeded") => Health::Current,
        Some("Failed") => {
            Health::Failed(format!("pod failed: {}", status["reason"].as_str().unwrap_or("unknown reason")))
        }
        Some("Running") if condition(status, "Ready").is_some_and(|c| c.is_true()) => Health::Current,
        phase => Health::InProgress(format!("pod is {}, not ready", phase.unwrap_or("Pending"))),
    }
}

fn generic(status: &Value) -> Health {
    if let Some(c) = condition(status, "Reconciling").filter(|c| c.is_true()) {
        return Health::InProgress(c.text());
    }
    match condition(status, "Ready") {
        Some(c) if !c.is_true() => Health::InProgress(c.text()),
        _ => Health::Current,
    }
}

/// One entry of `status.conditions`.
struct Condition<'a>(&'a Value);

impl Condition<'_> {
    fn is_true(&self) -> bool {
        self.0["status"].as_str() == Some("True")
    }

    fn reason(&self) -> &str {
        self.0["reason"].as_str().unwrap_or_default()
    }

    /// `<type> <reason>: <message>`, as much of it as is there.
    fn text(&self) -> String {
        let kind = self.0["type"].as_str().unwrap_or_default();
        let message = self.0["message"].as_str().unwrap_or_default();
        match (self.reason(), message) {
            ("", "") => format!("{kind} is {}", self.0["status"].as_str().unwrap_or("Unknown")),
            (reason, "") => format!("{kind} {reason}"),
            (reason, message) => format!("{kind} {reason}: {message}"),
        }
    }
}

fn condition<'a>(status: &'a Value, kind: &str) -> Option<Condition<'a>> {
    status["conditions"].as_array()?.iter().find(|c| c["type"].as_str() == Some(kind)).map(Condition)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(status: Value) -> Value {
        json!({"kind": "Deployment", "metadata": {"generation": 2}, "spec": {"replicas": 2}, "status": status})
    }

    #[test]
    fn a_deployment_is_current_once_updated_ready_and_available() {
        let done = json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2});
        assert_eq!(judge(&deployment(done)), Health::Current);
        let stale = json!({"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2});
        assert_eq!(judge(&deployment(stale)), Health::InProgress("generation 2 not yet observed (at 1)".into()));
        let rolling = json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2});
        assert_eq!(judge(&deployment(rolling)), Health::InProgress("1 old replicas are terminating".into()));
        let unavailable = json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 0});
        assert_eq!(judge(&deployment(unavailable)), Health::InProgress("available 0/2".into()));
    }

    #[test]
    fn a_deployment_past_its_progress_deadline_failed() {
        let status = json!({"observedGeneration": 2, "conditions": [{"type": "Progressing", "status": "False",
            "reason": "ProgressDeadlineExceeded", "message": "ReplicaSet \"web-1\" has timed out progressing."}]});
        assert_eq!(
            judge(&deployment(status)),
            Health::Failed(
                "Progressing ProgressDeadlineExceeded: ReplicaSet \"web-1\" has timed out progressing.".into()
            )
        );
    }

    #[test]
    fn stateful_sets_daemon_sets_jobs_pods_and_claims() {
        let sts = json!({"kind": "StatefulSet", "spec": {"replicas": 3}, "status": {"readyReplicas": 3, "updatedReplicas": 3,
            "updateRevision": "b", "currentRevision": "a"}});
        assert_eq!(judge(&sts), Health::InProgress("the update is rolling out".into()));
        let ds = json!({"kind": "DaemonSet", "status": {"desiredNumberScheduled": 2, "currentNumberScheduled": 2,
            "updatedNumberScheduled": 2, "numberAvailable": 1, "numberReady": 2}});
        assert_eq!(judge(&ds), Health::InProgress("available 1/2".into()));
        let failed = json!({"kind": "Job", "status": {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]}});
        assert_eq!(judge(&failed), Health::Failed("Failed BackoffLimitExceeded".into()));
        let complete = json!({"kind": "Job", "status": {"conditions": [{"type": "Complete", "status": "True"}]}});
        assert_eq!(judge(&complete), Health::Current);
        let pod = json!({"kind": "Pod", "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}]}});
        assert_eq!(judge(&pod), Health::InProgress("pod is Running, not ready".into()));
        let claim = json!({"kind": "PersistentVolumeClaim", "status": {"phase": "Bound"}});
        assert_eq!(judge(&claim), Health::Current);
    }

    #[test]
    fn custom_kinds_by_their_conditions() {
        let plain = json!({"kind": "Widget", "status": {}});
        assert_eq!(judge(&plain), Health::Current);
        let waiting = json!({"kind": "Widget", "status": {"conditions": [{"type": "Ready", "status": "False", "reason": "Waiting"}]}});
        assert_eq!(judge(&waiting), Health::InProgress("Ready Waiting".into()));
        let stalled = json!({"kind": "Widget", "status": {"conditions": [{"type": "Stalled", "status": "True", "reason": "Broken", "message": "no"}]}});
        assert_eq!(judge(&stalled), Health::Failed("Stalled Broken: no".into()));
    }

    fn waiting(object: &str) -> Unhealthy {
        Unhealthy { object: object.into(), health: Health::InProgress("available 0/1".into()) }
    }

    #[test]
    fn progressing_until_the_deadline_then_degraded_until_a_change() {
        let t0: Timestamp = "2026-12-04T10:00:00Z".parse().expect("time");
        let later = |s: i64| t0 + SignedDuration::from_secs(s);
        let timeout = Duration::from_secs(60);
        let web = [waiting("Deployment shop-test/web")];
        let first = assess(&web, None, true, timeout, t0);
        assert_eq!(
            (first.state, first.message.as_str()),
            (HealthState::Progressing, "Deployment shop-test/web: available 0/1")
        );
        let still = assess(&web, Some(&first), false, timeout, later(59));
        assert_eq!(
            (still.state, still.since.as_ref().map(|t| t.0)),
            (HealthState::Progressing, Some(t0)),
            "the deadline runs from the change"
        );
        let late = assess(&web, Some(&still), false, timeout, later(61));
        assert_eq!(late.state, HealthState::Degraded);
        assert_eq!(late.message, "not healthy within 60s: Deployment shop-test/web: available 0/1");
        let stays = assess(&web, Some(&late), false, timeout, later(90));
        assert_eq!(stays.state, HealthState::Degraded, "no new deadline without a change");
        assert_eq!(stays.message, late.message, "it keeps saying why");
        let again = assess(&web, Some(&stays), true, timeout, later(91));
        assert_eq!(
            (again.state, again.since.as_ref().map(|t| t.0)),
            (HealthState::Progressing, Some(later(91))),
            "a change starts over"
        );
        let healthy = assess(&[], Some(&again), false, timeout, later(95));
        assert_eq!((healthy.state, healthy.message.as_str()), (HealthState::Healthy, ""));
        let failed = Unhealthy {
            object: "Job shop-test/migrate".into(),
            health: Health::Failed("Failed BackoffLimitExceeded".into()),
        };
        let broken = assess(&[waiting("Deployment shop-test/web"), failed], Some(&healthy), false, timeout, later(96));
        assert_eq!(
            (broken.state, broken.message.as_str()),
            (HealthState::Degraded, "Job shop-test/migrate: Failed BackoffLimitExceeded")
        );
    }

    #[test]
    fn which_kinds_are_read() {
        assert!(has_rules("apps/v1", "Deployment"));
        assert!(has_rules("batch/v1", "Job"));
        assert!(has_rules("example.com/v1", "Widget"));
        assert!(!has_rules("v1", "ConfigMap"));
        assert!(!has_rules("rbac.authorization.k8s.io/v1", "Role"));
        assert!(!has_rules("batch/v1", "CronJob"));
    }
}
