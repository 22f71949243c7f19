//! The KMS keys backup-warden creates for replicas: the tags that mark them, which one an
//! object adopts instead of creating another (after a crash, a network error or a lost race
//! between CreateKey and CreateAlias), and which ones the cleanup may schedule for deletion.
//! Pure: the facts come in, the decisions go out.

use std::{borrow::Borrow, collections::HashSet, time::Duration};

use k8s_openapi::jiff::Timestamp;

use super::database::{KeyFacts, ReplicaFacts};

/// Every key backup-warden creates carries this tag...
pub const MANAGED_BY: (&str, &str) = ("managed-by", "backup-warden");
/// ...and this one, whose value is the ARN of the source DB instance the replica is of.
pub const SOURCE_TAG: &str = "backup-warden/source-db-instance";

/// The tags of a replica key made for `source_arn` (the key's region is its destination).
pub fn ownership_tags(source_arn: &str) -> [(&'static str, String); 2] {
    [
        (MANAGED_BY.0, MANAGED_BY.1.to_string()),
        (SOURCE_TAG, source_arn.to_string()),
    ]
}

/// The key id in a key ARN (or the id itself).
pub fn key_id_of(arn_or_id: &str) -> &str {
    arn_or_id.rsplit_once("key/").map_or(arn_or_id, |(_, id)| id)
}

/// A key as the Resource Groups Tagging API lists it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaggedKey {
    pub arn: String,
    pub tags: Tags,
}

/// A resource's tags: a handful, so a list rather than a tree (a `BTreeMap`'s first node
/// alone is half a KiB, and the cleanup lists every key of a region each sweep).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tags(Vec<(String, String)>);

impl Tags {
    pub fn get(&self, key: &str) -> Option<&String> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Sets `key` to `value`, replacing the value it had.
    pub fn insert(&mut self, key: String, value: String) {
        self.remove(&key);
        self.0.push((key, value));
    }

    pub fn remove(&mut self, key: &str) {
        self.0.retain(|(k, _)| k != key);
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }

    /// Keeps the tags whose key `keep` accepts.
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.0.retain(|(k, _)| keep(k));
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

impl FromIterator<(String, String)> for Tags {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(pairs: I) -> Self {
        let mut tags = Self::default();
        for (k, v) in pairs {
            tags.insert(k, v);
        }
        tags
    }
}

impl TaggedKey {
    /// The source instance it was made for, if backup-warden made it.
    pub fn made_for(&self) -> Option<&str> {
        let managed = self.tags.get(MANAGED_BY.0).is_some_and(|v| v == MANAGED_BY.1);
        self.tags
            .get(SOURCE_TAG)
            .filter(|source| managed && !source.is_empty())
            .map(String::as_str)
    }
}

/// What is known of one key: its tags and what DescribeKey says.
#[derive(Clone, Debug, PartialEq)]
pub struct KnownKey {
    pub tagged: TaggedKey,
    pub facts: KeyFacts,
}

/// Key ids the automated backups in `backups` are encrypted with, and by whose source.
/// (The inventory shares its entries: `Arc<ReplicaFacts>`; tests pass them plain.)
fn users<'a, B: Borrow<ReplicaFacts>>(backups: &'a [B], key_id: &str) -> impl Iterator<Item = &'a str> {
    backups
        .iter()
        .map(Borrow::borrow)
        .filter(move |b| b.kms_key_arn.as_deref().is_some_and(|k| key_id_of(k) == key_id))
        .map(|b| b.source_arn.as_str())
}

fn is_customer_managed(facts: &KeyFacts) -> bool {
    facts.key_manager == "CUSTOMER"
}

fn is_enabled(facts: &KeyFacts) -> bool {
    facts.state == "Enabled"
}

/// The key, made earlier for `source_arn` and never aliased, that the per-database alias
/// should point to instead of a new key: enabled, customer managed, symmetric, no alias,
/// encrypting no other source's backups. The oldest wins, so that two controllers racing
/// pick the same one.
pub fn adoptable<'a>(
    source_arn: &str,
    candidates: &'a [KnownKey],
    aliased: &HashSet<String>,
    backups: &[impl Borrow<ReplicaFacts>],
) -> Option<&'a KeyFacts> {
    candidates
        .iter()
        .filter(|k| k.tagged.made_for() == Some(source_arn))
        .map(|k| &k.facts)
        .filter(|f| is_enabled(f) && is_customer_managed(f))
        .filter(|f| f.key_spec == "SYMMETRIC_DEFAULT" && f.key_usage == "ENCRYPT_DECRYPT")
        .filter(|f| !aliased.contains(&f.key_id))
        .filter(|f| users(backups, &f.key_id).all(|user| user == source_arn))
        .min_by(|a, b| (a.created, &a.key_id).cmp(&(b.created, &b.key_id)))
}

/// Why the cleanup leaves a key alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keep {
    /// It lacks backup-warden's tags: not ours to touch.
    NotOurs,
    /// AWS manages it.
    AwsManaged,
    /// Disabled, already pending deletion, ...: someone decided about it.
    NotEnabled,
    /// An alias points to it: it is some database's replica key.
    Aliased,
    /// An automated backup (replicating, retained, any status) is encrypted with it.
    ProtectsBackup,
    /// Too young: it may be between CreateKey and CreateAlias right now.
    YoungerThanGrace,
}

/// Whether the cleanup schedules the deletion of `key`: only a key backup-warden made,
/// customer managed, enabled, without an alias, encrypting no automated backup of the
/// region, and older than `grace`.
pub fn orphan(
    key: &KnownKey,
    aliased: &HashSet<String>,
    backups: &[impl Borrow<ReplicaFacts>],
    now: Timestamp,
    grace: Duration,
) -> Result<(), Keep> {
    let facts = &key.facts;
    if key.tagged.made_for().is_none() {
        return Err(Keep::NotOurs);
    }
    if !is_customer_managed(facts) {
        return Err(Keep::AwsManaged);
    }
    if !is_enabled(facts) {
        return Err(Keep::NotEnabled);
    }
    if aliased.contains(&facts.key_id) {
        return Err(Keep::Aliased);
    }
    if users(backups, &facts.key_id).next().is_some() {
        return Err(Keep::ProtectsBackup);
    }
    let old_enough = facts
        .created
        .is_some_and(|created| now.duration_since(created).as_secs_f64() >= grace.as_secs_f64());
    if !old_enough {
        return Err(Keep::YoungerThanGrace);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
