//! Field types both kinds share: the mode, durations, and the schema helpers that
//! put formats and CEL rules into the generated CRDs.

use std::{borrow::Cow, fmt, str::FromStr, time::Duration};

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

/// A positive duration in Go's notation (`90m`, `1h`, `26h`, `1h30m`).
///
/// Stored as written so that a round trip through the API server keeps the user's text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PositiveDuration {
    text: String,
    value: Duration,
}

impl PositiveDuration {
    /// The pattern the API server enforces; mirrors what `FromStr` accepts.
    pub const PATTERN: &'static str = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$";

    pub fn as_duration(&self) -> Duration {
        self.value
    }
}

impl FromStr for PositiveDuration {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let invalid =
            || format!("invalid duration {text:?}: expected a positive duration such as 90m, 1h or 26h");
        let parsed: kube::core::Duration = text.parse().map_err(|_| invalid())?;
        if parsed.is_negative() || text.starts_with('+') {
            return Err(invalid());
        }
        let value: Duration = parsed.into();
        if value.is_zero() {
            return Err(invalid());
        }
        Ok(Self {
            text: text.to_string(),
            value,
        })
    }
}

impl TryFrom<String> for PositiveDuration {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

impl From<PositiveDuration> for String {
    fn from(d: PositiveDuration) -> String {
        d.text
    }
}

impl fmt::Display for PositiveDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl JsonSchema for PositiveDuration {
    fn schema_name() -> Cow<'static, str> {
        "PositiveDuration".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": Self::PATTERN,
            "maxLength": 32,
        })
    }
}

/// Builds a default `PositiveDuration` from a literal known to be valid.
pub(crate) fn duration_default(text: &'static str) -> PositiveDuration {
    PositiveDuration {
        text: text.to_string(),
        value: parse_literal(text),
    }
}

fn parse_literal(text: &str) -> Duration {
    text.parse::<kube::core::Duration>()
        .map(Into::into)
        .unwrap_or_default()
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
