//! Tenancy: which AWS identities and GitHub repositories the objects of each namespace may
//! make the controller use. An administrator writes it (a file the chart renders from its
//! values); a namespace owner cannot widen it by writing a spec.
//!
//! ```yaml
//! namespaces:
//!   data-platform:
//!     aws: ["arn:aws:iam::123456789012:role/backup-warden", "self"]
//!     github: ["narrative-io/*"]
//!   "*":                      # every namespace, in addition to its own entry
//!     github: ["narrative-io/docs"]
//! ```
//!
//! `self` is the controller's own AWS identity (an object that names no role); an entry
//! ending in `*` matches by prefix. Without a file, every namespace may use the
//! controller's own identity and any repository its GitHub credentials reach, and no
//! namespace may name a role: one team, one trust domain.

use std::{collections::BTreeMap, path::Path};

use serde::Deserialize;

/// The controller's own AWS identity, in a namespace's `aws` list.
pub const OWN_IDENTITY: &str = "self";

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tenancy {
    /// Allowances per namespace; `*` applies to every namespace.
    pub namespaces: BTreeMap<String, Allowance>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Allowance {
    /// IAM role ARNs (or prefixes ending in `*`) and `self`.
    #[serde(default)]
    pub aws: Vec<String>,
    /// `owner/name` or `owner/*`, case-insensitive.
    #[serde(default)]
    pub github: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum TenancyError {
    #[error("cannot read the tenancy file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the tenancy file {path} is not valid: {message}")]
    Invalid { path: String, message: String },
}

impl Tenancy {
    /// One team: its own AWS identity and every repository, in every namespace.
    pub fn single_team() -> Self {
        let everything = Allowance {
            aws: vec![OWN_IDENTITY.to_string()],
            github: vec!["*".to_string()],
        };
        Self {
            namespaces: BTreeMap::from([("*".to_string(), everything)]),
        }
    }

    pub fn from_file(path: &Path) -> Result<Self, TenancyError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| TenancyError::Read {
            path: shown.clone(),
            source,
        })?;
        serde_saphyr::from_str(&text).map_err(|e| TenancyError::Invalid {
            path: shown,
            message: e.to_string(),
        })
    }

    fn allowances<'a>(&'a self, namespace: &str) -> impl Iterator<Item = &'a Allowance> {
        [namespace, "*"]
            .into_iter()
            .filter_map(|key| self.namespaces.get(key))
    }

    /// Whether objects in `namespace` may make the controller act as `role` (None: its own
    /// identity). Says why not, for the object's status.
    pub fn check_role(&self, namespace: &str, role: Option<&str>) -> Result<(), String> {
        let wanted = role.unwrap_or(OWN_IDENTITY);
        let allowed = self
            .allowances(namespace)
            .flat_map(|a| &a.aws)
            .any(|pattern| matches(pattern, wanted, false));
        if allowed {
            return Ok(());
        }
        Err(match role {
            Some(role) => format!(
                "namespace {namespace} may not use the AWS role {role}: an administrator must allow it in the tenancy file (namespaces.{namespace}.aws)"
            ),
            None => format!(
                "namespace {namespace} may not use backup-warden's own AWS identity: name an allowed spec.instance.roleArn, or an administrator adds \"self\" to namespaces.{namespace}.aws in the tenancy file"
            ),
        })
    }

    /// Whether objects in `namespace` may make the controller write to `repository`.
    pub fn check_repository(&self, namespace: &str, repository: &str) -> Result<(), String> {
        let allowed = self
            .allowances(namespace)
            .flat_map(|a| &a.github)
            .any(|pattern| matches(pattern, repository, true));
        if allowed {
            Ok(())
        } else {
            Err(format!(
                "namespace {namespace} may not manage the GitHub repository {repository}: an administrator must allow it in the tenancy file (namespaces.{namespace}.github)"
            ))
        }
    }
}

/// Exact, or a prefix when the pattern ends in `*`.
fn matches(pattern: &str, value: &str, ignore_case: bool) -> bool {
    let (pattern, value) = if ignore_case {
        (pattern.to_ascii_lowercase(), value.to_ascii_lowercase())
    } else {
        (pattern.to_string(), value.to_string())
    };
    match pattern.strip_suffix('*') {
        Some(prefix) => value.starts_with(prefix),
        None => value == pattern,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenancy() -> Tenancy {
        serde_saphyr::from_str(
            r#"
namespaces:
  data-platform:
    aws: ["arn:aws:iam::111111111111:role/backup-warden", "self"]
    github: ["narrative-io/*"]
  payments:
    aws: ["arn:aws:iam::222222222222:role/*"]
  "*":
    github: ["narrative-io/docs"]
"#,
        )
        .expect("valid")
    }

    #[test]
    fn roles_are_allowed_per_namespace() {
        let t = tenancy();
        assert!(
            t.check_role(
                "data-platform",
                Some("arn:aws:iam::111111111111:role/backup-warden")
            )
            .is_ok()
        );
        assert!(t.check_role("data-platform", None).is_ok());
        assert!(
            t.check_role("payments", Some("arn:aws:iam::222222222222:role/any"))
                .is_ok()
        );
        let refused = t
            .check_role("payments", Some("arn:aws:iam::111111111111:role/backup-warden"))
            .unwrap_err();
        assert!(refused.contains("namespaces.payments.aws"), "{refused}");
        assert!(t.check_role("payments", None).is_err(), "self must be granted");
        assert!(t.check_role("other", None).is_err());
    }

    #[test]
    fn repositories_are_allowed_per_namespace_and_for_all() {
        let t = tenancy();
        assert!(
            t.check_repository("data-platform", "Narrative-IO/Marketplace")
                .is_ok()
        );
        assert!(t.check_repository("payments", "narrative-io/docs").is_ok());
        assert!(
            t.check_repository("payments", "narrative-io/marketplace")
                .is_err()
        );
        assert!(
            t.check_repository("data-platform", "narrative-iox/marketplace")
                .is_err()
        );
    }

    #[test]
    fn a_single_team_uses_its_own_identity_and_any_repository_but_no_role() {
        let t = Tenancy::single_team();
        assert!(t.check_role("anything", None).is_ok());
        assert!(
            t.check_role("anything", Some("arn:aws:iam::111111111111:role/x"))
                .is_err()
        );
        assert!(t.check_repository("anything", "someone/anything").is_ok());
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(serde_saphyr::from_str::<Tenancy>("namespaces: {a: {roles: []}}").is_err());
    }
}
