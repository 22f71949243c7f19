//! The structural part of the API server's checks, driven by the CRD's OpenAPI v3 schema:
//! unknown fields, null pruning and defaulting (apiextensions-apiserver's `pruning` and
//! `defaulting` packages), then type, required, enum, pattern, lengths, ranges, items and
//! list types (kube-openapi's validator).

use std::collections::{HashMap, HashSet};

use regex::Regex;
use serde_json::{Map, Value};

use super::{ErrorKind, FieldError, child_path, item_path};

/// The schema keywords this module (and [`super::rules`]) enforce or may ignore; a CRD that
/// uses any other one is refused when the validator is built, so nothing is skipped silently.
const KEYWORDS: &[&str] = &[
    "type",
    "properties",
    "required",
    "items",
    "enum",
    "pattern",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minItems",
    "maxItems",
    "nullable",
    "default",
    "x-kubernetes-validations",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    // Documentation and formats the API server does not check on these types.
    "description",
    "title",
    "format",
];

/// The fields of `metadata` (ObjectMeta); any other one is unknown.
const OBJECT_META_FIELDS: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

/// Formats the API server does not check on these types (minimum and maximum bound the
/// numbers); a string format such as `date-time` would need checking and is refused.
const FORMATS: &[(&str, &str)] = &[
    ("integer", "int32"),
    ("integer", "int64"),
    ("number", "double"),
    ("number", "float"),
];

/// Every keyword (with its schema path) that the validator does not implement.
pub(super) fn unsupported_keywords(schema: &Value) -> Vec<String> {
    let mut found = Vec::new();
    collect_unsupported(schema, "", &mut found);
    found
}

fn collect_unsupported(schema: &Value, at: &str, found: &mut Vec<String>) {
    let Some(node) = schema.as_object() else {
        return;
    };
    // A create drops the status: only its field names matter (for unknown fields).
    if at == "status" {
        return;
    }
    for (keyword, value) in node {
        if !KEYWORDS.contains(&keyword.as_str()) {
            found.push(format!(
                "{keyword} (at {})",
                if at.is_empty() { "<root>" } else { at }
            ));
        }
        if keyword == "format" {
            let pair = (
                type_of(schema).unwrap_or_default(),
                value.as_str().unwrap_or_default(),
            );
            if !FORMATS.contains(&pair) {
                found.push(format!("format {} (at {at})", pair.1));
            }
        }
    }
    if let Some(properties) = node.get("properties").and_then(Value::as_object) {
        for (name, child) in properties {
            collect_unsupported(child, &child_path(at, name), found);
        }
    }
    if let Some(items) = node.get("items") {
        collect_unsupported(items, &format!("{at}[*]"), found);
    }
}

fn type_of(schema: &Value) -> Option<&str> {
    schema.get("type").and_then(Value::as_str)
}

fn properties(schema: &Value) -> Option<&Map<String, Value>> {
    schema.get("properties").and_then(Value::as_object)
}

fn nullable(schema: &Value) -> bool {
    schema.get("nullable").and_then(Value::as_bool) == Some(true)
}

/// An OpenAPI schema with its patterns compiled.
pub(super) struct Schema {
    root: Value,
    patterns: HashMap<String, Regex>,
}

impl Schema {
    pub(super) fn new(root: Value) -> Result<Self, String> {
        let mut patterns = HashMap::new();
        compile_patterns(&root, &mut patterns)?;
        Ok(Self { root, patterns })
    }

    /// Fields the schema does not declare, as strict field validation reports them.
    pub(super) fn unknown_fields(&self, manifest: &Value) -> Vec<FieldError> {
        let mut found = Vec::new();
        let Some(fields) = manifest.as_object() else {
            return vec![FieldError::new(
                ErrorKind::TypeInvalid,
                "",
                "the manifest is not an object",
            )];
        };
        for (name, value) in fields {
            match name.as_str() {
                "apiVersion" | "kind" => {}
                "metadata" => {
                    for field in value.as_object().into_iter().flat_map(Map::keys) {
                        if !OBJECT_META_FIELDS.contains(&field.as_str()) {
                            found.push(unknown(&child_path("metadata", field)));
                        }
                    }
                }
                _ => match properties(&self.root).and_then(|p| p.get(name)) {
                    Some(schema) => unknown_below(schema, value, name, &mut found),
                    None => found.push(unknown(name)),
                },
            }
        }
        found
    }

    /// Drops nulls the schema does not allow (where it has no default) and fills in defaults,
    /// as the API server does before validating.
    pub(super) fn prune_nulls_and_default(&self, object: &mut Value) {
        default(object, &self.root);
    }

    pub(super) fn validate(&self, object: &Value) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let Some(fields) = object.as_object() else {
            return errors;
        };
        let Some(props) = properties(&self.root) else {
            return errors;
        };
        for required in required_of(&self.root) {
            if !fields.contains_key(required) {
                errors.push(FieldError::new(ErrorKind::Required, required, "Required value"));
            }
        }
        for (name, schema) in props {
            if let Some(value) = fields.get(name) {
                self.check(schema, value, name, &mut errors);
            }
        }
        errors
    }

    fn check(&self, schema: &Value, value: &Value, path: &str, errors: &mut Vec<FieldError>) {
        if value.is_null() {
            if !nullable(schema) {
                let wanted = type_of(schema).unwrap_or("a value");
                errors.push(FieldError::new(
                    ErrorKind::TypeInvalid,
                    path,
                    format!("Invalid value: null: {path} in body must be of type {wanted}: \"null\""),
                ));
            }
            return;
        }
        if let Some(wanted) = type_of(schema)
            && !has_type(value, wanted)
        {
            errors.push(FieldError::new(
                ErrorKind::TypeInvalid,
                path,
                format!(
                    "Invalid value: {}: {path} in body must be of type {wanted}: \"{}\"",
                    short(value),
                    json_type(value)
                ),
            ));
            return;
        }
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
            && !allowed.contains(value)
        {
            let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
            errors.push(FieldError::new(
                ErrorKind::NotSupported,
                path,
                format!(
                    "Unsupported value: {value}: supported values: {}",
                    list.join(", ")
                ),
            ));
        }
        match value {
            Value::String(text) => self.check_string(schema, text, path, errors),
            Value::Number(_) => check_number(schema, value, path, errors),
            Value::Array(items) => self.check_array(schema, items, path, errors),
            Value::Object(fields) => self.check_object(schema, fields, path, errors),
            Value::Bool(_) | Value::Null => {}
        }
    }

    fn check_string(&self, schema: &Value, text: &str, path: &str, errors: &mut Vec<FieldError>) {
        let length = text.chars().count() as u64;
        let limit = |name| schema.get(name).and_then(Value::as_u64);
        if let Some(max) = limit("maxLength")
            && length > max
        {
            errors.push(FieldError::new(
                ErrorKind::TooLong,
                path,
                format!("Too long: may not be more than {max} bytes"),
            ));
        }
        if let Some(min) = limit("minLength")
            && length < min
        {
            errors.push(FieldError::new(
                ErrorKind::Invalid,
                path,
                format!("Invalid value: {text:?}: {path} in body should be at least {min} chars long"),
            ));
        }
        if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
            && self.patterns.get(pattern).is_some_and(|re| !re.is_match(text))
        {
            errors.push(FieldError::new(
                ErrorKind::Invalid,
                path,
                format!("Invalid value: {text:?}: {path} in body should match '{pattern}'"),
            ));
        }
    }

    fn check_array(&self, schema: &Value, items: &[Value], path: &str, errors: &mut Vec<FieldError>) {
        let limit = |name| schema.get(name).and_then(Value::as_u64);
        let count = items.len() as u64;
        if let Some(max) = limit("maxItems")
            && count > max
        {
            errors.push(FieldError::new(
                ErrorKind::TooMany,
                path,
                format!("Too many: {count}: must have at most {max} items"),
            ));
        }
        if let Some(min) = limit("minItems")
            && count < min
        {
            errors.push(FieldError::new(
                ErrorKind::Invalid,
                path,
                format!("Invalid value: {count}: {path} in body should have at least {min} items"),
            ));
        }
        if let Some(item_schema) = schema.get("items") {
            for (i, item) in items.iter().enumerate() {
                self.check(item_schema, item, &item_path(path, i), errors);
            }
        }
        check_list_type(schema, items, path, errors);
    }

    fn check_object(
        &self,
        schema: &Value,
        fields: &Map<String, Value>,
        path: &str,
        errors: &mut Vec<FieldError>,
    ) {
        for required in required_of(schema) {
            if !fields.contains_key(required) {
                errors.push(FieldError::new(
                    ErrorKind::Required,
                    &child_path(path, required),
                    "Required value",
                ));
            }
        }
        if let Some(props) = properties(schema) {
            for (name, child_schema) in props {
                if let Some(child) = fields.get(name) {
                    self.check(child_schema, child, &child_path(path, name), errors);
                }
            }
        }
    }
}

fn unknown(path: &str) -> FieldError {
    FieldError::new(
        ErrorKind::UnknownField,
        path,
        format!("strict decoding error: unknown field \"{path}\""),
    )
}

fn unknown_below(schema: &Value, value: &Value, path: &str, found: &mut Vec<FieldError>) {
    match value {
        Value::Object(fields) => {
            // A schema without properties (a type error is reported later) prunes nothing.
            let Some(props) = properties(schema) else {
                return;
            };
            for (name, child) in fields {
                let child_at = child_path(path, name);
                match props.get(name) {
                    Some(child_schema) => unknown_below(child_schema, child, &child_at, found),
                    None => found.push(unknown(&child_at)),
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    unknown_below(item_schema, item, &item_path(path, i), found);
                }
            }
        }
        _ => {}
    }
}

/// apiextensions-apiserver's `PruneNonNullableNullsWithoutDefaults` followed by `Default`:
/// a missing field, or a null one the schema does not allow, gets the field's default, and
/// the default itself is defaulted further down.
fn default(value: &mut Value, schema: &Value) {
    match value {
        Value::Object(fields) => {
            let Some(props) = properties(schema) else {
                return;
            };
            for (name, child_schema) in props {
                let present = fields.get(name);
                let null_not_allowed = present.is_some_and(Value::is_null) && !nullable(child_schema);
                if present.is_some() && !null_not_allowed {
                    continue;
                }
                match child_schema.get("default") {
                    Some(default) => {
                        fields.insert(name.clone(), default.clone());
                    }
                    None if null_not_allowed => {
                        fields.remove(name);
                    }
                    None => {}
                }
            }
            for (name, child) in fields.iter_mut() {
                if let Some(child_schema) = props.get(name) {
                    default(child, child_schema);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for item in items {
                    default(item, item_schema);
                }
            }
        }
        _ => {}
    }
}

fn required_of(schema: &Value) -> impl Iterator<Item = &str> {
    schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

fn has_type(value: &Value, wanted: &str) -> bool {
    match wanted {
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        _ => false,
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A value as error messages show it: scalars as written, containers by their type.
fn short(value: &Value) -> String {
    match value {
        Value::Array(_) | Value::Object(_) => format!("\"{}\"", json_type(value)),
        other => other.to_string(),
    }
}

fn check_number(schema: &Value, value: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let Some(number) = value.as_f64() else {
        return;
    };
    let bound = |name| schema.get(name).and_then(Value::as_f64);
    let exclusive = |name| schema.get(name).and_then(Value::as_bool) == Some(true);
    if let Some(min) = bound("minimum") {
        let (ok, words) = if exclusive("exclusiveMinimum") {
            (number > min, "greater than")
        } else {
            (number >= min, "greater than or equal to")
        };
        if !ok {
            errors.push(FieldError::new(
                ErrorKind::Invalid,
                path,
                format!("Invalid value: {value}: {path} in body should be {words} {min}"),
            ));
        }
    }
    if let Some(max) = bound("maximum") {
        let (ok, words) = if exclusive("exclusiveMaximum") {
            (number < max, "less than")
        } else {
            (number <= max, "less than or equal to")
        };
        if !ok {
            errors.push(FieldError::new(
                ErrorKind::Invalid,
                path,
                format!("Invalid value: {value}: {path} in body should be {words} {max}"),
            ));
        }
    }
}

/// `x-kubernetes-list-type: set` items are unique; `map` items are unique by their keys.
fn check_list_type(schema: &Value, items: &[Value], path: &str, errors: &mut Vec<FieldError>) {
    let keys: Vec<&str> = schema
        .get("x-kubernetes-list-map-keys")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let identity = |item: &Value| -> String {
        match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
            Some("map") => keys
                .iter()
                .map(|k| item.get(*k).unwrap_or(&Value::Null).to_string())
                .collect(),
            Some("set") => item.to_string(),
            _ => String::new(),
        }
    };
    if !matches!(
        schema.get("x-kubernetes-list-type").and_then(Value::as_str),
        Some("map" | "set")
    ) {
        return;
    }
    let mut seen = HashSet::new();
    for (i, item) in items.iter().enumerate() {
        if !seen.insert(identity(item)) {
            errors.push(FieldError::new(
                ErrorKind::Duplicate,
                &item_path(path, i),
                format!("Duplicate value: {item}"),
            ));
        }
    }
}

fn compile_patterns(schema: &Value, out: &mut HashMap<String, Regex>) -> Result<(), String> {
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
        && !out.contains_key(pattern)
    {
        let regex = Regex::new(pattern).map_err(|e| format!("pattern {pattern:?}: {e}"))?;
        out.insert(pattern.to_string(), regex);
    }
    for child in properties(schema).into_iter().flat_map(Map::values) {
        compile_patterns(child, out)?;
    }
    if let Some(items) = schema.get("items") {
        compile_patterns(items, out)?;
    }
    Ok(())
}
