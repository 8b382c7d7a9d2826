//! Notifications: what a factory tells its webhook targets (failures, releases waiting for
//! approval, previews about to expire), shaped for Slack-compatible chats or as generic JSON,
//! signed with HMAC-SHA256 over the body, and delivered with a bounded time. Queueing,
//! de-duplication and retries are the caller's (the controller's notifier).

use std::time::Duration;

use factory_api::{NotificationEvent, NotificationFormat};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

/// The header carrying the body's signature: `sha256=<hex>`.
pub const SIGNATURE_HEADER: &str = "x-factory-signature-256";
/// The header naming the event, such as `failure`.
pub const EVENT_HEADER: &str = "x-factory-event";

/// One notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// What happened.
    pub event: NotificationEvent,
    /// The team factory it concerns.
    pub factory: String,
    /// The object it is about: `Environment shop-prod`, `PreviewEnvironment shop-cicd/web-pr-7`.
    pub object: String,
    /// One line for people.
    pub summary: String,
    /// The details (a condition's message, what waits).
    pub detail: String,
    /// Where to look, when there is a place (a preview's URL).
    pub url: Option<String>,
    /// When it happened (RFC 3339).
    pub time: String,
}

/// The request body for `format`.
pub fn body(format: NotificationFormat, message: &Message) -> Vec<u8> {
    let value = match format {
        NotificationFormat::Generic => json!({
            "event": message.event.as_str(), "factory": message.factory, "object": message.object,
            "summary": message.summary, "detail": message.detail, "url": message.url, "time": message.time,
        }),
        NotificationFormat::Slack => slack(message),
    };
    serde_json::to_vec(&value).unwrap_or_default()
}

/// A Slack incoming-webhook message: `text` for notifications and clients without blocks.
fn slack(message: &Message) -> Value {
    let icon = match message.event {
        NotificationEvent::Failure => ":x:",
        NotificationEvent::ApprovalWaiting => ":raised_hand:",
        NotificationEvent::PreviewExpiring => ":hourglass:",
    };
    let text = format!("{icon} *{}* — {}: {}", message.factory, message.object, message.summary);
    let mut detail = escape(&message.detail);
    if let Some(url) = &message.url {
        detail.push_str(&format!("\n<{url}|{url}>"));
    }
    json!({
        "text": text,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": escape(&text)}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": if detail.is_empty() { "—".to_string() } else { detail }}]},
        ]
    })
}

/// Slack's three control characters, escaped as its documentation asks.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// `sha256=<hex of HMAC-SHA256(secret, body)>`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        // HMAC takes keys of any length; this cannot happen.
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A delivery failed.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// No answer (refused, timed out, TLS).
    #[error("{0}")]
    Request(String),
    /// The target answered with an error status.
    #[error("the target answered {code}")]
    Status {
        /// HTTP status code.
        code: u16,
    },
}

impl NotifyError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            NotifyError::Request(_) => true,
            NotifyError::Status { code } => *code == 408 || *code == 429 || *code >= 500,
        }
    }
}

/// Delivers notifications over HTTP(S).
#[derive(Clone)]
pub struct Sender {
    client: reqwest::Client,
}

impl Sender {
    /// A sender whose requests give up after `timeout`.
    pub fn new(timeout: Duration) -> Result<Self, NotifyError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("factory-operator/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| NotifyError::Request(e.to_string()))?;
        Ok(Self { client })
    }

    /// POSTs `body` to `url`, signed with `secret` when there is one.
    pub async fn send(
        &self,
        url: &str,
        event: NotificationEvent,
        body: Vec<u8>,
        secret: Option<&[u8]>,
    ) -> Result<(), NotifyError> {
        let mut request =
            self.client.post(url).header("content-type", "application/json").header(EVENT_HEADER, event.as_str());
        if let Some(secret) = secret {
            request = request.header(SIGNATURE_HEADER, signature(secret, &body));
        }
        let answer = request.body(body).send().await.map_err(|e| NotifyError::Request(e.to_string()))?;
        if answer.status().is_success() { Ok(()) } else { Err(NotifyError::Status { code: answer.status().as_u16() }) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> Message {
        Message {
            event: NotificationEvent::Failure,
            factory: "shop".into(),
            object: "Environment shop-prod".into(),
            summary: "Stalled: ApplyFailed".into(),
            detail: "Deployment shop-prod/web: <b>&</b>".into(),
            url: Some("https://web.example.com/".into()),
            time: "2026-12-04T10:00:00Z".into(),
        }
    }

    #[test]
    fn the_generic_form_carries_every_field() {
        let value: Value = serde_json::from_slice(&body(NotificationFormat::Generic, &message())).expect("json");
        assert_eq!(value["event"], "failure");
        assert_eq!(value["object"], "Environment shop-prod");
        assert_eq!(value["url"], "https://web.example.com/");
    }

    #[test]
    fn the_slack_form_has_text_and_blocks_with_slacks_escapes() {
        let value: Value = serde_json::from_slice(&body(NotificationFormat::Slack, &message())).expect("json");
        assert_eq!(value["text"], ":x: *shop* — Environment shop-prod: Stalled: ApplyFailed");
        let context = value["blocks"][1]["elements"][0]["text"].as_str().expect("context");
        assert!(context.starts_with("Deployment shop-prod/web: &lt;b&gt;&amp;&lt;/b&gt;"), "{context}");
        assert!(context.ends_with("<https://web.example.com/|https://web.example.com/>"), "{context}");
    }

    #[test]
    fn signatures_are_hmac_sha256_of_the_body() {
        // RFC 4231 test case 2.
        let sig = signature(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(sig, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }
}
