//! Field types both kinds share: the mode, and the schema helpers that put formats into
//! the generated CRDs.

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// Whether backup-warden may change things or only reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Mode {
    /// Fix drift: change AWS or GitHub so the policy holds (never destructively).
    #[default]
    Enforce,
    /// Read only: report the drift that Enforce would fix, change nothing.
    Audit,
}

/// AWS region names such as `us-east-1`, `eu-central-2`, `us-gov-west-1`.
pub const REGION_PATTERN: &str = r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]{1,2}$";

/// Schema of a string field restricted to an AWS region name.
pub(crate) fn region_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "pattern": REGION_PATTERN,
        "maxLength": 32,
    })
}
