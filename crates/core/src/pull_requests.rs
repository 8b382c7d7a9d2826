//! Pull-request previews, the pure part: which pull requests get a preview, its name, the
//! Ingress that makes it reachable and its URL. The controller asks the git host and applies.

use factory_api::{Expose, PreviewIngress, PullRequestPreviews};
use serde_json::{Value, json};

use crate::names::{glob_match, sanitize_label};

/// Why a pull request gets no preview, when it does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skipped {
    /// It lacks the label the factory asks for.
    Unlabelled,
    /// Its branch does not match the factory's pattern.
    OtherBranch,
    /// Its head is in a fork, and the factory does not allow forks.
    Fork,
}

impl Skipped {
    /// Says why, for status.
    pub fn as_str(self) -> &'static str {
        match self {
            Skipped::Unlabelled => "without the label",
            Skipped::OtherBranch => "from other branches",
            Skipped::Fork => "from forks (allowForks is false)",
        }
    }
}

/// Whether a pull request from `branch` with `labels` (from a fork or not) gets a preview.
pub fn selects(policy: &PullRequestPreviews, branch: &str, labels: &[String], from_fork: bool) -> Result<(), Skipped> {
    if from_fork && !policy.allow_forks {
        return Err(Skipped::Fork);
    }
    if let Some(label) = &policy.label
        && !labels.iter().any(|l| l == label)
    {
        return Err(Skipped::Unlabelled);
    }
    if let Some(pattern) = &policy.branches
        && !glob_match(pattern, branch)
    {
        return Err(Skipped::OtherBranch);
    }
    Ok(())
}

/// The preview of pull request `number` of `application`: `<application>-pr-<number>`,
/// whatever its branch is called.
pub fn preview_name(application: &str, number: u64) -> String {
    sanitize_label(&format!("{application}-pr-{number}"), 63)
}

/// The commit-status context the operator posts a factory's preview states under.
pub fn status_context(factory: &str) -> String {
    format!("factory/{factory}/preview")
}

/// The commit-status context of a factory's releases in `environment`.
pub fn release_context(factory: &str, environment: &str) -> String {
    format!("factory/{factory}/{environment}")
}

/// The host name of preview `preview` of `application` in `factory`, from the template.
pub fn host(ingress: &PreviewIngress, factory: &str, application: &str, preview: &str) -> String {
    ingress
        .host
        .replace("${preview}", preview)
        .replace("${application}", application)
        .replace("${factory}", factory)
        .to_ascii_lowercase()
}

/// The preview's URL: `https://<host>` with a TLS Secret, else `http://<host>`.
pub fn url(ingress: &PreviewIngress, host: &str) -> String {
    let scheme = if ingress.tls_secret_name.is_some() { "https" } else { "http" };
    format!("{scheme}://{host}/")
}

/// The Ingress `preview` that sends `host` to the application's Service.
pub fn ingress(ingress: &PreviewIngress, expose: &Expose, namespace: &str, host: &str) -> Value {
    let mut spec = json!({
        "rules": [{"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": expose.service, "port": {"number": expose.port}}}}]}}]
    });
    if let Some(class) = &ingress.class_name {
        spec["ingressClassName"] = json!(class);
    }
    if let Some(secret) = &ingress.tls_secret_name {
        spec["tls"] = json!([{"hosts": [host], "secretName": secret}]);
    }
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
           "metadata": {"name": "preview", "namespace": namespace}, "spec": spec})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(label: Option<&str>, branches: Option<&str>, allow_forks: bool) -> PullRequestPreviews {
        PullRequestPreviews {
            label: label.map(str::to_string),
            branches: branches.map(str::to_string),
            allow_forks,
            ..Default::default()
        }
    }

    #[test]
    fn labels_branches_and_forks_decide() {
        let labels = vec!["preview".to_string()];
        assert_eq!(selects(&policy(None, None, false), "x", &[], false), Ok(()));
        assert_eq!(selects(&policy(None, None, false), "x", &[], true), Err(Skipped::Fork));
        assert_eq!(selects(&policy(None, None, true), "x", &[], true), Ok(()));
        assert_eq!(selects(&policy(Some("preview"), None, false), "x", &[], false), Err(Skipped::Unlabelled));
        assert_eq!(selects(&policy(Some("preview"), None, false), "x", &labels, false), Ok(()));
        assert_eq!(selects(&policy(None, Some("feature/*"), false), "main", &[], false), Err(Skipped::OtherBranch));
        assert_eq!(selects(&policy(None, Some("feature/*"), false), "feature/a", &[], false), Ok(()));
    }

    #[test]
    fn names_come_from_the_number_whatever_the_branch() {
        assert_eq!(preview_name("cart", 7), "cart-pr-7");
        let long = "a".repeat(40);
        let name = preview_name(&long, 123456);
        assert!(crate::names::is_dns1123_label(&name) && name.len() <= 63, "{name}");
    }

    #[test]
    fn the_ingress_routes_the_host_to_the_service_with_the_platforms_class_and_certificate() {
        let policy = PreviewIngress {
            host: "${preview}.${factory}.preview.example.com".into(),
            class_name: Some("nginx".into()),
            tls_secret_name: Some("wildcard".into()),
        };
        let host = host(&policy, "shop", "cart", "cart-pr-7");
        assert_eq!(host, "cart-pr-7.shop.preview.example.com");
        assert_eq!(url(&policy, &host), "https://cart-pr-7.shop.preview.example.com/");
        let object = ingress(&policy, &Expose { service: "web".into(), port: 8080 }, "shop-pv-cart-pr-7", &host);
        assert_eq!(object["spec"]["ingressClassName"], "nginx");
        assert_eq!(object["spec"]["tls"][0]["secretName"], "wildcard");
        assert_eq!(object["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["port"]["number"], 8080);
        let plain = PreviewIngress { tls_secret_name: None, ..policy };
        assert!(url(&plain, &host).starts_with("http://"));
    }
}
