//! Smart HTTP for a [`GitRoot`](super::GitRoot): a small axum server that runs the real
//! `git http-backend` as a CGI program, optionally behind a token, and can be told to fail.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use axum::body::{Body, to_bytes};
use axum::http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tokio::io::AsyncWriteExt;
use tokio::sync::oneshot;

#[derive(Default)]
struct Settings {
    token: Option<String>,
    unavailable: bool,
}

struct Shared {
    root: PathBuf,
    settings: Mutex<Settings>,
    requests: AtomicUsize,
    uploads: AtomicUsize,
}

/// A running smart-HTTP git server on loopback; stopped on drop.
pub struct GitHttpServer {
    /// Its address.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl GitHttpServer {
    /// Serves `root` on a free loopback port. With `token`, every request must authenticate
    /// with it, as HTTP Basic password (any user name) or as a Bearer token.
    pub async fn start(root: PathBuf, token: Option<String>) -> Result<Self> {
        let shared = Arc::new(Shared {
            root,
            settings: Mutex::new(Settings { token, unavailable: false }),
            requests: AtomicUsize::new(0),
            uploads: AtomicUsize::new(0),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = shared.clone();
        let app = axum::Router::new().fallback(move |request: Request<Body>| {
            let state = state.clone();
            async move { serve(state, request).await }
        });
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(Self { addr, shared, shutdown: Some(tx) })
    }

    /// The `http://` URL of repository `name`.
    pub fn url(&self, name: &str) -> String {
        format!("http://{}/{name}.git", self.addr)
    }

    /// Replaces the required token (`None`: no authentication), as when a token is revoked.
    pub fn set_token(&self, token: Option<String>) {
        self.settings().token = token;
    }

    /// Makes every request fail with 503 (an outage) or serves again.
    pub fn set_unavailable(&self, unavailable: bool) {
        self.settings().unavailable = unavailable;
    }

    /// How many requests the server has answered.
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::Relaxed)
    }

    /// How many pack negotiations (`POST …/git-upload-pack`, a fetch's costly part) it served;
    /// a ref listing alone is a `GET …/info/refs`.
    pub fn upload_packs(&self) -> usize {
        self.shared.uploads.load(Ordering::Relaxed)
    }

    fn settings(&self) -> std::sync::MutexGuard<'_, Settings> {
        self.shared.settings.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for GitHttpServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

fn plain(status: StatusCode, text: &str) -> Response<Body> {
    let mut response = Response::new(Body::from(text.to_string()));
    *response.status_mut() = status;
    response
}

fn authorized(headers: &HeaderMap, token: &str) -> bool {
    let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else { return false };
    if let Some(bearer) = value.strip_prefix("Bearer ") {
        return bearer == token;
    }
    value
        .strip_prefix("Basic ")
        .and_then(|b64| STANDARD.decode(b64).ok())
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|pair| pair.split_once(':').map(|(_, password)| password == token))
        .unwrap_or(false)
}

async fn serve(shared: Arc<Shared>, request: Request<Body>) -> Response<Body> {
    shared.requests.fetch_add(1, Ordering::Relaxed);
    if request.method() == axum::http::Method::POST && request.uri().path().ends_with("/git-upload-pack") {
        shared.uploads.fetch_add(1, Ordering::Relaxed);
    }
    let (unavailable, token) = {
        let s = shared.settings.lock().unwrap_or_else(|p| p.into_inner());
        (s.unavailable, s.token.clone())
    };
    if unavailable {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "git server unavailable (test outage)\n");
    }
    if let Some(token) = token
        && !authorized(request.headers(), &token)
    {
        let mut response = plain(StatusCode::UNAUTHORIZED, "authentication required\n");
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"git\""));
        return response;
    }
    match cgi(&shared.root, request).await {
        Ok(response) => response,
        Err(e) => plain(StatusCode::INTERNAL_SERVER_ERROR, &format!("git http-backend failed: {e:#}\n")),
    }
}

/// Runs `git http-backend` for one request, following the CGI convention it implements.
async fn cgi(root: &std::path::Path, request: Request<Body>) -> Result<Response<Body>> {
    let (parts, body) = request.into_parts();
    let body = to_bytes(body, 512 * 1024 * 1024).await.context("reading request body")?;
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let mut child = tokio::process::Command::new("git")
        .arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("REQUEST_METHOD", parts.method.as_str())
        .env("PATH_INFO", parts.uri.path())
        .env("QUERY_STRING", parts.uri.query().unwrap_or(""))
        .env("CONTENT_TYPE", header("content-type"))
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("HTTP_CONTENT_ENCODING", header("content-encoding"))
        .env("HTTP_GIT_PROTOCOL", header("git-protocol"))
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("REMOTE_USER", "tests")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting git http-backend")?;
    let mut stdin = child.stdin.take().context("http-backend stdin")?;
    let write = async move {
        stdin.write_all(&body).await?;
        stdin.shutdown().await
    };
    let (written, output) = tokio::join!(write, child.wait_with_output());
    written.context("writing request body to http-backend")?;
    let output = output.context("waiting for http-backend")?;
    parse_cgi(&output.stdout)
}

fn parse_cgi(raw: &[u8]) -> Result<Response<Body>> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)))
        .context("http-backend printed no header block")?;
    let head = String::from_utf8_lossy(&raw[..split.0]);
    let mut response = Response::new(Body::from(raw[split.0 + split.1..].to_vec()));
    for line in head.lines() {
        let Some((name, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split_whitespace().next().and_then(|c| c.parse().ok()).unwrap_or(500);
            *response.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        } else if let (Ok(n), Ok(v)) = (header::HeaderName::try_from(name.trim()), HeaderValue::from_str(value)) {
            response.headers_mut().append(n, v);
        }
    }
    Ok(response)
}
