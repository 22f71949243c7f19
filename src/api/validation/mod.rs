//! The one validator for manifests of both kinds, shared with the CRD generation: it reads
//! the schema and the CEL rules from the CRDs that `backup-warden crd` prints
//! ([`super::crds`]), so a change to the Rust types changes what it enforces.
//!
//! It does what the API server does on a create with strict field validation (kubectl's
//! default): unknown fields are refused; `status` is dropped; nulls are pruned and schema
//! defaults applied; then `metadata`, the OpenAPI schema and the `x-kubernetes-validations`
//! rules are checked. Like the API server, the rules are skipped once a blocking error
//! (wrong type, missing field, unsupported value, too long, too many) was found.

mod metadata;
mod rules;
mod structure;

use std::{collections::HashMap, fmt};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;

use rules::Rules;
use structure::Schema;

/// What is wrong with one field of a manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// The field, as the API server names it (`spec.workflow.allowedRefs[0]`).
    pub field: String,
    pub message: String,
    kind: ErrorKind,
}

/// The API server's classes of errors; some of them stop the CEL rules from running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ErrorKind {
    UnknownField,
    Required,
    TypeInvalid,
    NotSupported,
    TooLong,
    TooMany,
    Invalid,
    Duplicate,
}

impl ErrorKind {
    /// The errors after which the API server does not evaluate the CEL rules.
    fn blocks_rules(self) -> bool {
        matches!(
            self,
            Self::Required | Self::TypeInvalid | Self::NotSupported | Self::TooLong | Self::TooMany
        )
    }
}

impl FieldError {
    fn new(kind: ErrorKind, field: &str, message: impl Into<String>) -> Self {
        Self {
            field: if field.is_empty() {
                "<root>".into()
            } else {
                field.into()
            },
            message: message.into(),
            kind,
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// One served version of one kind: its schema and its compiled rules.
struct Version {
    schema: Schema,
    rules: Rules,
}

/// Validates manifests of the kinds of the given CRDs.
pub struct ManifestValidator {
    /// Keyed by (apiVersion, kind).
    versions: HashMap<(String, String), Version>,
}

impl fmt::Debug for ManifestValidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManifestValidator")
            .field("kinds", &self.versions.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Why a validator could not be built from a CRD (a bug in the CRD generation).
#[derive(Debug, thiserror::Error)]
#[error("CRD {crd}: {message}")]
pub struct SchemaError {
    crd: String,
    message: String,
}

impl ManifestValidator {
    /// The validator for this binary's own CRDs.
    pub fn new() -> Result<Self, SchemaError> {
        Self::from_crds(&super::crds())
    }

    pub fn from_crds(crds: &[CustomResourceDefinition]) -> Result<Self, SchemaError> {
        let mut versions = HashMap::new();
        for crd in crds {
            let crd_name = crd.metadata.name.clone().unwrap_or_default();
            let error = |message: String| SchemaError {
                crd: crd_name.clone(),
                message,
            };
            for version in crd.spec.versions.iter().filter(|v| v.served) {
                let schema = version
                    .schema
                    .as_ref()
                    .and_then(|s| s.open_api_v3_schema.as_ref())
                    .ok_or_else(|| error(format!("version {} has no schema", version.name)))?;
                let schema = serde_json::to_value(schema).map_err(|e| error(e.to_string()))?;
                let unsupported = structure::unsupported_keywords(&schema);
                if !unsupported.is_empty() {
                    return Err(error(format!(
                        "the validator does not implement {}",
                        unsupported.join(", ")
                    )));
                }
                let api_version = format!("{}/{}", crd.spec.group, version.name);
                versions.insert(
                    (api_version, crd.spec.names.kind.clone()),
                    Version {
                        rules: Rules::compile(&schema).map_err(error)?,
                        schema: Schema::new(schema).map_err(error)?,
                    },
                );
            }
        }
        Ok(Self { versions })
    }

    /// Whether this validator knows the manifest's apiVersion and kind.
    pub fn knows(&self, manifest: &Value) -> bool {
        self.version_of(manifest).is_some()
    }

    fn version_of(&self, manifest: &Value) -> Option<&Version> {
        let field = |name| {
            manifest
                .get(name)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        self.versions.get(&(field("apiVersion"), field("kind")))
    }

    /// Checks one manifest as the API server checks a create. Returns the object as the API
    /// server would store it (status dropped, nulls pruned, defaults applied), or every error.
    pub fn validate(&self, manifest: &Value) -> Result<Value, Vec<FieldError>> {
        let Some(version) = self.version_of(manifest) else {
            return Err(vec![FieldError::new(
                ErrorKind::NotSupported,
                "kind",
                "not a BackedUpDatabase or BackedUpRepository of a served version",
            )]);
        };
        // Strict field validation refuses the request before anything else is looked at.
        let unknown = version.schema.unknown_fields(manifest);
        if !unknown.is_empty() {
            return Err(unknown);
        }
        let mut object = manifest.clone();
        if let Some(fields) = object.as_object_mut() {
            // A create cannot set the status subresource; the API server drops it.
            fields.remove("status");
        }
        version.schema.prune_nulls_and_default(&mut object);

        let mut errors = metadata::validate(object.get("metadata"));
        errors.extend(version.schema.validate(&object));
        if errors.iter().any(|e| e.kind.blocks_rules()) {
            errors.push(FieldError::new(
                ErrorKind::Invalid,
                "<root>",
                "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation",
            ));
        } else {
            errors.extend(version.rules.evaluate(&object));
        }
        if errors.is_empty() {
            Ok(object)
        } else {
            Err(errors)
        }
    }
}

/// `a.b` / `a[0]`: field paths as the API server writes them.
fn child_path(parent: &str, field: &str) -> String {
    if parent.is_empty() {
        field.to_string()
    } else {
        format!("{parent}.{field}")
    }
}

fn item_path(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

#[cfg(test)]
mod tests;
