//! One evidence record: a JSON line in the evidence log. What a record says is final once
//! written; the reader drops the copies an at-least-once upload can leave (same `id`).

use serde::{Deserialize, Serialize};

/// The version of the record format; a reader skips records of a newer major version.
pub const FORMAT: u32 = 1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// The record format version ([`FORMAT`]).
    pub v: u32,
    /// Unique across replicas and restarts: time, replica and a counter.
    pub id: String,
    /// When it happened (RFC 3339, UTC).
    pub time: String,
    pub controller: Controller,
    /// The object it is about; None for a record about the controller itself (a gap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<ObjectRef>,
    #[serde(flatten)]
    pub body: Body,
}

/// The controller that wrote a record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Controller {
    pub version: String,
    /// The pod (or host) name.
    pub replica: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    pub kind: String,
    /// Empty for a cluster-scoped object (BackupCoverage).
    #[serde(default)]
    pub namespace: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// The generation of the spec the record describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
}

impl ObjectRef {
    /// kind/namespace/name: one resource across generations.
    pub fn key(&self) -> String {
        format!("{}/{}/{}", self.kind, self.namespace, self.name)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Body {
    /// A check went into drift.
    #[serde(rename_all = "camelCase")]
    Drift {
        check: String,
        reason: String,
        message: String,
    },
    /// A check's drift is gone.
    #[serde(rename_all = "camelCase")]
    Resolved { check: String, message: String },
    /// Something the controller did (or tried) to fix drift.
    #[serde(rename_all = "camelCase")]
    Action {
        /// Such as RetentionRaised.
        action: String,
        description: String,
        failed: bool,
        /// "Operation request-id" for each AWS (or GitHub) call the action made.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        request_ids: Vec<String>,
    },
    /// The object's whole state, once a day: every check and the observed facts.
    #[serde(rename_all = "camelCase")]
    Attestation {
        /// Enforce or Audit (Audit too when the controller runs audit-only).
        mode: String,
        suspended: bool,
        checks: Vec<CheckState>,
        /// The object as stored: spec and status (its metadata trimmed to what identifies it).
        state: serde_json::Value,
    },
    /// Records this replica could not keep: its buffer was full while the bucket could not
    /// be written.
    #[serde(rename_all = "camelCase")]
    Gap {
        dropped: u64,
        /// The first and last dropped record's time.
        from: String,
        to: String,
    },
}

/// One condition as attested.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckState {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    pub reason: String,
    #[serde(default)]
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_one_json_line_with_its_type_beside_the_common_fields() {
        let record = Record {
            v: FORMAT,
            id: "1-a-1".into(),
            time: "2026-12-01T10:00:00Z".into(),
            controller: Controller {
                version: "0.1.0".into(),
                replica: "a".into(),
            },
            object: Some(ObjectRef {
                kind: "BackedUpDatabase".into(),
                namespace: "team".into(),
                name: "orders".into(),
                uid: None,
                generation: Some(3),
            }),
            body: Body::Action {
                action: "RetentionRaised".into(),
                description: "raise retention to 7 days".into(),
                failed: false,
                request_ids: vec!["ModifyDBInstance 5e1c".into()],
            },
        };
        let line = serde_json::to_string(&record).expect("json");
        assert!(!line.contains('\n'));
        let value: serde_json::Value = serde_json::from_str(&line).expect("parse");
        assert_eq!(value["type"], "action");
        assert_eq!(value["requestIds"][0], "ModifyDBInstance 5e1c");
        assert_eq!(value["object"]["generation"], 3);
        assert_eq!(serde_json::from_str::<Record>(&line).expect("back"), record);
    }
}
