//! Printing the final image record: diskforge's `--output human|json`,
//! and openstackclient's `-f json|yaml|value|shell|table` with `-c COLUMN`
//! (repeatable), so that `-f value -c id` prints the id alone, as
//! `openstack image create -f value -c id` does.

use crate::cli::OutputFormat;
use crate::cli::register::ColumnFormat;
use crate::error::{Error, Result};
use serde_json::{Map, Value};

/// A field's value as one line of text; `python` spells null, true and
/// false as openstackclient prints them (None, True, False).
fn text(v: &Value, python: bool) -> String {
    let scalar = |x: &Value| match x {
        Value::String(s) => s.clone(),
        Value::Null if python => "None".to_string(),
        Value::Null => String::new(),
        Value::Bool(b) if python => if *b { "True" } else { "False" }.to_string(),
        other => other.to_string(),
    };
    match v {
        Value::Array(a) => a.iter().map(scalar).collect::<Vec<_>>().join(", "),
        Value::Object(o) => {
            let mut parts: Vec<String> = o
                .iter()
                .map(|(k, x)| format!("{k}='{}'", scalar(x)))
                .collect();
            parts.sort();
            parts.join(", ")
        }
        other => scalar(other),
    }
}

/// The record's fields, sorted, or only `columns` in the order given.
fn select(record: &Value, columns: &[String]) -> Result<Vec<(String, Value)>> {
    let empty = Map::new();
    let obj = record.as_object().unwrap_or(&empty);
    if columns.is_empty() {
        let mut all: Vec<(String, Value)> =
            obj.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        return Ok(all);
    }
    // As openstackclient: unknown columns are left out; none known is an
    // error (after the image was made: the error names it).
    let out: Vec<(String, Value)> = columns
        .iter()
        .filter_map(|c| obj.get(c).map(|v| (c.clone(), v.clone())))
        .collect();
    if out.is_empty() {
        let mut have: Vec<&str> = obj.keys().map(String::as_str).collect();
        have.sort();
        let id = obj.get("id").and_then(Value::as_str).unwrap_or("?");
        return Err(Error::Failed(format!(
            "image {id} was registered, but the record has no column {} (it has: {})",
            columns.join(", "),
            have.join(", ")
        )));
    }
    Ok(out)
}

/// A shell variable name for a column, as openstackclient's shell
/// formatter makes it.
fn shell_name(k: &str) -> String {
    k.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

fn table(fields: &[(String, String)]) -> String {
    let w0 = fields
        .iter()
        .map(|f| f.0.chars().count())
        .max()
        .unwrap_or(0)
        .max(5);
    let w1 = fields
        .iter()
        .map(|f| f.1.chars().count())
        .max()
        .unwrap_or(0)
        .max(5);
    let rule = format!("+{}+{}+\n", "-".repeat(w0 + 2), "-".repeat(w1 + 2));
    let row = |a: &str, b: &str| {
        let pad0 = w0 - a.chars().count();
        let pad1 = w1 - b.chars().count();
        format!("| {a}{} | {b}{} |\n", " ".repeat(pad0), " ".repeat(pad1))
    };
    let mut s = rule.clone();
    s.push_str(&row("Field", "Value"));
    s.push_str(&rule);
    for (k, v) in fields {
        s.push_str(&row(k, v));
    }
    s.push_str(&rule);
    s
}

/// The text to print for `record`.
pub fn render(
    record: &Value,
    output: OutputFormat,
    format: Option<ColumnFormat>,
    columns: &[String],
) -> Result<String> {
    let fields = select(record, columns)?;
    let Some(format) = format else {
        return Ok(match output {
            OutputFormat::Json if columns.is_empty() => {
                serde_json::to_string_pretty(record).unwrap_or_default()
            }
            OutputFormat::Json => {
                serde_json::to_string_pretty(&Value::Object(fields.into_iter().collect()))
                    .unwrap_or_default()
            }
            OutputFormat::Human => {
                let width = fields.iter().map(|f| f.0.len()).max().unwrap_or(0);
                fields
                    .iter()
                    .map(|(k, v)| {
                        format!("{k:<width$}  {}", text(v, false))
                            .trim_end()
                            .to_string()
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            }
        });
    };
    let python: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| (k.clone(), text(v, true)))
        .collect();
    Ok(match format {
        ColumnFormat::Json => {
            serde_json::to_string_pretty(&Value::Object(fields.into_iter().collect()))
                .unwrap_or_default()
        }
        ColumnFormat::Yaml => {
            let v = Value::Object(fields.into_iter().collect());
            serde_yaml_ng::to_string(&v)
                .unwrap_or_default()
                .trim_end()
                .to_string()
        }
        ColumnFormat::Value => python
            .iter()
            .map(|(_, v)| v.clone())
            .collect::<Vec<_>>()
            .join("\n"),
        ColumnFormat::Shell => python
            .iter()
            .map(|(k, v)| {
                format!(
                    "{}=\"{}\"",
                    shell_name(k),
                    v.replace('\\', "\\\\")
                        .replace('"', "\\\"")
                        .replace('$', "\\$")
                        .replace('`', "\\`")
                )
            })
            .collect::<Vec<_>>()
            .join("\n"),
        ColumnFormat::Table => table(&python).trim_end().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn formats() {
        let rec = json!({"id": "abc", "name": "a \"b\" $c", "protected": false,
            "checksum": null, "tags": ["x", "y"], "size": 3});
        let c = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let cases = [
            (Some(ColumnFormat::Value), c(&["id"]), "abc"),
            (
                Some(ColumnFormat::Value),
                c(&["checksum", "protected", "size"]),
                "None\nFalse\n3",
            ),
            (
                Some(ColumnFormat::Shell),
                c(&["id", "name"]),
                "id=\"abc\"\nname=\"a \\\"b\\\" \\$c\"",
            ),
            (
                Some(ColumnFormat::Yaml),
                c(&["id", "tags"]),
                "id: abc\ntags:\n- x\n- y",
            ),
            (
                Some(ColumnFormat::Json),
                c(&["id"]),
                "{\n  \"id\": \"abc\"\n}",
            ),
            (
                Some(ColumnFormat::Table),
                c(&["id"]),
                "+-------+-------+\n| Field | Value |\n+-------+-------+\n| id    | abc   |\n+-------+-------+",
            ),
            (None, c(&["id", "tags"]), "id    abc\ntags  x, y"),
        ];
        for (f, cols, want) in cases {
            assert_eq!(
                render(&rec, OutputFormat::Human, f, &cols).unwrap(),
                want,
                "{f:?} {cols:?}"
            );
        }
        assert!(render(&rec, OutputFormat::Human, None, &c(&["nope"])).is_err());
    }
}
