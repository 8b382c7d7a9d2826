//! The notifier: reconciles hand it what happened (a failure, a release waiting for approval,
//! a preview about to expire) and go on; a worker sends each to the factory's targets, once
//! (de-duplicated by what it is about), retrying with backoff while a target fails. A full
//! queue drops and counts, so a dead target never holds up a reconcile.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use factory_api::{NotificationEvent, NotificationTarget};
use factory_notify::{Message, Sender};
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::services::context::{Context, Read};
use crate::services::metrics::Metrics;

/// Notifications waiting to be sent, at most.
const QUEUE: usize = 1024;
/// How long one request may take.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts per target before giving up (waiting 1, 2, 4, 8 s between them).
const ATTEMPTS: u32 = 5;
/// How long a sent notification keeps the same one from being sent again.
const REMEMBER: Duration = Duration::from_secs(24 * 3600);

/// One notification for the targets of team factory `factory`.
struct Job {
    factory: String,
    message: Message,
}

/// What reconciles notify through.
pub struct Notifier {
    tx: mpsc::Sender<Job>,
    rx: Mutex<Option<mpsc::Receiver<Job>>>,
    /// Keys of what was queued, and when.
    seen: Mutex<HashMap<String, Instant>>,
}

impl Default for Notifier {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        Self { tx, rx: Mutex::new(Some(rx)), seen: Mutex::new(HashMap::new()) }
    }
}

impl Notifier {
    /// Queues `message` for its factory's targets unless `key` was queued within the last day.
    /// Never waits.
    fn notify(&self, metrics: &Metrics, key: String, message: Message) {
        {
            let mut seen = lock(&self.seen);
            if seen.get(&key).is_some_and(|at| at.elapsed() < REMEMBER) {
                return;
            }
            seen.retain(|_, at| at.elapsed() < REMEMBER);
            seen.insert(key, Instant::now());
        }
        let (event, factory) = (message.event, message.factory.clone());
        if self.tx.try_send(Job { factory: factory.clone(), message }).is_err() {
            warn!(%factory, event = event.as_str(), "notification queue full; dropped");
            Metrics::sent(&metrics.notifications, event.as_str(), "dropped");
        }
    }

    /// Forgets every key starting with `prefix` (an object is Ready again: its next failure is news).
    pub fn resolved(&self, prefix: &str) {
        lock(&self.seen).retain(|key, _| !key.starts_with(prefix));
    }

    /// Sends queued notifications until the operator stops; started once, by the leader.
    pub async fn run(ctx: Arc<Context>) {
        let Some(mut rx) = lock(&ctx.notifier.rx).take() else { return };
        let sender = match Sender::new(TIMEOUT) {
            Ok(sender) => sender,
            Err(e) => {
                warn!(error = %e, "notifications cannot be sent");
                return;
            }
        };
        while let Some(job) = rx.recv().await {
            let (ctx, sender) = (ctx.clone(), sender.clone());
            // Each on its own: a slow target delays nobody else's.
            tokio::spawn(async move { deliver(&ctx, &sender, job).await });
        }
    }
}

/// Sends `job` to every target of its factory that takes its event.
async fn deliver(ctx: &Context, sender: &Sender, job: Job) {
    let Ok(Some(factory)) = ctx.factory(&job.factory, Read::Store).await else { return };
    let event = job.message.event;
    let targets =
        factory.spec.notifications.iter().flatten().filter(|t| t.events.is_empty() || t.events.contains(&event));
    for target in targets {
        match send(ctx, sender, &job, target).await {
            Ok(()) => {
                info!(factory = %job.factory, target = %target.name, event = event.as_str(), object = %job.message.object, "notified");
                Metrics::sent(&ctx.metrics.notifications, event.as_str(), "sent");
            }
            Err(why) => {
                warn!(factory = %job.factory, target = %target.name, event = event.as_str(), %why, "notification not delivered");
                Metrics::sent(&ctx.metrics.notifications, event.as_str(), "failed");
            }
        }
    }
}

/// One target: its URL and key read with the team's rights, then up to [`ATTEMPTS`] tries.
async fn send(ctx: &Context, sender: &Sender, job: &Job, target: &NotificationTarget) -> Result<(), String> {
    let cicd = factory_core::names::cicd_namespace(&job.factory);
    let tenant = ctx.tenant(&job.factory).map_err(|e| e.to_string())?;
    let name = &target.secret_ref.name;
    let secret = Api::<Secret>::namespaced(tenant, &cicd)
        .get(name)
        .await
        .map_err(|e| format!("Secret {cicd}/{name}: {}", factory_apply::api_message(&e)))?;
    let data = secret.data.unwrap_or_default();
    let text = |key: &str| data.get(key).map(|b| String::from_utf8_lossy(&b.0).trim().to_string());
    let url = text("url").filter(|u| u.starts_with("https://") || u.starts_with("http://"));
    let url = url.ok_or_else(|| format!("Secret {cicd}/{name} has no http(s) `url`"))?;
    let key = data.get("secret").map(|b| b.0.clone());
    let body = factory_notify::body(target.format.unwrap_or_default(), &job.message);
    let mut wait = Duration::from_secs(1);
    for attempt in 1..=ATTEMPTS {
        match sender.send(&url, job.message.event, body.clone(), key.as_deref()).await {
            Ok(()) => return Ok(()),
            Err(e) if e.is_transient() && attempt < ATTEMPTS => {
                debug!(target = %target.name, attempt, error = %e, "notification failed; trying again");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            Err(e) => return Err(format!("{e} (attempt {attempt})")),
        }
    }
    Err("no attempt left".into())
}

/// The time now, as notifications carry it.
pub fn now() -> String {
    k8s_openapi::jiff::Timestamp::now().to_string()
}

/// Tells `message` (once per `key`) to its factory's targets, if any takes its event. Never waits
/// for a delivery.
pub async fn tell(ctx: &Context, key: String, message: Message) {
    let team = ctx.factory(&message.factory, Read::Store).await.ok().flatten();
    if team.is_some_and(|t| wanted(&t, message.event)) {
        ctx.notifier.notify(&ctx.metrics, key, message);
    }
}

/// Whether `factory` has a target for `event`.
fn wanted(factory: &factory_api::Factory, event: NotificationEvent) -> bool {
    factory.spec.notifications.iter().flatten().any(|t| t.events.is_empty() || t.events.contains(&event))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
