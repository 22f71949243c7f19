//! Coverage: of everything that exists (RDS instances in the accounts and regions scanned,
//! repositories of the organizations scanned), which are declared by an object, which are
//! knowingly exempt, and which nobody looked at. Pure: what was discovered, what is
//! declared and what the coverage says come in; the standing of each resource and the
//! counts go out.

use std::collections::{BTreeMap, HashSet};

use k8s_openapi::jiff::Timestamp;

/// What an object naming this RDS instance claims: `account/region/identifier`, the
/// identifier in lower case as RDS compares it. The account is what makes an identifier
/// unique, with the region: the role's account, or `self` for the controller's own.
pub fn database_claim(role_arn: Option<&str>, region: &str, identifier: &str) -> String {
    format!(
        "{}/{region}/{}",
        account_of(role_arn),
        identifier.to_ascii_lowercase()
    )
}

/// The account of a role ARN (arn:aws:iam::ACCOUNT:role/NAME), or `self` without one.
pub fn account_of(role_arn: Option<&str>) -> &str {
    role_arn.and_then(|arn| arn.split(':').nth(4)).unwrap_or("self")
}

/// The account, region and identifier of a database claim.
pub fn parts(claim: &str) -> (&str, &str, &str) {
    let mut parts = claim.splitn(3, '/');
    let mut next = || parts.next().unwrap_or_default();
    (next(), next(), next())
}

/// The name of the object that declares the instance of `claim`: its identifier (lower
/// case, as RDS keeps it), or with its region, then its account added, when `taken` says
/// the name is used; `None` when all three are.
pub fn object_name(claim: &str, taken: impl Fn(&str) -> bool) -> Option<String> {
    let (account, region, identifier) = parts(claim);
    [
        identifier.to_string(),
        format!("{identifier}-{region}"),
        format!("{identifier}-{region}-{account}"),
    ]
    .into_iter()
    .find(|name| !taken(name))
}

/// A resource the policy covers, as a scan found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Discovered {
    /// What an object naming it claims (`account/region/identifier` for an instance,
    /// `owner/name` for a repository, lower case): the same text admission compares.
    pub claim: String,
    /// How people name it: the identifier or `owner/name` as AWS or GitHub spells it.
    pub name: String,
    /// Its tags (an instance) or its topics, with an empty value (a repository).
    pub labels: BTreeMap<String, String>,
    /// Why it is left out unless the coverage asks for it (archived, a fork), if it is.
    pub excluded_by_default: Option<&'static str>,
}

/// Include and exclude rules over names and labels. A name pattern is exact or a prefix
/// ending in `*`, case-insensitive; a label rule is `key` (present) or `key=value`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    /// When not empty, only resources matching one of these are covered.
    pub include: Vec<Rule>,
    /// Resources matching one of these are not covered (even if included).
    pub exclude: Vec<Rule>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rule {
    Name(String),
    Label { key: String, value: Option<String> },
}

impl Rule {
    fn matches(&self, resource: &Discovered) -> bool {
        match self {
            Self::Name(pattern) => {
                let (pattern, name) = (pattern.to_ascii_lowercase(), resource.name.to_ascii_lowercase());
                match pattern.strip_suffix('*') {
                    Some(prefix) => name.starts_with(prefix),
                    None => name == pattern,
                }
            }
            Self::Label { key, value } => resource
                .labels
                .get(key)
                .is_some_and(|v| value.as_ref().is_none_or(|want| v == want)),
        }
    }
}

/// How resources become exempt, always with a reason: listed by claim, or carrying the
/// exemption label (a tag, whose value is the reason; or a topic, which has no value, so
/// the coverage gives the reason for all of them).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Exemptions {
    /// Claim → reason.
    pub listed: BTreeMap<String, String>,
    /// The tag or topic that exempts a resource carrying it.
    pub label: Option<String>,
    /// The reason of a label without a value; without it, such a label exempts nothing.
    pub label_reason: Option<String>,
}

/// Where one discovered resource stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Standing {
    /// Outside what the coverage asks for (its selectors, or excluded by default).
    OutOfScope,
    /// An object in the cluster names it.
    Declared,
    /// Knowingly not backed up, for this reason.
    Exempt(String),
    /// Nobody declared it: the gap the policy's daily check exists to catch.
    Undeclared,
}

pub fn standing(
    resource: &Discovered,
    selector: &Selector,
    exemptions: &Exemptions,
    declared: &HashSet<String>,
) -> Standing {
    let included = selector.include.is_empty() || selector.include.iter().any(|r| r.matches(resource));
    let excluded = selector.exclude.iter().any(|r| r.matches(resource));
    if !included || excluded || resource.excluded_by_default.is_some() {
        return Standing::OutOfScope;
    }
    // Declared wins over exempt: an object that backs it up is what counts.
    if declared.contains(&resource.claim) {
        return Standing::Declared;
    }
    if let Some(reason) = exemptions.listed.get(&resource.claim) {
        return Standing::Exempt(reason.clone());
    }
    let labelled = exemptions.label.as_ref().and_then(|l| resource.labels.get(l));
    let reason = match labelled.map(|v| v.trim()) {
        Some("") => exemptions.label_reason.clone(),
        value => value.map(str::to_string),
    };
    reason.map_or(Standing::Undeclared, Standing::Exempt)
}

/// An undeclared resource as status lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gap {
    pub claim: String,
    pub name: String,
    pub first_seen: Timestamp,
}

/// An exempt resource as status lists it, with the reason it is not backed up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exempt {
    pub claim: String,
    pub name: String,
    pub reason: String,
}

/// The counts of one kind, the undeclared ones (oldest first) and the exempt ones (by
/// claim), each list at most the limit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub discovered: usize,
    pub declared: usize,
    pub exempt: usize,
    pub undeclared: usize,
    pub gaps: Vec<Gap>,
    pub exempted: Vec<Exempt>,
}

/// Counts `resources` and lists the undeclared ones, at most `limit`, oldest first.
/// `first_seen` (claim → when it was first found undeclared) is carried from one scan to
/// the next: an entry is added for a new gap and dropped once the gap closes, so the time
/// says how long it has been open.
pub fn tally(
    resources: &[Discovered],
    selector: &Selector,
    exemptions: &Exemptions,
    declared: &HashSet<String>,
    first_seen: &mut BTreeMap<String, Timestamp>,
    now: Timestamp,
    limit: usize,
) -> Tally {
    let mut tally = Tally::default();
    let mut open = BTreeMap::new();
    for resource in resources {
        match standing(resource, selector, exemptions, declared) {
            Standing::OutOfScope => continue,
            Standing::Declared => tally.declared += 1,
            Standing::Exempt(reason) => {
                tally.exempt += 1;
                tally.exempted.push(Exempt {
                    claim: resource.claim.clone(),
                    name: resource.name.clone(),
                    reason,
                });
            }
            Standing::Undeclared => {
                tally.undeclared += 1;
                let since = first_seen.get(&resource.claim).copied().unwrap_or(now);
                open.insert(resource.claim.clone(), since);
                tally.gaps.push(Gap {
                    claim: resource.claim.clone(),
                    name: resource.name.clone(),
                    first_seen: since,
                });
            }
        }
        tally.discovered += 1;
    }
    *first_seen = open;
    tally
        .gaps
        .sort_by(|a, b| (a.first_seen, &a.claim).cmp(&(b.first_seen, &b.claim)));
    tally.gaps.truncate(limit);
    tally.exempted.sort_by(|a, b| a.claim.cmp(&b.claim));
    tally.exempted.truncate(limit);
    tally
}

#[cfg(test)]
mod tests;
