//! What a `BackupCoverage` scans, read through the inventory the databases share (one read
//! of a region serves its objects and its coverages), and its spec as the pure policy
//! reads it. For the controller and for `backup-warden check` alike.

use std::time::Duration;

use crate::{
    api::coverage::{BackupCoverageSpec, InstanceSelector, RepositorySelector},
    aws::{Scope, inventory::Inventory},
    github::OrgRepository,
    policy::coverage::{Discovered, Exemptions, Rule, Selector, account_of, database_claim},
};

/// Every instance of the accounts and regions the coverage scans, with the tags it looks
/// at, read no longer than `max_age` ago, and the age of the oldest read used. An error
/// names the region and the account.
pub async fn databases(
    inventory: &Inventory,
    spec: &BackupCoverageSpec,
    max_age: Duration,
) -> Result<(Vec<Discovered>, Duration), String> {
    let Some(databases) = &spec.databases else {
        return Ok((Vec::new(), Duration::ZERO));
    };
    // Instances read before a tag was asked for lack it: read them again, once.
    let max_age = if inventory.keep_tags(tag_keys(spec)) {
        Duration::ZERO
    } else {
        max_age
    };
    let (mut found, mut oldest) = (Vec::new(), Duration::ZERO);
    for account in &databases.accounts {
        let role = account.role_arn.as_deref();
        for region in &account.regions {
            let (instances, age) = inventory
                .instances_aged(&Scope::new(role, region), max_age)
                .await
                .map_err(|e| format!("{region} ({}): {e}", account_of(role)))?;
            oldest = oldest.max(age);
            found.extend(instances.values().map(|i| {
                Discovered {
                    claim: database_claim(role, region, &i.identifier),
                    name: i.identifier.clone(),
                    labels: i
                        .tags
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                    excluded_by_default: None,
                }
            }));
        }
    }
    Ok((found, oldest))
}

/// The role an account of the coverage is scanned with (`None`: the controller's own).
pub fn role_for<'a>(spec: &'a BackupCoverageSpec, account: &str) -> Option<&'a str> {
    let accounts = spec.databases.iter().flat_map(|d| &d.accounts);
    accounts
        .filter_map(|a| a.role_arn.as_deref())
        .find(|role| account_of(Some(role)) == account)
}

/// The tags a coverage selects or exempts by.
fn tag_keys(spec: &BackupCoverageSpec) -> Vec<String> {
    let selectors = spec
        .databases
        .iter()
        .flat_map(|d| d.include.iter().chain(&d.exclude));
    selectors
        .filter_map(|s| s.tag.as_ref().map(|t| t.key.clone()))
        .chain(std::iter::once(spec.exemptions.tag.clone()))
        .collect()
}

pub fn database_selector(spec: &BackupCoverageSpec) -> Selector {
    let rule = |s: &InstanceSelector| match (&s.identifier, &s.tag) {
        (Some(pattern), _) => Some(Rule::Name(pattern.clone())),
        (None, Some(tag)) => Some(Rule::Label {
            key: tag.key.clone(),
            value: tag.value.clone(),
        }),
        (None, None) => None,
    };
    let d = spec.databases.as_ref();
    selector(d.map(|d| (&d.include[..], &d.exclude[..])), rule)
}

/// The include and exclude rules of a kind's selectors, each read by `rule`.
fn selector<S>(lists: Option<(&[S], &[S])>, rule: impl Fn(&S) -> Option<Rule>) -> Selector {
    let rules = |list: &[S]| list.iter().filter_map(&rule).collect();
    lists
        .map(|(include, exclude)| Selector {
            include: rules(include),
            exclude: rules(exclude),
        })
        .unwrap_or_default()
}

pub fn database_exemptions(spec: &BackupCoverageSpec) -> Exemptions {
    Exemptions {
        listed: spec
            .exemptions
            .databases
            .iter()
            .map(|e| {
                let i = &e.instance;
                let claim = database_claim(i.role_arn.as_deref(), &i.region, &i.identifier);
                (claim, e.reason.clone())
            })
            .collect(),
        label: Some(spec.exemptions.tag.clone()),
        // A tag carries its reason; an empty one exempts nothing.
        label_reason: None,
    }
}

/// The repositories of the organizations listed, as the policy reads them: claimed as a
/// `BackedUpRepository` claims them (`owner/name` in lower case), topics as labels, and
/// archived ones and forks left out unless the coverage asks for them.
pub fn repositories(spec: &BackupCoverageSpec, listed: &[OrgRepository]) -> Vec<Discovered> {
    let Some(coverage) = &spec.repositories else {
        return Vec::new();
    };
    listed
        .iter()
        .map(|r| Discovered {
            claim: r.full_name.to_ascii_lowercase(),
            name: r.full_name.clone(),
            labels: r.topics.iter().map(|t| (t.clone(), String::new())).collect(),
            excluded_by_default: if r.archived && !coverage.include_archived {
                Some("archived")
            } else if r.fork && !coverage.include_forks {
                Some("fork")
            } else {
                None
            },
        })
        .collect()
}

pub fn repository_selector(spec: &BackupCoverageSpec) -> Selector {
    let rule = |s: &RepositorySelector| match (&s.name, &s.topic) {
        (Some(pattern), _) => Some(Rule::Name(pattern.clone())),
        (None, Some(topic)) => Some(Rule::Label {
            key: topic.clone(),
            value: None,
        }),
        (None, None) => None,
    };
    let r = spec.repositories.as_ref();
    selector(r.map(|r| (&r.include[..], &r.exclude[..])), rule)
}

pub fn repository_exemptions(spec: &BackupCoverageSpec) -> Exemptions {
    let e = &spec.exemptions;
    Exemptions {
        listed: e
            .repositories
            .iter()
            .map(|r| (r.repository.to_ascii_lowercase(), r.reason.clone()))
            .collect(),
        // A topic has no value: the coverage gives the reason for all it exempts.
        label: e.topic.as_ref().map(|t| t.name.clone()),
        label_reason: e.topic.as_ref().map(|t| t.reason.clone()),
    }
}
