//! Where a team factory tells people what needs them: webhook targets and the events sent.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use crate::pull_requests::LocalSecretReference;

/// A webhook that receives the factory's notifications. Each event is sent once (retried with
/// backoff while the target fails), never holding up a reconcile.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationTarget {
    /// Name of the target, a DNS-1123 label.
    #[schemars(length(min = 1, max = 63), regex(pattern = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub name: String,
    /// `Slack` (an incoming-webhook message, which Mattermost and Rocket.Chat take too) or
    /// `Generic` (the event as JSON). Defaults to `Generic`.
    pub format: Option<NotificationFormat>,
    /// Secret in the cicd namespace, read with the team's rights: `url` (the target, which
    /// for chat webhooks is itself a secret) and optionally `secret`, the HMAC-SHA256 key of the
    /// `X-Factory-Signature-256: sha256=<hex>` header over the body.
    pub secret_ref: LocalSecretReference,
    /// Which events are sent. Defaults to all of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("maxItems" = 8))]
    pub events: Vec<NotificationEvent>,
}

/// The shape of a notification.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum NotificationFormat {
    /// The event as JSON: `event`, `factory`, `object`, `summary`, `detail`, `url`, `time`.
    #[default]
    Generic,
    /// A Slack incoming-webhook message (`text` and `blocks`).
    Slack,
}

/// What a factory notifies about.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema)]
pub enum NotificationEvent {
    /// An environment or preview stopped being Ready because something failed (an apply, a
    /// render, health).
    Failure,
    /// A release waits for an approval to enter an environment.
    ApprovalWaiting,
    /// A preview expires within the hour.
    PreviewExpiring,
}

impl NotificationEvent {
    /// Every event.
    pub const ALL: [NotificationEvent; 3] =
        [NotificationEvent::Failure, NotificationEvent::ApprovalWaiting, NotificationEvent::PreviewExpiring];

    /// The event's name in messages, such as `failure`.
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationEvent::Failure => "failure",
            NotificationEvent::ApprovalWaiting => "approval-waiting",
            NotificationEvent::PreviewExpiring => "preview-expiring",
        }
    }
}
