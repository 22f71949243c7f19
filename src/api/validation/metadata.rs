//! The API server's checks of `metadata` on a create (apimachinery's `ValidateObjectMeta`
//! with custom resources' name rule, `NameIsDNSSubdomain`): name or generateName, namespace,
//! label keys and values, annotation keys and size.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Value};

use super::{ErrorKind, FieldError, child_path};

const DNS1123_LABEL: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const QUALIFIED_NAME: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";

static SUBDOMAIN: LazyLock<Regex> =
    LazyLock::new(|| anchored(&format!("{DNS1123_LABEL}(\\.{DNS1123_LABEL})*")));
static LABEL: LazyLock<Regex> = LazyLock::new(|| anchored(DNS1123_LABEL));
static NAME_PART: LazyLock<Regex> = LazyLock::new(|| anchored(QUALIFIED_NAME));
static LABEL_VALUE: LazyLock<Regex> = LazyLock::new(|| anchored(&format!("({QUALIFIED_NAME})?")));

#[allow(clippy::expect_used)] // the patterns above are constants
fn anchored(pattern: &str) -> Regex {
    Regex::new(&format!("^(?:{pattern})$")).expect("constant pattern")
}

/// Annotations may hold 256 KiB in total, keys and values.
const ANNOTATIONS_MAX_BYTES: usize = 256 * 1024;

pub(super) fn validate(metadata: Option<&Value>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let empty = Map::new();
    let meta = match metadata {
        None => &empty,
        Some(Value::Object(meta)) => meta,
        Some(other) => {
            errors.push(type_error("metadata", other, "object"));
            return errors;
        }
    };
    let text = |field: &str, errors: &mut Vec<FieldError>| match meta.get(field) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            errors.push(type_error(&child_path("metadata", field), other, "string"));
            None
        }
    };
    let name = text("name", &mut errors).filter(|n| !n.is_empty());
    let generate_name = text("generateName", &mut errors).filter(|n| !n.is_empty());
    match (&name, &generate_name) {
        (Some(name), _) => check_subdomain("metadata.name", name, name, &mut errors),
        // The API server appends five characters; a trailing '-' is fine there.
        (None, Some(prefix)) => {
            let masked = prefix
                .strip_suffix('-')
                .map_or(prefix.clone(), |p| format!("{p}a"));
            check_subdomain("metadata.generateName", prefix, &masked, &mut errors);
        }
        // A name of the wrong type was reported above.
        (None, None) if meta.get("name").is_some_and(|n| !n.is_null() && !n.is_string()) => {}
        (None, None) => errors.push(FieldError::new(
            ErrorKind::Required,
            "metadata.name",
            "Required value: name or generateName is required",
        )),
    }
    if let Some(namespace) = text("namespace", &mut errors).filter(|n| !n.is_empty())
        && (namespace.len() > 63 || !LABEL.is_match(&namespace))
    {
        errors.push(invalid(
            "metadata.namespace",
            &namespace,
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', \
             and must start and end with an alphanumeric character (at most 63 characters)",
        ));
    }
    check_labels(meta.get("labels"), &mut errors);
    check_annotations(meta.get("annotations"), &mut errors);
    errors
}

fn check_subdomain(field: &str, shown: &str, name: &str, errors: &mut Vec<FieldError>) {
    if name.len() > 253 {
        errors.push(invalid(field, shown, "must be no more than 253 characters"));
    } else if !SUBDOMAIN.is_match(name) {
        errors.push(invalid(
            field,
            shown,
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' \
             or '.', and must start and end with an alphanumeric character (e.g. 'example.com')",
        ));
    }
}

fn string_map<'a>(
    value: Option<&'a Value>,
    field: &str,
    errors: &mut Vec<FieldError>,
) -> Vec<(&'a str, &'a str)> {
    let Some(Value::Object(map)) = value else {
        if let Some(other) = value.filter(|v| !v.is_null()) {
            errors.push(type_error(field, other, "object"));
        }
        return Vec::new();
    };
    let mut pairs = Vec::new();
    for (key, value) in map {
        match value {
            Value::String(text) => pairs.push((key.as_str(), text.as_str())),
            other => errors.push(type_error(&format!("{field}[{key}]"), other, "string")),
        }
    }
    pairs
}

fn check_labels(labels: Option<&Value>, errors: &mut Vec<FieldError>) {
    for (key, value) in string_map(labels, "metadata.labels", errors) {
        check_qualified_name("metadata.labels", key, errors);
        if value.len() > 63 || !LABEL_VALUE.is_match(value) {
            errors.push(invalid(
                "metadata.labels",
                value,
                "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' \
                 or '.', and must start and end with an alphanumeric character (at most 63 characters)",
            ));
        }
    }
}

fn check_annotations(annotations: Option<&Value>, errors: &mut Vec<FieldError>) {
    let pairs = string_map(annotations, "metadata.annotations", errors);
    for (key, _) in &pairs {
        check_qualified_name("metadata.annotations", &key.to_lowercase(), errors);
    }
    let size: usize = pairs.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > ANNOTATIONS_MAX_BYTES {
        errors.push(FieldError::new(
            ErrorKind::TooLong,
            "metadata.annotations",
            format!("Too long: may not be more than {ANNOTATIONS_MAX_BYTES} bytes"),
        ));
    }
}

/// `prefix/name` or `name`: the prefix a DNS subdomain, the name at most 63 characters.
fn check_qualified_name(field: &str, key: &str, errors: &mut Vec<FieldError>) {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    let prefix_ok = prefix.is_none_or(|p| !p.is_empty() && p.len() <= 253 && SUBDOMAIN.is_match(p));
    if !prefix_ok || name.is_empty() || name.len() > 63 || !NAME_PART.is_match(name) {
        errors.push(invalid(
            field,
            key,
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end \
             with an alphanumeric character (at most 63 characters), with an optional DNS subdomain \
             prefix and '/'",
        ));
    }
}

fn invalid(field: &str, value: &str, why: &str) -> FieldError {
    FieldError::new(
        ErrorKind::Invalid,
        field,
        format!("Invalid value: {value:?}: {why}"),
    )
}

fn type_error(field: &str, value: &Value, wanted: &str) -> FieldError {
    FieldError::new(
        ErrorKind::TypeInvalid,
        field,
        format!("Invalid value: {value}: must be of type {wanted}"),
    )
}
