//! Owns how a result is printed: `--query` (JMESPath) first, then `--output` as az formats it —
//! `json` (2-space indent, keys sorted), `jsonc` (the same, coloured), `table` (scalar fields of each
//! object, `id`/`type`/`etag` left out, headers with a capital first letter, tabulate's "simple"
//! layout without its trailing spaces), `tsv` (values only, sorted by key, nested objects empty, lists as their length), `yaml`,
//! and `none`.

use std::fmt::Write as _;

use serde_json::Value;

use crate::error::CliError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Json,
    Jsonc,
    Table,
    Tsv,
    Yaml,
    None,
}

/// A compiled `--query`.
pub struct Query(jmespath::Expression<'static>);

impl Query {
    /// Compiles the expression; a bad one is a usage error, as in az.
    pub fn parse(text: &str) -> Result<Self, CliError> {
        jmespath::compile(text)
            .map(Query)
            .map_err(|e| CliError::Usage(format!("argument --query: invalid JMESPath query: {e}")))
    }

    pub fn apply(&self, value: &Value) -> Result<Value, CliError> {
        let found = self
            .0
            .search(value)
            .map_err(|e| CliError::Usage(format!("argument --query: {e}")))?;
        serde_json::to_value(&*found)
            .map_err(|e| CliError::Other(format!("--query gave a value that is not JSON: {e}")))
    }
}

/// The text to print for `value`, ending in a newline (empty for `none`).
pub fn render(value: &Value, format: Format) -> String {
    let value = sorted(value);
    match format {
        Format::Json => pretty(&value, false),
        Format::Jsonc => pretty(&value, true),
        Format::Table => table(&value),
        Format::Tsv => tsv(&value),
        Format::Yaml => serde_norway::to_string(&value).expect("a JSON value is valid YAML"),
        Format::None => String::new(),
    }
}

/// A copy with every object's keys in sorted order (az sorts keys), whatever order the map keeps.
fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), sorted(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

const KEY_COLOUR: &str = "\x1b[94m";
const STRING_COLOUR: &str = "\x1b[32m";
const LITERAL_COLOUR: &str = "\x1b[36m";
const RESET: &str = "\x1b[0m";

fn pretty(value: &Value, colour: bool) -> String {
    let mut out = String::new();
    write_json(&mut out, value, 0, colour);
    out.push('\n');
    out
}

fn paint(out: &mut String, text: &str, colour: Option<&str>) {
    match colour {
        Some(c) => {
            let _ = write!(out, "{c}{text}{RESET}");
        }
        None => out.push_str(text),
    }
}

fn write_json(out: &mut String, value: &Value, indent: usize, colour: bool) {
    let pad = |n: usize| "  ".repeat(n);
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push_str("{\n");
            for (i, (key, item)) in map.iter().enumerate() {
                out.push_str(&pad(indent + 1));
                let key = Value::String(key.clone()).to_string();
                paint(out, &key, colour.then_some(KEY_COLOUR));
                out.push_str(": ");
                write_json(out, item, indent + 1, colour);
                out.push_str(if i + 1 < map.len() { ",\n" } else { "\n" });
            }
            out.push_str(&pad(indent));
            out.push('}');
        }
        Value::Array(items) if !items.is_empty() => {
            out.push_str("[\n");
            for (i, item) in items.iter().enumerate() {
                out.push_str(&pad(indent + 1));
                write_json(out, item, indent + 1, colour);
                out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
            }
            out.push_str(&pad(indent));
            out.push(']');
        }
        Value::String(_) => paint(out, &value.to_string(), colour.then_some(STRING_COLOUR)),
        other => paint(out, &other.to_string(), colour.then_some(LITERAL_COLOUR)),
    }
}

/// A scalar as Python's `str()` shows it, which is what az's table and tsv print.
fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => "None".into(),
        other => other.to_string(),
    }
}

/// Fields az's table never shows: they are long and the same for every row.
const TABLE_SKIPPED: &[&str] = &["id", "type", "etag"];

fn table_row(item: &Value) -> Vec<(String, String)> {
    match item {
        Value::Object(map) => map
            .iter()
            .filter(|(k, v)| {
                !TABLE_SKIPPED.contains(&k.as_str())
                    && !v.is_null()
                    && !v.is_object()
                    && !v.is_array()
            })
            .map(|(k, v)| (capitalize(k), scalar_text(v)))
            .collect(),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("Column{}", i + 1), scalar_text(v)))
            .collect(),
        other => vec![("Result".into(), scalar_text(other))],
    }
}

fn capitalize(key: &str) -> String {
    let mut chars = key.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn table(value: &Value) -> String {
    let rows: Vec<Vec<(String, String)>> = match value {
        Value::Array(items) => items.iter().map(table_row).collect(),
        other => vec![table_row(other)],
    };
    // Columns in order of first appearance, as tabulate takes them from a list of dicts.
    let mut columns: Vec<String> = Vec::new();
    for row in &rows {
        for (name, _) in row {
            if !columns.contains(name) {
                columns.push(name.clone());
            }
        }
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            columns
                .iter()
                .map(|c| {
                    row.iter()
                        .find(|(name, _)| name == c)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default()
                })
                .collect()
        })
        .collect();
    layout(&columns, &cells)
}

/// A table with these columns in this order, laid out as az's `table` output (for a command's own
/// table view of a result, as az's table transformers give).
pub fn render_table(columns: &[&str], cells: &[Vec<String>]) -> String {
    let columns: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
    layout(&columns, cells)
}

fn layout(columns: &[String], cells: &[Vec<String>]) -> String {
    if columns.is_empty() {
        return String::new();
    }
    // tabulate makes each column at least two wider than its header.
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            cells
                .iter()
                .map(|row| row[i].chars().count())
                .chain([c.chars().count() + 2])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |fields: Vec<String>| -> String {
        let padded: Vec<String> = fields
            .iter()
            .zip(&widths)
            .map(|(f, w)| format!("{f:<w$}"))
            .collect();
        padded.join("  ").trim_end().to_string() + "\n"
    };
    let mut out = line(columns.to_vec());
    out.push_str(&line(widths.iter().map(|w| "-".repeat(*w)).collect()));
    for row in cells {
        out.push_str(&line(row.clone()));
    }
    out
}

fn tsv_field(value: &Value) -> String {
    match value {
        Value::Array(items) => items.len().to_string(),
        Value::Object(_) | Value::Null => String::new(),
        other => scalar_text(other),
    }
}

fn tsv_row(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let fields: Vec<String> = map.values().map(tsv_field).collect();
            fields.join("\t")
        }
        Value::Array(items) => {
            let fields: Vec<String> = items.iter().map(tsv_field).collect();
            fields.join("\t")
        }
        Value::Bool(b) => b.to_string(),
        other => tsv_field(other),
    }
}

fn tsv(value: &Value) -> String {
    let rows: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    rows.into_iter().map(|row| tsv_row(row) + "\n").collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_sorts_keys_and_indents_two_spaces() {
        let value = json!({"b": 1, "a": {"d": [], "c": [true, null]}});
        assert_eq!(
            render(&value, Format::Json),
            "{\n  \"a\": {\n    \"c\": [\n      true,\n      null\n    ],\n    \"d\": []\n  },\n  \"b\": 1\n}\n"
        );
    }

    #[test]
    fn jsonc_is_json_with_colours() {
        let value = json!({"name": "x"});
        let text = render(&value, Format::Jsonc);
        assert!(text.contains(KEY_COLOUR) && text.contains(STRING_COLOUR));
        let plain = text
            .replace(KEY_COLOUR, "")
            .replace(STRING_COLOUR, "")
            .replace(RESET, "");
        assert_eq!(plain, render(&value, Format::Json));
    }

    #[test]
    fn table_shows_scalars_skips_ids_and_capitalizes_headers() {
        let value = json!([
            {"id": "/x", "name": "rg1", "location": "westus", "tags": {}, "properties": {"a": 1}},
            {"id": "/y", "name": "group-two", "location": "eastus", "managedBy": null}
        ]);
        assert_eq!(
            render(&value, Format::Table),
            "Location    Name\n----------  ---------\nwestus      rg1\neastus      group-two\n"
        );
    }

    #[test]
    fn a_commands_own_table_keeps_its_column_order() {
        let cells = vec![
            vec!["Key1".to_string(), "3".to_string()],
            vec!["Key2".to_string(), "0".to_string()],
        ];
        assert_eq!(
            render_table(&["KeyName", "Requests24h"], &cells),
            "KeyName    Requests24h\n---------  -------------\nKey1       3\nKey2       0\n"
        );
    }

    #[test]
    fn table_of_a_scalar_is_a_result_column() {
        assert_eq!(
            render(&json!(true), Format::Table),
            "Result\n--------\nTrue\n"
        );
    }

    #[test]
    fn tsv_prints_values_sorted_by_key_with_nested_objects_empty() {
        let value = json!([{"name": "a", "location": "w", "tags": {}, "list": [1, 2]}]);
        assert_eq!(render(&value, Format::Tsv), "2\tw\ta\t\n");
        assert_eq!(render(&json!("key"), Format::Tsv), "key\n");
        assert_eq!(render(&json!(true), Format::Tsv), "true\n");
    }

    #[test]
    fn yaml_and_none() {
        assert_eq!(
            render(&json!({"key2": "b", "key1": "a"}), Format::Yaml),
            "key1: a\nkey2: b\n"
        );
        assert_eq!(render(&json!({"a": 1}), Format::None), "");
    }

    #[test]
    fn query_selects_with_jmespath_and_rejects_bad_expressions() {
        let value = json!({"key1": "a", "key2": "b"});
        assert_eq!(
            Query::parse("key1").unwrap().apply(&value).unwrap(),
            json!("a")
        );
        assert_eq!(
            Query::parse("[key2, key1]").unwrap().apply(&value).unwrap(),
            json!(["b", "a"])
        );
        let err = Query::parse("[?").err().expect("a bad query fails");
        assert_eq!(err.exit_code(), 2);
    }
}
