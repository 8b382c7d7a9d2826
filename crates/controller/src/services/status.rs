//! Writing status: conditions from a step's result, written only when something changed,
//! and Events for what matters.

use factory_api::conditions::{READY, RECONCILING, Reason, STALLED};
use factory_core::conditions::{self, Status};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use tracing::{info, warn};

use crate::services::context::Context;
use crate::services::error::ReconcileError;

/// The current time, for condition transitions.
pub fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

/// Messages on conditions and Events are bounded; the API server limits both.
pub fn bounded(message: &str, max: usize) -> String {
    if message.len() <= max {
        return message.to_string();
    }
    let mut cut = max.saturating_sub(14);
    while !message.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}… (truncated)", &message[..cut])
}

/// Sets Ready/Reconciling/Stalled for a successful reconcile.
pub fn succeeded(list: &mut Vec<Condition>, generation: Option<i64>, message: &str) {
    let now = now();
    conditions::set(list, READY, Status::True, Reason::Reconciled, bounded(message, 4096), generation, &now);
    conditions::set(list, RECONCILING, Status::False, Reason::Reconciled, "", generation, &now);
    conditions::remove(list, STALLED);
}

/// Sets Ready=False and Reconciling=True (reason `Progressing`) for a reconcile that applied
/// everything and waits for it to become healthy.
pub fn progressing(list: &mut Vec<Condition>, generation: Option<i64>, message: &str) {
    let now = now();
    let message = bounded(message, 4096);
    conditions::set(list, READY, Status::False, Reason::Progressing, message.clone(), generation, &now);
    conditions::set(list, RECONCILING, Status::True, Reason::Progressing, message, generation, &now);
    conditions::remove(list, STALLED);
}

/// Why an environment or preview is suspended, if it is: its own `spec.suspend`, or its team
/// factory's (which stops everything of the team).
pub fn suspension(own: bool, team: Option<&factory_api::Factory>) -> Option<String> {
    if own {
        return Some("spec.suspend is true".into());
    }
    let team = team.filter(|t| t.spec.suspend)?;
    Some(format!("factory {} is suspended", kube::ResourceExt::name_any(team)))
}

/// Marks a resource suspended (`Reconciling=False`, reason `Suspended`, saying `why`); Ready
/// keeps describing what was last applied.
pub fn suspended(list: &mut Vec<Condition>, generation: Option<i64>, why: &str) {
    conditions::set(list, RECONCILING, Status::False, Reason::Suspended, bounded(why, 4096), generation, &now());
}

/// Sets Ready=False and Stalled=True with `reason` for a revision that was applied but needs a
/// human decision (such as pruning held back on an emptied path).
pub fn held_back(list: &mut Vec<Condition>, generation: Option<i64>, reason: Reason, message: &str) {
    let now = now();
    let message = bounded(message, 4096);
    conditions::set(list, READY, Status::False, reason, message.clone(), generation, &now);
    conditions::set(list, STALLED, Status::True, reason, message, generation, &now);
    conditions::set(list, RECONCILING, Status::False, reason, "", generation, &now);
}

/// Sets Ready/Reconciling/Stalled for a failed reconcile: `Stalled` when only a change can help.
pub fn failed(list: &mut Vec<Condition>, generation: Option<i64>, error: &ReconcileError) {
    let now = now();
    let message = bounded(&error.to_string(), 4096);
    conditions::set(list, READY, Status::False, error.reason(), message.clone(), generation, &now);
    if error.is_permanent() {
        conditions::set(list, STALLED, Status::True, error.reason(), message, generation, &now);
        conditions::set(list, RECONCILING, Status::False, error.reason(), "", generation, &now);
    } else {
        conditions::remove(list, STALLED);
        conditions::set(list, RECONCILING, Status::True, Reason::Progressing, "retrying", generation, &now);
    }
}

/// Writes `new` as the status subresource of `object` through `api` (server-side apply under
/// the operator's field manager) unless it equals `current`: a steady state writes nothing.
/// Returns the resourceVersion the write made, if it wrote.
pub async fn write<K, S>(
    api: &kube::Api<K>,
    object: &K,
    current: Option<&S>,
    new: S,
) -> Result<Option<String>, ReconcileError>
where
    K: Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned,
    S: PartialEq + serde::Serialize,
{
    if current == Some(&new) {
        return Ok(None);
    }
    let patch = serde_json::json!({"apiVersion": K::api_version(&()), "kind": K::kind(&()), "status": new});
    let params = kube::api::PatchParams::apply(factory_api::FIELD_MANAGER).force();
    let written = api.patch_status(&object.name_any(), &params, &kube::api::Patch::Apply(&patch)).await?;
    Ok(written.resource_version())
}

/// One Event to publish about the object being reconciled.
#[derive(Debug, Clone)]
pub struct Note {
    /// Normal or Warning.
    pub type_: EventType,
    /// Why.
    pub reason: Reason,
    /// What happened.
    pub message: String,
}

impl Note {
    /// A Warning.
    pub fn warning(reason: Reason, message: impl Into<String>) -> Self {
        Self { type_: EventType::Warning, reason, message: message.into() }
    }

    /// A Normal Event.
    pub fn normal(reason: Reason, message: impl Into<String>) -> Self {
        Self { type_: EventType::Normal, reason, message: message.into() }
    }
}

/// Publishes an Event about `object`; failures to publish are logged, never fatal.
pub async fn event<K: Resource<DynamicType = ()>>(
    ctx: &Context,
    object: &K,
    type_: EventType,
    reason: Reason,
    note: &str,
) {
    let ev = Event {
        type_,
        reason: reason.as_str().to_string(),
        note: Some(bounded(note, 1024)),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &object.object_ref(&())).await {
        warn!(object = %object.name_any(), error = %e, "could not publish event");
    }
}

/// Publishes `note` about `object`.
pub async fn publish<K: Resource<DynamicType = ()>>(ctx: &Context, object: &K, note: &Note) {
    event(ctx, object, note.type_, note.reason, &note.message).await;
}

/// Says that a reconcile of `object` failed: logged, and a Warning Event — except for waiting
/// (for a platform's first revision, a team factory), which is how a cold start begins and is
/// said by the condition alone (a Warning per object would flood the Events of a large fleet).
pub async fn report_failure<K: Resource<DynamicType = ()>>(ctx: &Context, object: &K, error: &ReconcileError) {
    if matches!(error, ReconcileError::Waiting(_)) {
        info!(%error, "waiting");
        return;
    }
    warn!(%error, reason = %error.reason(), "reconcile failed");
    event(ctx, object, EventType::Warning, error.reason(), &error.to_string()).await;
}
