//! The JSON Schema of the case file, generated from the model (`CaseFile` and the types it
//! holds derive or implement `schemars::JsonSchema`), for editors: the YAML language server
//! completes keys, shows their doc comments and marks what the loader would refuse. It is
//! checked in as `schema/case.schema.json` (`twlab schema --out schema/case.schema.json`).
//!
//! The schema says what a file may look like; it does not replace the loader. What needs the
//! topology or the kernel (namespace names, labels, sysctl keys, which keys go with which kind
//! of expectation) is checked when the case loads, with file:line:col.

use schemars::generate::SchemaSettings;
use serde_json::{Map, Value};

use super::model::CaseFile;

/// Draft 7: the draft every editor's YAML and JSON language servers read.
pub fn schema() -> Value {
    let generator = SchemaSettings::draft07().into_generator();
    let mut schema = generator.into_root_schema_for::<CaseFile>();
    schema.insert("title".into(), "twlab case file".into());
    let mut value = schema.to_value();
    tidy(&mut value);
    value
}

/// The schema as pretty JSON with a final newline, as `twlab schema` prints it and the
/// checked-in copy holds it.
pub fn schema_text() -> String {
    let mut text = serde_json::to_string_pretty(&schema()).expect("a JSON value serializes");
    text.push('\n');
    text
}

/// What the derived schema says, said the way editors show it best:
/// - a doc comment's lines joined into one line per paragraph (hovers wrap them anyway);
/// - no `"default": null` (every optional key's, saying nothing);
/// - an externally tagged enum whose variants all carry a value (`Step`: `{listen: {...}}`) as
///   one object with a property per variant and exactly one of them, instead of a `oneOf` of
///   one-key objects: editors then complete the variant's name and show its doc, and an error
///   inside a step points at its key (`/steps/0/listen/port`), not at the whole step.
fn tidy(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if let Some(Value::String(d)) = map.get_mut("description") {
                *d = unwrap_lines(d);
            }
            if map.get("default") == Some(&Value::Null) {
                map.remove("default");
            }
            if let Some(object) = map.get("oneOf").and_then(one_key_variants) {
                map.remove("oneOf");
                map.extend(object);
            }
            map.values_mut().for_each(tidy);
        }
        Value::Array(items) => items.iter_mut().for_each(tidy),
        _ => {}
    }
}

fn unwrap_lines(text: &str) -> String {
    text.split("\n\n")
        .map(|p| p.split('\n').map(str::trim).collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// The one object that `oneOf` says, if every branch is a one-key object (`{KEY: schema}`,
/// KEY required, nothing else allowed): a property per branch, exactly one present.
fn one_key_variants(branches: &Value) -> Option<Map<String, Value>> {
    let mut properties = Map::new();
    for branch in branches.as_array()? {
        let b = branch.as_object()?;
        let allowed = [
            "type",
            "properties",
            "required",
            "additionalProperties",
            "description",
        ];
        if b.keys().any(|k| !allowed.contains(&k.as_str()))
            || b.get("type")? != "object"
            || b.get("additionalProperties")? != &Value::Bool(false)
        {
            return None;
        }
        let props = b.get("properties")?.as_object()?;
        let (key, schema) = props.iter().next().filter(|_| props.len() == 1)?;
        if b.get("required")? != &Value::Array(vec![Value::String(key.clone())]) {
            return None;
        }
        let mut schema = schema.clone();
        if let Some(d) = b.get("description") {
            schema = match schema {
                // A `$ref` takes no sibling keywords in draft 7.
                Value::Object(s) if s.contains_key("$ref") => {
                    serde_json::json!({"allOf": [Value::Object(s)], "description": d})
                }
                Value::Object(mut s) => {
                    s.entry("description").or_insert_with(|| d.clone());
                    Value::Object(s)
                }
                other => other,
            };
        }
        properties.insert(key.clone(), schema);
    }
    let mut object = Map::new();
    object.insert("type".into(), "object".into());
    object.insert("properties".into(), Value::Object(properties));
    object.insert("additionalProperties".into(), false.into());
    object.insert("minProperties".into(), 1.into());
    object.insert("maxProperties".into(), 1.into());
    Some(object)
}
