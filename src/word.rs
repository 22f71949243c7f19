//! Short strings from a known vocabulary, held once per object or per AWS resource: the
//! type, status and reason of each condition, the status, engine and region of each
//! instance, the state of each key. Kept as the program's own text instead of one
//! allocation each, which at 10,000 objects is megabytes.

use std::{borrow::Cow, collections::HashSet, fmt, sync::LazyLock};

use serde::{Deserialize, Serialize};

use crate::api::{ConditionStatus, ConditionType, Reason};

/// A string that is nearly always one of a known few: those are kept as a pointer to the
/// program's own text, anything else (written by another client, a value AWS added) as its
/// own copy. 16 bytes either way: a `Cow<str>` would be 24, and a condition holds three.
#[derive(Clone)]
pub struct Word(Repr);

#[derive(Clone)]
enum Repr {
    /// One of `WORDS`, by address (a thin pointer, so the enum stays two words).
    Known(&'static &'static str),
    Other(Box<str>),
}

impl Default for Word {
    fn default() -> Self {
        Self(Repr::Known(&""))
    }
}

/// What AWS says of the instances, replicas and keys held for every object: a DB
/// instance's status and engine, a replication's status, a key's state, spec, usage and
/// manager, and the regions.
const AWS_WORDS: &[&str] = &[
    // DBInstanceStatus
    "available",
    "backing-up",
    "configuring-enhanced-monitoring",
    "configuring-log-exports",
    "creating",
    "deleting",
    "failed",
    "maintenance",
    "modifying",
    "rebooting",
    "renaming",
    "resetting-master-credentials",
    "starting",
    "stopped",
    "stopping",
    "storage-optimization",
    "upgrading",
    // Engine
    "postgres",
    "mysql",
    "mariadb",
    "oracle-ee",
    "oracle-se2",
    "sqlserver-ee",
    "sqlserver-se",
    "sqlserver-ex",
    "sqlserver-web",
    "aurora-mysql",
    "aurora-postgresql",
    "db2-se",
    "db2-ae",
    // Automated backups' status
    "replicating",
    "pending",
    "retained",
    "active",
    // KeyState, KeySpec, KeyUsage, KeyManager
    "Enabled",
    "Disabled",
    "PendingDeletion",
    "PendingImport",
    "PendingReplicaDeletion",
    "Unavailable",
    "Creating",
    "Updating",
    "SYMMETRIC_DEFAULT",
    "ENCRYPT_DECRYPT",
    "CUSTOMER",
    "AWS",
    // Regions
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "af-south-1",
    "ap-east-1",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ca-central-1",
    "ca-west-1",
    "eu-central-1",
    "eu-central-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-south-1",
    "eu-south-2",
    "eu-north-1",
    "il-central-1",
    "me-south-1",
    "me-central-1",
    "sa-east-1",
];

/// Every known word: what a condition of ours can hold, and `AWS_WORDS`.
static WORDS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    let types = [
        ConditionType::Ready,
        ConditionType::Reconciling,
        ConditionType::Stalled,
    ]
    .into_iter()
    .chain(ConditionType::all_checks())
    .map(ConditionType::as_str);
    let statuses = [
        ConditionStatus::True,
        ConditionStatus::False,
        ConditionStatus::Unknown,
    ]
    .map(ConditionStatus::as_str);
    let reasons = Reason::ALL.iter().map(|r| r.as_str());
    types
        .chain(statuses)
        .chain(reasons)
        .chain(AWS_WORDS.iter().copied())
        .collect()
});

impl Word {
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Known(known) => known,
            Repr::Other(other) => other,
        }
    }
}

impl From<&str> for Word {
    fn from(text: &str) -> Self {
        match WORDS.get(text) {
            Some(known) => Self(Repr::Known(known)),
            None => Self(Repr::Other(text.into())),
        }
    }
}

impl From<ConditionType> for Word {
    fn from(t: ConditionType) -> Self {
        Self::from(t.as_str())
    }
}

impl From<ConditionStatus> for Word {
    fn from(s: ConditionStatus) -> Self {
        Self::from(s.as_str())
    }
}

impl From<Reason> for Word {
    fn from(r: Reason) -> Self {
        Self::from(r.as_str())
    }
}

impl std::ops::Deref for Word {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for Word {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Word {}

impl std::hash::Hash for Word {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl PartialEq<str> for Word {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Word {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Display for Word {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Word {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// A string in a schema, as `String` is.
impl schemars::JsonSchema for Word {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        String::schema_name()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        String::json_schema(generator)
    }
}

impl Serialize for Word {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Word {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Word;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Word, E> {
                Ok(Word::from(text))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_words_are_not_copied_and_others_are_kept_as_written() {
        let read = |text: &str| -> Word { serde_json::from_value(serde_json::json!(text)).unwrap() };
        for known in [
            "Ready",
            "ReplicaKeyCompliant",
            "WorkflowPresent",
            "True",
            "AuditOnly",
            "available",
            "Enabled",
            "us-west-2",
        ] {
            let word = read(known);
            assert!(matches!(word.0, Repr::Known(_)), "{known} was copied");
            assert_eq!(word, known);
            assert!(
                matches!(Word::from(known).0, Repr::Known(_)),
                "{known} was copied"
            );
        }
        let other = read("SomeoneElsesReason");
        assert!(matches!(other.0, Repr::Other(_)));
        assert_eq!(other.as_str(), "SomeoneElsesReason");
        // Two words; a `Cow<str>` would be three.
        assert_eq!(std::mem::size_of::<Word>(), 16);
    }
}
