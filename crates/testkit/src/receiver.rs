//! A webhook target on loopback that records every request it gets (notifications), and can
//! be told to fail the first ones (to see the sender retry).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;

/// One request received.
#[derive(Debug, Clone)]
pub struct Received {
    /// Its path.
    pub path: String,
    /// Its headers, names in lower case.
    pub headers: BTreeMap<String, String>,
    /// Its body.
    pub body: Vec<u8>,
    /// The status it was answered with.
    pub answered: u16,
}

#[derive(Clone, Default)]
struct Shared {
    received: Arc<Mutex<Vec<Received>>>,
    fail_first: Arc<AtomicUsize>,
}

/// A running receiver; it stops with the test's runtime.
pub struct Receiver {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    shared: Shared,
}

impl Receiver {
    /// Starts a receiver answering `503` to its first `fail_first` requests, `202` after.
    pub async fn start(fail_first: usize) -> anyhow::Result<Self> {
        let shared = Shared { fail_first: Arc::new(AtomicUsize::new(fail_first)), ..Default::default() };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let router = Router::new().route("/{*path}", post(receive)).with_state(shared.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Ok(Self { url, shared })
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

async fn receive(State(shared): State<Shared>, uri: axum::http::Uri, headers: HeaderMap, body: Bytes) -> StatusCode {
    let failing = shared.fail_first.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
    let answered = if failing { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::ACCEPTED };
    let headers =
        headers.iter().map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or_default().to_string())).collect();
    let received = Received { path: uri.path().to_string(), headers, body: body.to_vec(), answered: answered.as_u16() };
    shared.received.lock().unwrap_or_else(|p| p.into_inner()).push(received);
    answered
}
