//! The `x-kubernetes-validations` rules of the schema, evaluated with kube's CEL engine
//! (`kube::core::cel`, the kube-cel crate) on the defaulted object, node by node as the API
//! server does: a rule sees its own node as `self`, and is not evaluated on a null value.

use std::{
    cell::Cell,
    collections::HashMap,
    panic::{AssertUnwindSafe, catch_unwind},
    sync::Once,
};

use kube::core::cel::{CompiledSchema, Validator, compile_schema};
use serde_json::Value;

use super::{ErrorKind, FieldError, child_path, item_path};

const RULES: &str = "x-kubernetes-validations";

/// The compiled rules of one schema, keyed by the schema node's JSON pointer.
pub(super) struct Rules {
    root: Value,
    nodes: HashMap<String, CompiledSchema>,
    engine: Validator,
}

impl Rules {
    /// Compiles every rule; a rule that does not compile is a broken CRD.
    pub(super) fn compile(schema: &Value) -> Result<Self, String> {
        let mut nodes = HashMap::new();
        collect(schema, String::new(), &mut nodes)?;
        Ok(Self {
            root: schema.clone(),
            nodes,
            engine: Validator::new(),
        })
    }

    pub(super) fn evaluate(&self, object: &Value) -> Vec<FieldError> {
        let mut errors = Vec::new();
        self.walk(&self.root, object, "", "", &mut errors);
        errors
    }

    fn walk(&self, schema: &Value, value: &Value, pointer: &str, path: &str, errors: &mut Vec<FieldError>) {
        if value.is_null() {
            return;
        }
        if let Some(compiled) = self.nodes.get(pointer) {
            errors.extend(self.run(compiled, &nulls_unset(value, schema), path));
        }
        match value {
            Value::Object(fields) => {
                let props = schema.get("properties").and_then(Value::as_object);
                for (name, child_schema) in props.into_iter().flatten() {
                    if let Some(child) = fields.get(name) {
                        let child_pointer = format!("{pointer}/properties/{}", escape(name));
                        self.walk(
                            child_schema,
                            child,
                            &child_pointer,
                            &child_path(path, name),
                            errors,
                        );
                    }
                }
            }
            Value::Array(items) => {
                if let Some(item_schema) = schema.get("items") {
                    let item_pointer = format!("{pointer}/items");
                    for (i, item) in items.iter().enumerate() {
                        self.walk(item_schema, item, &item_pointer, &item_path(path, i), errors);
                    }
                }
            }
            _ => {}
        }
    }

    /// One node's rules. The manifest is untrusted input to a third-party engine: were the
    /// engine to panic on it, that is an evaluation error, which the API server also refuses.
    fn run(&self, compiled: &CompiledSchema, value: &Value, path: &str) -> Vec<FieldError> {
        let outcome = quietly(|| self.engine.validate_compiled(compiled, value, None));
        let failures = match outcome {
            Some(Ok(())) => return Vec::new(),
            Some(Err(failures)) => failures.into_vec(),
            None => {
                return vec![FieldError::new(
                    ErrorKind::Invalid,
                    path,
                    "Invalid value: the validation rules could not be evaluated on this value",
                )];
            }
        };
        failures
            .into_iter()
            .map(|failure| {
                let field = match failure.field_path.as_str() {
                    "" => path.to_string(),
                    relative if relative.starts_with('.') => format!("{path}{relative}"),
                    relative => child_path(path, relative),
                };
                FieldError::new(
                    ErrorKind::Invalid,
                    &field,
                    format!("Invalid value: {}", failure.message),
                )
            })
            .collect()
    }
}

/// The value as the API server's CEL sees it: in an object with declared properties, a null
/// field is the same as an absent one (`has()` is false), as apiserver's `unstructuredMap` does.
fn nulls_unset(value: &Value, schema: &Value) -> Value {
    match value {
        Value::Object(fields) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let kept = fields.iter().filter_map(|(name, child)| {
                let child_schema = props.and_then(|p| p.get(name));
                match child_schema {
                    Some(_) if child.is_null() => None,
                    Some(child_schema) => Some((name.clone(), nulls_unset(child, child_schema))),
                    None => Some((name.clone(), child.clone())),
                }
            });
            Value::Object(kept.collect())
        }
        Value::Array(items) => match schema.get("items") {
            Some(item_schema) => Value::Array(items.iter().map(|i| nulls_unset(i, item_schema)).collect()),
            None => value.clone(),
        },
        other => other.clone(),
    }
}

/// Collects the nodes that carry rules. Each is compiled on its own, with the rules of the
/// nodes below it removed, so that the walk above decides where rules run.
fn collect(schema: &Value, pointer: String, out: &mut HashMap<String, CompiledSchema>) -> Result<(), String> {
    if schema.get(RULES).is_some() {
        let mut shallow = schema.clone();
        strip_below(&mut shallow);
        let compiled = compile_schema(&shallow);
        if let Some(error) = compiled.compilation_errors().first() {
            return Err(format!("a rule at {pointer} does not compile: {error}"));
        }
        out.insert(pointer.clone(), compiled);
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, child) in props {
            collect(child, format!("{pointer}/properties/{}", escape(name)), out)?;
        }
    }
    if let Some(items) = schema.get("items") {
        collect(items, format!("{pointer}/items"), out)?;
    }
    Ok(())
}

fn strip_below(schema: &mut Value) {
    let children = schema
        .get_mut("properties")
        .and_then(Value::as_object_mut)
        .into_iter()
        .flat_map(|p| p.values_mut());
    for child in children {
        if let Some(node) = child.as_object_mut() {
            node.remove(RULES);
        }
        strip_below(child);
    }
    if let Some(items) = schema.get_mut("items") {
        if let Some(node) = items.as_object_mut() {
            node.remove(RULES);
        }
        strip_below(items);
    }
}

/// JSON pointer escaping of one reference token.
fn escape(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

thread_local! {
    static CONTAINED: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f`, turning a panic into `None` without printing it: the panic hook stays quiet only
/// on this thread and only while `f` runs; every other panic is reported as before.
pub(super) fn quietly<T>(f: impl FnOnce() -> T) -> Option<T> {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !CONTAINED.with(Cell::get) {
                previous(info);
            }
        }));
    });
    CONTAINED.with(|c| c.set(true));
    let outcome = catch_unwind(AssertUnwindSafe(f)).ok();
    CONTAINED.with(|c| c.set(false));
    outcome
}
