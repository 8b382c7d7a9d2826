//! The one shape of every reconcile: take the last status, run the kind's work, turn its
//! verdict into conditions, say what matters as Events, count it in the metrics, write the
//! status only when it changed, and decide when to look again. A kind says only what is its
//! own ([`Reconciler`]).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use factory_api::conditions::Reason;
use factory_api::labels;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use tracing::Instrument;

use crate::reconcilers::reconciled::Reconciled;
use crate::services::context::Context;
use crate::services::error::ReconcileError;
use crate::services::notify;
use crate::services::status::{self, Note};
use factory_api::NotificationEvent;
use factory_api::conditions::{READY, STALLED};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

/// How soon a reconcile that failed on something passing (the API server, a fetch) runs again.
pub const RETRY: Duration = Duration::from_secs(10);

/// What one kind contributes to the skeleton.
pub trait Reconciler {
    /// The resource reconciled.
    type Object: Reconciled;
    /// The `controller` label of its metrics.
    const NAME: &'static str;

    /// When an object whose reconcile failed permanently (only a change helps) is looked at again.
    fn resync(_object: &Self::Object, ctx: &Context) -> Duration {
        ctx.resync
    }
    /// The kind's own work, filling in its own part of `status`.
    fn run(
        object: &Self::Object,
        ctx: &Context,
        status: &mut Status<Self>,
    ) -> impl Future<Output = Result<Report, ReconcileError>> + Send;
    /// What a failure changes in the kind's own part of the status (a preview's phase).
    fn failed(_status: &mut Status<Self>, _error: &ReconcileError) {}
}

/// The status of the resource `R` reconciles.
pub type Status<R> = <<R as Reconciler>::Object as Reconciled>::Status;

/// How a reconcile that did not fail ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Everything desired is in place: `Ready=True` with this message.
    Ready(String),
    /// Applied, and waiting for what was applied to become healthy: `Ready=False` and
    /// `Reconciling=True`, reason `Progressing`, with this message (no Warning).
    Progressing(String),
    /// Applied, but something needs a person (pruning held back, an application failed):
    /// `Ready=False`, `Stalled=True` with this reason.
    HeldBack {
        /// Why.
        reason: Reason,
        /// What was applied and what was held back.
        message: String,
    },
    /// Nothing was applied because the object (or its factory) is suspended; `Ready` keeps
    /// describing what was last applied.
    Suspended(String),
    /// The object is going away (an expired preview): nothing more is written on it.
    Gone,
}

/// What a kind's run reports back.
#[derive(Debug)]
pub struct Report {
    /// How it ended.
    pub verdict: Verdict,
    /// Events to publish on the object.
    pub events: Vec<Note>,
    /// Objects created or updated, and pruned, for the metrics.
    pub applied: usize,
    /// Objects pruned.
    pub pruned: usize,
    /// When to look again; `None` waits for a change.
    pub requeue: Option<Duration>,
}

impl Report {
    /// A report with `verdict`, no Events or writes, looking again after `requeue`.
    pub fn new(verdict: Verdict, requeue: Option<Duration>) -> Self {
        Self { verdict, events: Vec::new(), applied: 0, pruned: 0, requeue }
    }

    /// Counts what `outcome` wrote, for the metrics.
    pub fn counting(mut self, outcome: &factory_apply::Outcome) -> Self {
        self.applied = outcome.created.len() + outcome.updated.len();
        self.pruned = outcome.pruned.len();
        self
    }

    /// Adds an Event.
    pub fn note(&mut self, type_: EventType, reason: Reason, message: impl Into<String>) {
        self.events.push(Note { type_, reason, message: message.into() });
    }
}

/// Reconciles `object` as kind `R`, in a `reconcile` span naming it: what a controller runs.
pub async fn run<R: Reconciler>(object: Arc<R::Object>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    reconcile::<R>(object, &ctx).await
}

/// Reconciles `object` as kind `R`, in a `reconcile` span naming it.
pub async fn reconcile<R: Reconciler>(object: Arc<R::Object>, ctx: &Context) -> Result<Action, ReconcileError> {
    let span = tracing::info_span!(
        "reconcile",
        kind = R::NAME,
        name = %object.name_any(),
        namespace = object.namespace().unwrap_or_default()
    );
    once::<R>(object, ctx).instrument(span).await
}

async fn once<R: Reconciler>(object: Arc<R::Object>, ctx: &Context) -> Result<Action, ReconcileError> {
    let started = Instant::now();
    // Every status is built on the last one (an application's inventory is what it may prune).
    // A reconcile that follows our own status write within milliseconds may get the watch's
    // copy from before it: it would build on a stale status, lose the inventory just written
    // and judge an emptied path against nothing. Then the object is read again.
    let uid = object.uid().unwrap_or_default();
    let object = if ctx.maybe_behind_own_write(&uid, object.resource_version().as_deref()) {
        tracing::debug!("the watch's copy may predate our last status write: reading the object again");
        match object.api(ctx.client.clone()).get_opt(&object.name_any()).await? {
            Some(fresh) => Arc::new(fresh),
            None => return Ok(Action::await_change()),
        }
    } else {
        object
    };
    let current = object.status();
    let mut status = current.cloned().unwrap_or_default();
    let generation = object.meta().generation;
    R::Object::shared(&mut status).observed_generation = generation;
    let requested = object.annotations().get(labels::REQUESTED_AT).cloned();
    let result = R::run(&object, ctx, &mut status).await;
    let shared = R::Object::shared(&mut status);
    let (reason, action) = match &result {
        Ok(report) => {
            match &report.verdict {
                Verdict::Ready(message) => status::succeeded(&mut shared.conditions, generation, message),
                Verdict::Progressing(message) => status::progressing(&mut shared.conditions, generation, message),
                Verdict::HeldBack { reason, message } => {
                    status::held_back(&mut shared.conditions, generation, *reason, message)
                }
                Verdict::Suspended(why) => status::suspended(&mut shared.conditions, generation, why),
                Verdict::Gone => {}
            }
            let reason = match &report.verdict {
                Verdict::Ready(_) | Verdict::Gone => Reason::Reconciled,
                Verdict::Progressing(_) => Reason::Progressing,
                Verdict::HeldBack { reason, .. } => *reason,
                Verdict::Suspended(_) => Reason::Suspended,
            };
            (reason, report.requeue.map_or_else(Action::await_change, Action::requeue))
        }
        Err(error) => {
            status::failed(&mut shared.conditions, generation, error);
            let again = if error.is_permanent() { R::resync(&object, ctx) } else { RETRY };
            (error.reason(), Action::requeue(again))
        }
    };
    shared.last_handled_reconcile_at = requested.or(shared.last_handled_reconcile_at.take());
    if let Some(team) = object.team() {
        notify_failure(ctx, object.as_ref(), &team, &shared.conditions).await;
    }
    match &result {
        Ok(report) => {
            for note in &report.events {
                status::publish(ctx, object.as_ref(), note).await;
            }
        }
        Err(error) => {
            R::failed(&mut status, error);
            status::report_failure(ctx, object.as_ref(), error).await;
        }
    }
    let (applied, pruned) = result.as_ref().map_or((0, 0), |r| (r.applied, r.pruned));
    ctx.metrics.reconciled(R::NAME, reason, started.elapsed(), applied, pruned);
    if !matches!(result, Ok(Report { verdict: Verdict::Gone, .. }))
        && let Some(version) = status::write(&object.api(ctx.client.clone()), object.as_ref(), current, status).await?
    {
        ctx.remember_written(&uid, version);
    }
    Ok(action)
}

/// Tells the team's targets when `object` stalls (once per stall and reason), and forgets
/// that once it is Ready again.
async fn notify_failure<K: Reconciled>(ctx: &Context, object: &K, team: &str, conditions: &[Condition]) {
    let kind = K::kind(&());
    let place = match object.namespace() {
        Some(ns) => format!("{kind} {ns}/{}", object.name_any()),
        None => format!("{kind} {}", object.name_any()),
    };
    let prefix = format!("failure/{place}/");
    if factory_core::conditions::is_true(conditions, READY) {
        ctx.notifier.resolved(&prefix);
        return;
    }
    let Some(stalled) = conditions.iter().find(|c| c.type_ == STALLED && c.status == "True") else { return };
    let message = factory_notify::Message {
        event: NotificationEvent::Failure,
        factory: team.to_string(),
        object: place,
        summary: format!("stalled: {}", stalled.reason),
        detail: stalled.message.clone(),
        url: None,
        time: notify::now(),
    };
    notify::tell(ctx, format!("{prefix}{}", stalled.reason), message).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_counts_what_the_engine_wrote() {
        let outcome = factory_apply::Outcome {
            created: vec!["ConfigMap a".into()],
            updated: vec!["ConfigMap b".into(), "Role c".into()],
            pruned: vec!["Secret d".into()],
            ..Default::default()
        };
        let report = Report::new(Verdict::Ready("ok".into()), None).counting(&outcome);
        assert_eq!((report.applied, report.pruned), (3, 1));
    }
}
