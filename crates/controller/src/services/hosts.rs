//! Git hosts as the reconcilers use them: the host of an application's pull requests (its
//! token read with the team's rights), the last listing of its open pull requests, and the
//! commit statuses already posted, so each is posted once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use factory_api::factory::Application;
use factory_api::{Factory, GitHost, GitHostAccess, PullRequestPreviews};
use factory_hosts::{CommitStatus, Host, Kind, Listing, PullRequest};
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::Api;
use tracing::{debug, warn};

use crate::services::context::{Context, Read};
use crate::services::error::ReconcileError;
use crate::services::metrics::Metrics;

/// How often open pull requests are listed when the factory does not say.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// How long a host's token is used before its Secret is read again.
const SECRET_TTL: Duration = Duration::from_secs(60);
/// Statuses remembered (per repository, commit and context) before the oldest half is forgotten.
const REMEMBERED: usize = 10_000;

/// The hosts' state shared by every reconcile.
#[derive(Default)]
pub struct Hosts {
    /// Per (factory, application): what it was built with (the Secret's resourceVersion and
    /// the spec), when the Secret was read, and the host.
    hosts: Mutex<HashMap<(String, String), Built>>,
    /// Per (factory, application): the last listing.
    listings: Mutex<HashMap<(String, String), Listed>>,
    /// Per (repository, commit, context): the status last posted, and when.
    posted: Mutex<HashMap<Posted, (CommitStatus, Instant)>>,
}

/// A host as built: from which spec and Secret version, and when the Secret was last read.
struct Built {
    spec: String,
    secret_version: String,
    read: Instant,
    host: Host,
}

/// Where a status was posted: repository, commit and context.
type Posted = (String, String, String);

/// The last listing of an application's open pull requests.
#[derive(Clone)]
struct Listed {
    at: Instant,
    /// The reconcile request (`factories.dev/requested-at`) it answered: a webhook's.
    requested: Option<String>,
    etag: Option<String>,
    pulls: Vec<PullRequest>,
}

/// The open pull requests of an application, and whether they were asked of the host now.
pub struct OpenPulls {
    /// The pull requests.
    pub pulls: Vec<PullRequest>,
    /// When the listing should be asked for again.
    pub next: Duration,
}

impl Hosts {
    /// The host of `app`'s repository with the token of its `host.secretRef`, read as the team
    /// (a token it cannot read itself is refused by the API server).
    pub async fn host(
        &self,
        ctx: &Context,
        factory: &Factory,
        app: &Application,
        access: &GitHostAccess,
    ) -> Result<Host, ReconcileError> {
        let name = factory.name_any();
        let key = (name.clone(), app.name.clone());
        let spec =
            format!("{:?}/{}/{}", access.provider, access.api_url.as_deref().unwrap_or_default(), app.source.url);
        // Reconciles report every second while something rolls out: the Secret is read again
        // (and a rotated token taken) at most once per SECRET_TTL.
        if let Some(built) = lock(&self.hosts).get(&key)
            && built.spec == spec
            && built.read.elapsed() < SECRET_TTL
        {
            return Ok(built.host.clone());
        }
        let cicd = factory_core::names::cicd_namespace(&name);
        let secret_name = &access.secret_ref.name;
        let err = |why: String| ReconcileError::Credentials { namespace: cicd.clone(), name: secret_name.clone(), why };
        let secret = Api::<Secret>::namespaced(ctx.tenant(&name)?, &cicd)
            .get_opt(secret_name)
            .await
            .map_err(|e| err(factory_apply::api_message(&e)))?
            .ok_or_else(|| err("not found".into()))?;
        let secret_version = secret.resource_version().unwrap_or_default();
        if let Some(built) = lock(&self.hosts).get_mut(&key)
            && built.spec == spec
            && built.secret_version == secret_version
        {
            built.read = Instant::now();
            return Ok(built.host.clone());
        }
        let data = secret.data.unwrap_or_default();
        let token = data
            .get("token")
            .map(|b| String::from_utf8_lossy(&b.0).trim().to_string())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| err("has no key `token`".into()))?;
        let kind = match access.provider {
            GitHost::Gitea => Kind::Gitea,
            GitHost::GitHub => Kind::GitHub,
            GitHost::GitLab => Kind::GitLab,
        };
        let ca = data.get("ca.crt").map(|b| b.0.as_slice());
        let host = Host::new(kind, &app.source.url, access.api_url.as_deref(), &token, ca)
            .map_err(|e| ReconcileError::InvalidSpec(format!("host of {}: {e}", app.name)))?;
        let built = Built { spec, secret_version, read: Instant::now(), host: host.clone() };
        lock(&self.hosts).insert(key, built);
        Ok(host)
    }

    /// The open pull requests of `app`: asked of the host when the last listing is older than
    /// the interval or a reconcile was requested since (a webhook), conditionally on its ETag;
    /// otherwise the last listing. A failed listing is an error: nothing is deleted on it.
    pub async fn open_pulls(
        &self,
        host: &Host,
        factory: &Factory,
        app: &Application,
        policy: &PullRequestPreviews,
    ) -> Result<OpenPulls, factory_hosts::HostError> {
        let interval =
            policy.interval.as_deref().and_then(|i| factory_core::duration::parse(i).ok()).unwrap_or(DEFAULT_INTERVAL);
        let key = (factory.name_any(), app.name.clone());
        let requested = factory.annotations().get(factory_api::labels::REQUESTED_AT).cloned();
        let last = lock(&self.listings).get(&key).cloned();
        if let Some(last) = &last
            && last.at.elapsed() < interval
            && last.requested == requested
        {
            return Ok(OpenPulls { pulls: last.pulls.clone(), next: interval.saturating_sub(last.at.elapsed()) });
        }
        let etag = last.as_ref().and_then(|l| l.etag.clone());
        let (pulls, etag) = match host.open_pulls(etag.as_deref()).await? {
            Listing::NotModified => (last.map(|l| l.pulls).unwrap_or_default(), etag),
            Listing::Open { pulls, etag } => (pulls, etag),
        };
        debug!(application = %app.name, open = pulls.len(), "pull requests listed");
        lock(&self.listings).insert(key, Listed { at: Instant::now(), requested, etag, pulls: pulls.clone() });
        Ok(OpenPulls { pulls, next: interval })
    }

    /// Posts `status` on `sha` unless the same was posted already; a failure is logged and
    /// returned (the next reconcile posts again).
    pub async fn report(
        &self,
        metrics: &Metrics,
        host: &Host,
        sha: &str,
        status: CommitStatus,
    ) -> Result<(), factory_hosts::HostError> {
        let key = (host.repo().path.clone() + "@" + &host.repo().web, sha.to_string(), status.context.clone());
        if lock(&self.posted).get(&key).is_some_and(|(posted, _)| *posted == status) {
            return Ok(());
        }
        let state = format!("{:?}", status.state).to_lowercase();
        if let Err(e) = host.set_status(sha, &status).await {
            warn!(error = %e, sha, "commit status not posted");
            Metrics::sent(&metrics.commit_statuses, &state, "failed");
            return Err(e);
        }
        Metrics::sent(&metrics.commit_statuses, &state, "sent");
        debug!(sha, state = ?status.state, description = %status.description, "commit status posted");
        let mut posted = lock(&self.posted);
        if posted.len() >= REMEMBERED {
            // Forget the older half; at worst a status is posted once more.
            let mut times: Vec<Instant> = posted.values().map(|(_, t)| *t).collect();
            times.sort();
            let cut = times[times.len() / 2];
            posted.retain(|_, (_, t)| *t > cut);
        }
        posted.insert(key, (status, Instant::now()));
        Ok(())
    }
}

/// Posts `status` on commit `sha` for `application` of team factory `factory`, where the
/// application names its git host (`host`); a host that cannot be asked is logged, and the
/// next reconcile posts again.
pub async fn post(ctx: &Context, factory: &str, application: &str, sha: &str, status: CommitStatus) {
    let Ok(Some(team)) = ctx.factory(factory, Read::Store).await else { return };
    let Some(app) = team.spec.applications.iter().flatten().find(|a| a.name == application) else { return };
    let Some(access) = &app.host else { return };
    match ctx.hosts.host(ctx, &team, app, access).await {
        Ok(host) => {
            let _ = ctx.hosts.report(&ctx.metrics, &host, sha, status).await;
        }
        Err(e) => warn!(factory, application, sha, error = %e, "cannot post a commit status"),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
