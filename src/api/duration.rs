//! `PositiveDuration`: a duration in Go's notation (`90m`, `1h30m`, `26h`), bounded the same
//! way in the CRD (a pattern and a CEL rule that the API server evaluates with Go's
//! `time.ParseDuration`) and in Rust (a parser that follows Go's arithmetic, with every
//! step checked), so that what the API server admits the controller parses, and the reverse.

use std::{borrow::Cow, fmt, str::FromStr, time::Duration};

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// A positive duration in Go's notation (`90m`, `1h`, `26h`, `1h30m`), at most [`Self::MAX_TEXT`].
///
/// Stored as written so that a round trip through the API server keeps the user's text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PositiveDuration {
    text: String,
    value: Duration,
}

/// Go's `time.Duration` is an int64 of nanoseconds.
const GO_MAX_NANOS: u64 = 1 << 63;

impl PositiveDuration {
    /// The pattern the API server enforces: the units this type accepts, no sign.
    pub const PATTERN: &'static str = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$";
    /// The longest text the API server admits (it also bounds the CEL rule's cost).
    pub const MAX_LENGTH: usize = 32;
    /// The largest duration admitted: a year. Longer thresholds mean nothing for daily
    /// backups, and the bound keeps every admitted value far from any overflow.
    pub const MAX_TEXT: &'static str = "8760h";
    const MAX: Duration = Duration::from_secs(8760 * 3600);

    pub fn as_duration(&self) -> Duration {
        self.value
    }

    /// The CEL rule the API server evaluates: `duration()` is Go's `time.ParseDuration`,
    /// and a value it cannot parse (an overflow) fails the rule as well.
    pub fn cel_rule() -> String {
        format!(
            "duration(self) > duration('0s') && duration(self) <= duration('{}')",
            Self::MAX_TEXT
        )
    }

    fn cel_message() -> String {
        format!(
            "must be a duration greater than zero and at most {} (a year), such as 90m, 1h or 26h",
            Self::MAX_TEXT
        )
    }
}

impl FromStr for PositiveDuration {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let invalid = |why: &str| format!("invalid duration {text:?}: {why}; {}", Self::cel_message());
        if text.len() > Self::MAX_LENGTH {
            return Err(invalid("too long"));
        }
        let value = parse_go_duration(text).map_err(invalid)?;
        if value.is_zero() {
            return Err(invalid("zero"));
        }
        if value > Self::MAX {
            return Err(invalid("too long a duration"));
        }
        Ok(Self {
            text: text.to_string(),
            value,
        })
    }
}

/// Parses the subset of Go's duration syntax that [`PositiveDuration::PATTERN`] admits
/// (`<digits>[.<digits>]<unit>` repeated; units ms, s, m, h; no sign) with Go's
/// arithmetic: integers overflow at 2^63 ns, fractions stop accumulating once they would
/// overflow and are scaled in floating point, exactly as `time.ParseDuration` does, so
/// both sides agree even at the bounds. Never panics.
fn parse_go_duration(text: &str) -> Result<Duration, &'static str> {
    let mut rest = text.as_bytes();
    if rest.is_empty() {
        return Err("empty");
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let (whole, after) = leading_int(rest)?;
        if after.len() == rest.len() {
            return Err("expected a number");
        }
        rest = after;
        let (mut fraction, mut scale) = (0u64, 1f64);
        if let [b'.', after @ ..] = rest {
            let (f, s, after_fraction) = leading_fraction(after);
            if after_fraction.len() == after.len() {
                return Err("expected digits after the decimal point");
            }
            (fraction, scale, rest) = (f, s, after_fraction);
        }
        let unit_len = rest
            .iter()
            .position(|c| *c == b'.' || c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit: u64 = match &rest[..unit_len] {
            b"ms" => 1_000_000,
            b"s" => 1_000_000_000,
            b"m" => 60 * 1_000_000_000,
            b"h" => 3600 * 1_000_000_000,
            b"" => return Err("missing unit (ms, s, m or h)"),
            _ => return Err("unknown unit (ms, s, m or h)"),
        };
        rest = &rest[unit_len..];
        let mut value = whole
            .checked_mul(unit)
            .filter(|v| *v <= GO_MAX_NANOS)
            .ok_or("overflow")?;
        if fraction > 0 {
            // As Go: float64(f) * (float64(unit) / scale), truncated.
            let part = (fraction as f64 * (unit as f64 / scale)) as u64;
            value = value
                .checked_add(part)
                .filter(|v| *v <= GO_MAX_NANOS)
                .ok_or("overflow")?;
        }
        total = total
            .checked_add(value)
            .filter(|v| *v <= GO_MAX_NANOS)
            .ok_or("overflow")?;
    }
    if total > GO_MAX_NANOS - 1 {
        return Err("overflow");
    }
    Ok(Duration::from_nanos(total))
}

/// Leading decimal digits as an integer; an overflow past 2^63 is an error, as in Go.
fn leading_int(s: &[u8]) -> Result<(u64, &[u8]), &'static str> {
    let digits = s.iter().take_while(|c| c.is_ascii_digit()).count();
    let mut x: u64 = 0;
    for c in &s[..digits] {
        x = x
            .checked_mul(10)
            .and_then(|x| x.checked_add(u64::from(c - b'0')))
            .filter(|x| *x <= GO_MAX_NANOS)
            .ok_or("overflow")?;
    }
    Ok((x, &s[digits..]))
}

/// Leading fraction digits: the value, its scale (10^digits kept), and the rest. Digits
/// past what fits are skipped, as in Go.
fn leading_fraction(s: &[u8]) -> (u64, f64, &[u8]) {
    let digits = s.iter().take_while(|c| c.is_ascii_digit()).count();
    let (mut x, mut scale, mut overflow) = (0u64, 1f64, false);
    for c in &s[..digits] {
        if overflow {
            continue;
        }
        if x > (GO_MAX_NANOS - 1) / 10 {
            overflow = true;
            continue;
        }
        let y = x * 10 + u64::from(c - b'0');
        if y > GO_MAX_NANOS {
            overflow = true;
            continue;
        }
        x = y;
        scale *= 10.0;
    }
    (x, scale, &s[digits..])
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
            "maxLength": Self::MAX_LENGTH,
            "x-kubernetes-validations": [{
                "rule": Self::cel_rule(),
                "message": Self::cel_message(),
            }],
        })
    }
}

/// Builds a default `PositiveDuration` from a literal known to be valid (unit-tested below).
pub(crate) fn duration_default(text: &'static str) -> PositiveDuration {
    text.parse().unwrap_or(PositiveDuration {
        text: text.to_string(),
        value: Duration::from_secs(1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Duration, String> {
        text.parse::<PositiveDuration>().map(|d| d.as_duration())
    }

    #[test]
    fn accepts_go_durations_within_the_bounds() {
        let cases = [
            ("1h", 3_600_000),
            ("90m", 5_400_000),
            ("1h30m", 5_400_000),
            ("1.5h", 5_400_000),
            ("26h", 93_600_000),
            ("500ms", 500),
            ("0.5s", 500),
            ("1m0s", 60_000),
            ("8760h", 31_536_000_000),
            ("8759h60m", 31_536_000_000),
            ("0h1ms", 1),
        ];
        for (text, millis) in cases {
            assert_eq!(parse(text), Ok(Duration::from_millis(millis)), "{text}");
        }
    }

    #[test]
    fn refuses_zero_overflow_and_what_the_pattern_refuses() {
        for text in [
            "",
            "0",
            "0s",
            "0ms",
            "0h0m0s",
            "0.0000000001s",
            "8760h1ms",
            "8761h",
            "99999999999999999999h",
            "9223372036854775808ms",
            "2562048h",
            "-1h",
            "+1h",
            "1",
            "h",
            "1d",
            "1us",
            "1.h",
            ".5h",
            "1h 30m",
            "1H",
            "123456789012345678901234567890123h",
        ] {
            assert!(parse(text).is_err(), "{text:?} must be refused");
        }
    }

    #[test]
    fn a_message_says_what_is_allowed() {
        let err = parse("0s").unwrap_err();
        assert!(err.contains("\"0s\"") && err.contains("8760h"), "{err}");
    }

    #[test]
    fn defaults_parse() {
        for text in ["1h", "2h", "26h", "30s", "5m"] {
            assert_eq!(duration_default(text), text.parse().expect("valid"));
        }
    }

    /// Random texts over the duration alphabet (a reproducible generator): the parser never
    /// panics, and whatever it accepts matches the CRD's pattern and length and lies within
    /// the bounds.
    #[test]
    fn never_panics_and_accepts_only_what_the_crd_admits() {
        const ALPHABET: &[u8] = b"0123456789.msh9900";
        let pattern = regex_lite_match;
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut accepted = 0;
        for _ in 0..200_000 {
            let len = (next() % 36) as usize;
            let text: String = (0..len)
                .map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize] as char)
                .collect();
            if let Ok(d) = parse(&text) {
                accepted += 1;
                assert!(pattern(&text), "{text:?} accepted but the pattern refuses it");
                assert!(text.len() <= PositiveDuration::MAX_LENGTH, "{text:?}");
                assert!(!d.is_zero() && d <= PositiveDuration::MAX, "{text:?} = {d:?}");
            }
        }
        assert!(
            accepted > 100,
            "the generator reaches valid durations: {accepted}"
        );
    }

    /// `^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$` by hand (the crate has no regex engine).
    fn regex_lite_match(text: &str) -> bool {
        let mut s = text.as_bytes();
        if s.is_empty() {
            return false;
        }
        while !s.is_empty() {
            let digits = s.iter().take_while(|c| c.is_ascii_digit()).count();
            if digits == 0 {
                return false;
            }
            s = &s[digits..];
            if let [b'.', rest @ ..] = s {
                let digits = rest.iter().take_while(|c| c.is_ascii_digit()).count();
                if digits == 0 {
                    return false;
                }
                s = &rest[digits..];
            }
            s = match s {
                [b'm', b's', rest @ ..] => rest,
                [b's' | b'm' | b'h', rest @ ..] => rest,
                _ => return false,
            };
        }
        true
    }
}
