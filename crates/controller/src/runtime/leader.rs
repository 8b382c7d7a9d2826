//! Lease-based leader election (`coordination.k8s.io/v1`), so that two replicas are safe: only
//! the holder of the Lease runs reconcilers; a standby takes over once the holder has not
//! renewed for a lease duration. Like client-go, expiry is judged by when *this* process last
//! saw the record change, never by comparing another host's timestamps with our clock.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

/// How leadership is held.
#[derive(Debug, Clone)]
pub struct Config {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This process's identity (pod name and a random suffix).
    pub identity: String,
    /// How long a holder that stopped renewing keeps the lease.
    pub lease_duration: Duration,
    /// How often the holder renews, and a standby retries.
    pub retry_period: Duration,
    /// A holder that could not renew for this long gives leadership up.
    pub renew_deadline: Duration,
}

impl Config {
    /// Defaults: a standby takes over about 12 s after the holder stops renewing.
    pub fn new(namespace: &str, identity: &str) -> Self {
        Self {
            namespace: namespace.into(),
            name: "factory-operator".into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(12),
            retry_period: Duration::from_secs(2),
            renew_deadline: Duration::from_secs(8),
        }
    }
}

/// Why an attempt did not make us the holder.
enum Attempt {
    Held,
    Busy,
}

/// The lease as last observed, and when it was.
struct Observed {
    record: Option<(String, String)>,
    at: Instant,
}

fn now() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

async fn try_acquire(api: &Api<Lease>, config: &Config, observed: &mut Observed) -> Result<Attempt, kube::Error> {
    let duration = i32::try_from(config.lease_duration.as_secs()).unwrap_or(15);
    let Some(mut lease) = api.get_opt(&config.name).await? else {
        let lease: Lease = serde_json::from_value(json!({
            "metadata": {"name": config.name, "namespace": config.namespace,
                         "labels": {"app.kubernetes.io/managed-by": "factory-operator"}},
            "spec": {"holderIdentity": config.identity, "leaseDurationSeconds": duration,
                     "acquireTime": now(), "renewTime": now(), "leaseTransitions": 0}
        }))
        .map_err(kube::Error::SerdeError)?;
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(Attempt::Held),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Attempt::Busy),
            Err(e) => Err(e),
        };
    };
    let spec = lease.spec.clone().unwrap_or_default();
    let holder = spec.holder_identity.clone().unwrap_or_default();
    let record = (holder.clone(), lease.resource_version().unwrap_or_default());
    if observed.record.as_ref() != Some(&record) {
        observed.record = Some(record);
        observed.at = Instant::now();
    }
    let held_by_us = holder == config.identity;
    let expired = holder.is_empty() || observed.at.elapsed() > config.lease_duration;
    if !held_by_us && !expired {
        return Ok(Attempt::Busy);
    }
    let mut new_spec = spec.clone();
    new_spec.holder_identity = Some(config.identity.clone());
    new_spec.lease_duration_seconds = Some(duration);
    new_spec.renew_time = Some(now());
    if !held_by_us {
        new_spec.acquire_time = Some(now());
        new_spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
    }
    lease.spec = Some(new_spec);
    // The resourceVersion makes this a compare-and-swap: two standbys cannot both win.
    match api.replace(&config.name, &PostParams::default(), &lease).await {
        Ok(_) => Ok(Attempt::Held),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(Attempt::Busy),
        Err(e) => Err(e),
    }
}

/// Leadership, once acquired; renewing runs in the background until [`Leadership::lost`]
/// resolves or [`Leadership::release`] is called.
pub struct Leadership {
    api: Api<Lease>,
    config: Config,
    lost: tokio::sync::watch::Receiver<bool>,
    renewer: tokio::task::JoinHandle<()>,
}

/// Waits until this process holds the lease, then keeps renewing it.
pub async fn acquire(client: Client, config: Config) -> Leadership {
    let api: Api<Lease> = Api::namespaced(client, &config.namespace);
    let mut observed = Observed { record: None, at: Instant::now() };
    info!(lease = %config.name, identity = %config.identity, "waiting to become the leader");
    loop {
        match try_acquire(&api, &config, &mut observed).await {
            Ok(Attempt::Held) => break,
            Ok(Attempt::Busy) => {}
            Err(e) => warn!(error = %e, "leader election: cannot read or write the lease"),
        }
        tokio::time::sleep(config.retry_period).await;
    }
    info!(lease = %config.name, identity = %config.identity, "became the leader");
    let (tx, lost) = tokio::sync::watch::channel(false);
    let renewer = {
        let (api, config) = (api.clone(), config.clone());
        tokio::spawn(async move {
            let mut last_renewed = Instant::now();
            let mut observed = Observed { record: None, at: Instant::now() };
            loop {
                tokio::time::sleep(config.retry_period).await;
                match try_acquire(&api, &config, &mut observed).await {
                    Ok(Attempt::Held) => last_renewed = Instant::now(),
                    Ok(Attempt::Busy) => {
                        warn!("leader election: another process holds the lease");
                        let _ = tx.send(true);
                        return;
                    }
                    Err(e) => warn!(error = %e, "leader election: renewing failed"),
                }
                if last_renewed.elapsed() > config.renew_deadline {
                    warn!("leader election: could not renew within the deadline");
                    let _ = tx.send(true);
                    return;
                }
            }
        })
    };
    Leadership { api, config, lost, renewer }
}

impl Leadership {
    /// Resolves when leadership is lost (another holder, or renewing failed for too long).
    pub async fn lost(&mut self) {
        while !*self.lost.borrow() {
            if self.lost.changed().await.is_err() {
                return;
            }
        }
    }

    /// Stops renewing and hands the lease back, so a standby takes over at once.
    pub async fn release(self) {
        self.renewer.abort();
        if let Ok(Some(mut lease)) = self.api.get_opt(&self.config.name).await
            && lease.spec.as_ref().and_then(|s| s.holder_identity.as_deref()) == Some(self.config.identity.as_str())
        {
            if let Some(spec) = lease.spec.as_mut() {
                spec.holder_identity = None;
                spec.lease_duration_seconds = Some(1);
                spec.renew_time = Some(now());
            }
            match self.api.replace(&self.config.name, &PostParams::default(), &lease).await {
                Ok(_) => info!("leadership released"),
                Err(e) => warn!(error = %e, "could not release the lease; a standby takes over when it expires"),
            }
        }
    }
}
