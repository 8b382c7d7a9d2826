//! What a team factory allows its previews: the classes they may take, how long they may
//! live (`maxTTL`, `factories.dev/keep`) and the access its owners get inside them. Pure; the
//! preview reconciler applies it and `kubectl factory` can explain it.

use std::time::Duration;

use factory_api::PreviewEnvironmentSpec;
use factory_api::factory::{AccessGrant, Owners, PreviewPolicy};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::duration;

/// Class of a preview when neither it nor its factory says.
pub const DEFAULT_CLASS: &str = "preview";
/// Lifetime when neither the preview nor its factory says.
pub const DEFAULT_TTL: Duration = Duration::from_secs(72 * 3600);
/// Longest life of a preview when its factory sets no `maxTTL`.
pub const DEFAULT_MAX_TTL: Duration = Duration::from_secs(720 * 3600);
/// The `factories.dev/keep` value that asks for no expiry at all.
pub const KEEP_FOREVER: &str = "forever";

/// When a preview expires, and why it is earlier than asked, if it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lifetime {
    /// `None`: never (only where the factory allows `forever`).
    pub expires: Option<Timestamp>,
    /// Set when the factory's `maxTTL` cut what the preview asked for.
    pub capped: Option<String>,
}

/// The class of a preview that asks for none.
fn default_class(policy: &PreviewPolicy) -> String {
    policy.class.clone().unwrap_or_else(|| DEFAULT_CLASS.into())
}

/// The classes previews of a factory with `policy` may take.
pub fn allowed_classes(policy: &PreviewPolicy) -> Vec<String> {
    if policy.classes.is_empty() { vec![default_class(policy)] } else { policy.classes.clone() }
}

/// The class a preview asking for `requested` gets: the factory's preview class when it asks
/// for none; an error naming the allowed classes when it asks for another.
pub fn class(factory: &str, policy: &PreviewPolicy, requested: Option<&str>) -> Result<String, String> {
    let Some(requested) = requested else { return Ok(default_class(policy)) };
    let allowed = allowed_classes(policy);
    if allowed.iter().any(|c| c == requested) {
        Ok(requested.to_string())
    } else {
        Err(format!(
            "class {requested} is not allowed for previews of factory {factory} (allowed: {})",
            allowed.join(", ")
        ))
    }
}

/// When a preview created at `created` expires: `expiresAt`, or creation + `ttl` (the
/// factory's when the preview sets none), extended by the `keep` annotation — never later than
/// creation + `maxTTL` unless the factory allows `forever` and `keep` says it.
pub fn lifetime(
    policy: &PreviewPolicy,
    spec: &PreviewEnvironmentSpec,
    keep: Option<&str>,
    created: Timestamp,
) -> Result<Lifetime, String> {
    let max = match &policy.max_ttl {
        Some(text) => duration::parse(text).map_err(|e| format!("previews.maxTTL: {e}"))?,
        None => DEFAULT_MAX_TTL,
    };
    let latest = created + signed(max);
    if keep == Some(KEEP_FOREVER) {
        if policy.allow_forever {
            return Ok(Lifetime { expires: None, capped: None });
        }
        let why =
            format!("keep: forever is not allowed here; the preview expires {} after creation (maxTTL)", text(max));
        return Ok(Lifetime { expires: Some(latest), capped: Some(why) });
    }
    let base = match &spec.expires_at {
        Some(at) => at.0,
        None => {
            let ttl = match spec.ttl.as_deref().or(policy.ttl.as_deref()) {
                Some(ttl) => duration::parse(ttl).map_err(|e| e.to_string())?,
                None => DEFAULT_TTL,
            };
            created + signed(ttl)
        }
    };
    let extra = match keep {
        Some(k) => duration::parse(k).map_err(|e| format!("annotation {}: {e}", factory_api::labels::KEEP))?,
        None => Duration::ZERO,
    };
    let asked = base + signed(extra);
    if asked > latest {
        let why = format!("asked to live until {asked}; previews here live at most {} (maxTTL)", text(max));
        return Ok(Lifetime { expires: Some(latest), capped: Some(why) });
    }
    Ok(Lifetime { expires: Some(asked), capped: None })
}

/// The access grants inside a preview: the factory's `previews.access`, or `edit`; grants
/// without groups go to the owner groups.
pub fn access(policy: &PreviewPolicy, owners: &Owners) -> Vec<AccessGrant> {
    let grants =
        policy.access.clone().unwrap_or_else(|| vec![AccessGrant { cluster_role: "edit".into(), groups: vec![] }]);
    grants
        .into_iter()
        .map(|g| AccessGrant { groups: if g.groups.is_empty() { owners.groups.clone() } else { g.groups }, ..g })
        .collect()
}

fn signed(d: Duration) -> SignedDuration {
    SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)
}

fn text(d: Duration) -> String {
    let hours = d.as_secs() / 3600;
    if hours > 0 && d.as_secs().is_multiple_of(3600) { format!("{hours}h") } else { format!("{}m", d.as_secs() / 60) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use factory_api::GitRef;

    fn spec(ttl: Option<&str>) -> PreviewEnvironmentSpec {
        PreviewEnvironmentSpec {
            application: "cart".into(),
            git_ref: GitRef { branch: Some("main".into()), ..Default::default() },
            ttl: ttl.map(String::from),
            expires_at: None,
            suspend: false,
            class: None,
        }
    }

    fn at(text: &str) -> Timestamp {
        text.parse().expect("timestamp")
    }

    #[test]
    fn a_preview_takes_only_the_classes_its_factory_allows() {
        let policy = PreviewPolicy { class: Some("small".into()), ..Default::default() };
        assert_eq!(class("shop", &policy, None), Ok("small".into()));
        assert_eq!(class("shop", &policy, Some("small")), Ok("small".into()));
        let refused = class("shop", &policy, Some("prod")).unwrap_err();
        assert_eq!(refused, "class prod is not allowed for previews of factory shop (allowed: small)");
        let wider = PreviewPolicy { classes: vec!["small".into(), "perf".into()], ..policy };
        assert_eq!(class("shop", &wider, Some("perf")), Ok("perf".into()));
    }

    #[test]
    fn keep_and_ttl_stop_at_max_ttl() {
        let created = at("2026-12-01T00:00:00Z");
        let policy = PreviewPolicy { max_ttl: Some("48h".into()), ..Default::default() };
        let fits = lifetime(&policy, &spec(Some("24h")), None, created).unwrap();
        assert_eq!(fits, Lifetime { expires: Some(at("2026-12-02T00:00:00Z")), capped: None });
        let kept = lifetime(&policy, &spec(Some("24h")), Some("72h"), created).unwrap();
        assert_eq!(kept.expires, Some(at("2026-12-03T00:00:00Z")));
        assert!(kept.capped.is_some_and(|w| w.contains("at most 48h")));
        let forever = lifetime(&policy, &spec(None), Some(KEEP_FOREVER), created).unwrap();
        assert_eq!(forever.expires, Some(at("2026-12-03T00:00:00Z")), "forever is not allowed here");
        let allowed = PreviewPolicy { allow_forever: true, ..policy };
        assert_eq!(lifetime(&allowed, &spec(None), Some(KEEP_FOREVER), created).unwrap().expires, None);
        assert!(lifetime(&allowed, &spec(None), Some("soon"), created).unwrap_err().contains("factories.dev/keep"));
    }

    #[test]
    fn owners_get_edit_in_their_previews_unless_the_factory_says_otherwise() {
        let owners = Owners { groups: vec!["team-shop".into()], users: vec![] };
        let grants = access(&PreviewPolicy::default(), &owners);
        assert_eq!(
            (grants[0].cluster_role.as_str(), grants[0].groups.clone()),
            ("edit", vec!["team-shop".to_string()])
        );
        let view = PreviewPolicy {
            access: Some(vec![AccessGrant { cluster_role: "view".into(), groups: vec!["qa".into()] }]),
            ..Default::default()
        };
        assert_eq!(access(&view, &owners)[0].groups, ["qa"]);
    }
}
