//! What `/readyz` answers: ready once this process can do its job — the API server answers,
//! and, while it leads, its watch caches hold their first list. A standby is ready as soon as
//! the API server answers (it serves webhooks, and a rollout must not wait for it to lead).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kube::Client;

/// How long `/readyz` waits for the API server.
const API_TIMEOUT: Duration = Duration::from_secs(2);

/// The readiness of this process.
pub struct Health {
    client: Client,
    leading: AtomicBool,
    listed: AtomicBool,
}

impl Health {
    /// Not leading, nothing listed, asking the API server through `client`.
    pub fn new(client: Client) -> Self {
        Self { client, leading: AtomicBool::new(false), listed: AtomicBool::new(false) }
    }

    /// This process leads (or runs without leader election) and starts its watches, or stopped.
    pub fn set_leading(&self, leading: bool) {
        self.leading.store(leading, Ordering::Relaxed);
        if !leading {
            self.listed.store(false, Ordering::Relaxed);
        }
    }

    /// Every watch cache holds its first list.
    pub fn set_listed(&self) {
        self.listed.store(true, Ordering::Relaxed);
    }

    /// `Ok` when ready, else why not.
    pub async fn ready(&self) -> Result<(), String> {
        if self.leading.load(Ordering::Relaxed) && !self.listed.load(Ordering::Relaxed) {
            return Err("the watch caches have not listed yet".into());
        }
        match tokio::time::timeout(API_TIMEOUT, self.client.apiserver_version()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("the API server cannot be reached: {e}")),
            Err(_) => Err(format!("the API server did not answer within {}s", API_TIMEOUT.as_secs())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unreachable() -> Client {
        // A port nothing listens on: connections are refused at once.
        let port =
            std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(1);
        let config = kube::Config::new(format!("http://127.0.0.1:{port}").parse().expect("url"));
        Client::try_from(config).expect("client")
    }

    #[tokio::test]
    async fn not_ready_before_the_caches_list_or_without_the_api_server() {
        let health = Health::new(unreachable());
        health.set_leading(true);
        assert_eq!(health.ready().await, Err("the watch caches have not listed yet".to_string()));
        health.set_listed();
        let why = health.ready().await.expect_err("no API server");
        assert!(why.starts_with("the API server cannot be reached"), "{why}");
        health.set_leading(false);
        health.set_leading(true);
        assert_eq!(
            health.ready().await,
            Err("the watch caches have not listed yet".to_string()),
            "a new term lists again"
        );
    }
}
