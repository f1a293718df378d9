//! Output formatting, pure: kubectl-style tables, `-o json|yaml|name`, and the
//! rakkess-style access matrix. Everything the plugin prints goes through here, so the shape
//! of its output is unit-tested without a cluster (SPEC §11: kubectl's conventions).

use serde::Serialize;
use serde_json::Value;

use kube_lighthouse_core::api::view::Table;

use super::access::Allowed;
use super::PluginError;

/// `-o`: how a command prints its result (kubectl's output formats).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// The object(s) as JSON; a list is a `*List` object.
    Json,
    /// The object(s) as YAML.
    Yaml,
    /// The table with its priority-1 columns too.
    Wide,
    /// `resource.group/name`, one a line.
    Name,
}

/// A column of a table the plugin prints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    /// Header as written (printed upper-case).
    pub name: String,
    /// 0: always shown; 1: with `-o wide` only.
    pub priority: i32,
}

/// `columns`, after a `Namespace` column with `-A` (kubectl's layout).
pub fn namespaced(all_namespaces: bool, columns: impl IntoIterator<Item = Column>) -> Vec<Column> {
    let mut out = Vec::new();
    if all_namespaces {
        out.push(Column::new("Namespace"));
    }
    out.extend(columns);
    out
}

impl Column {
    /// A column shown by default.
    pub fn new(name: &str) -> Column {
        Column { name: name.into(), priority: 0 }
    }

    /// A column shown with `-o wide` only.
    pub fn wide(name: &str) -> Column {
        Column { name: name.into(), priority: 1 }
    }
}

/// A table before printing: columns and rows of cells, cells already text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TextTable {
    /// Columns in order.
    pub columns: Vec<Column>,
    /// One vector of cells per row, as long as `columns`.
    pub rows: Vec<Vec<String>>,
}

impl TextTable {
    /// An empty table with these columns.
    pub fn new(columns: Vec<Column>) -> TextTable {
        TextTable { columns, rows: Vec::new() }
    }

    /// Adds a row; missing cells print empty, extra ones are dropped.
    pub fn push(&mut self, mut row: Vec<String>) {
        row.resize(self.columns.len(), String::new());
        self.rows.push(row);
    }

    /// The text kubectl would print: upper-case headers, columns padded to their widest cell
    /// and separated by three spaces, trailing blanks trimmed; wide columns only if `wide`.
    pub fn render(&self, wide: bool) -> String {
        let shown: Vec<usize> = (0..self.columns.len()).filter(|&i| wide || self.columns[i].priority == 0).collect();
        let header: Vec<String> = shown.iter().map(|&i| self.columns[i].name.to_uppercase()).collect();
        let rows: Vec<Vec<&str>> = self.rows.iter().map(|r| shown.iter().map(|&i| r[i].as_str()).collect()).collect();
        let widths: Vec<usize> = (0..shown.len())
            .map(|c| rows.iter().map(|r| r[c].chars().count()).chain([header[c].chars().count()]).max().unwrap_or(0))
            .collect();
        let mut out = String::new();
        let mut line = |cells: &[&str]| {
            let mut text = String::new();
            for (c, cell) in cells.iter().enumerate() {
                if c + 1 < cells.len() {
                    let pad = widths[c] - cell.chars().count();
                    text.push_str(cell);
                    text.push_str(&" ".repeat(pad + 3));
                } else {
                    text.push_str(cell);
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        };
        line(&header.iter().map(String::as_str).collect::<Vec<_>>());
        for row in &rows {
            line(row);
        }
        out
    }
}

/// The text of one `Table` cell: strings as they are, numbers and booleans printed, null as
/// `<none>`, anything else as compact JSON.
pub fn cell_text(cell: &Value) -> String {
    match cell {
        Value::String(s) => s.clone(),
        Value::Null => "<none>".to_string(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => other.to_string(),
    }
}

/// A server-side `meta.k8s.io/v1` `Table` as a [`TextTable`] (the plugin prints the same
/// columns `kubectl get` does).
pub fn from_table(table: &Table) -> TextTable {
    let columns =
        table.column_definitions.iter().map(|c| Column { name: c.name.clone(), priority: c.priority }).collect();
    let mut out = TextTable::new(columns);
    for row in &table.rows {
        out.push(row.cells.iter().map(cell_text).collect());
    }
    out
}

/// `value` as YAML (a document without the leading `---`).
///
/// # Errors
/// [`PluginError::Encode`] when serialization fails.
pub fn to_yaml<T: Serialize>(value: &T) -> Result<String, PluginError> {
    serde_yaml::to_string(value).map_err(|e| PluginError::Encode(e.to_string()))
}

/// `value` as pretty JSON with a trailing newline.
///
/// # Errors
/// [`PluginError::Encode`] when serialization fails.
pub fn to_json<T: Serialize>(value: &T) -> Result<String, PluginError> {
    serde_json::to_string_pretty(value).map(|s| s + "\n").map_err(|e| PluginError::Encode(e.to_string()))
}

/// Several manifests as one YAML stream, documents separated by `---` (what
/// `kubectl apply -f -` reads).
///
/// # Errors
/// [`PluginError::Encode`] when serialization fails.
pub fn to_yaml_stream<T: Serialize>(values: &[T]) -> Result<String, PluginError> {
    let mut out = String::new();
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&to_yaml(v)?);
    }
    Ok(out)
}

/// `-o name` lines: `<resource>.<group>/<name>` (kubectl's form), one a line.
pub fn names(resource: &str, group: &str, names: &[String]) -> String {
    let prefix = if group.is_empty() { resource.to_string() } else { format!("{resource}.{group}") };
    names.iter().map(|n| format!("{prefix}/{n}\n")).collect()
}

/// `items` comma-joined, or `<none>` for nothing.
pub fn join(items: &[String]) -> String {
    kube_lighthouse_core::model::views::join_or_none(items)
}

/// The rakkess-style matrix: one row per resource, one column per verb, `✔` allowed, `✖`
/// denied, `✔ name,…` allowed only on the objects named; with `ascii`, `yes`/`no`/`named:…`.
pub fn access_matrix(verbs: &[&str], rows: &[(String, Vec<Allowed>)], ascii: bool) -> String {
    let mut columns = vec![Column::new("Name")];
    columns.extend(verbs.iter().map(|v| Column::new(v)));
    let mut table = TextTable::new(columns);
    let mark = |allowed: &Allowed| match (allowed, ascii) {
        (Allowed::All, false) => "✔".to_string(),
        (Allowed::No, false) => "✖".to_string(),
        (Allowed::Named(names), false) => format!("✔ {}", names.join(",")),
        (Allowed::All, true) => "yes".to_string(),
        (Allowed::No, true) => "no".to_string(),
        (Allowed::Named(names), true) => format!("named:{}", names.join(",")),
    };
    for (resource, cells) in rows {
        let mut row = vec![resource.clone()];
        row.extend(cells.iter().map(mark));
        table.push(row);
    }
    table.render(false)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use kube_lighthouse_core::api::view::{TableColumnDefinition, TableRow};

    fn sample() -> TextTable {
        let mut t = TextTable::new(vec![Column::new("Name"), Column::new("My Roles"), Column::wide("Namespaces")]);
        t.push(vec!["customer-a.contoso".into(), "Reader".into(), "customer-a,customer-a-web".into()]);
        t.push(vec!["b.x".into(), "Contributor(eligible)".into(), "<none>".into()]);
        t
    }

    #[test]
    fn tables_pad_columns_and_upper_case_headers() {
        assert_eq!(
            sample().render(false),
            "NAME                 MY ROLES\n\
             customer-a.contoso   Reader\n\
             b.x                  Contributor(eligible)\n"
        );
    }

    #[test]
    fn wide_adds_priority_one_columns() {
        let text = sample().render(true);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "NAME                 MY ROLES                NAMESPACES");
        assert_eq!(lines[1], "customer-a.contoso   Reader                  customer-a,customer-a-web");
        assert_eq!(lines[2], "b.x                  Contributor(eligible)   <none>");
    }

    #[test]
    fn short_rows_are_padded_and_empty_tables_print_headers() {
        let mut t = TextTable::new(vec![Column::new("A"), Column::new("B")]);
        t.push(vec!["x".into()]);
        assert_eq!(t.rows[0], ["x", ""]);
        assert_eq!(TextTable::new(vec![Column::new("A")]).render(false), "A\n");
    }

    #[test]
    fn server_tables_print_as_kubectl_would() {
        let table = Table {
            api_version: "meta.k8s.io/v1".into(),
            kind: "Table".into(),
            metadata: Default::default(),
            column_definitions: vec![
                TableColumnDefinition {
                    name: "Customer Tenant".into(),
                    type_: "string".into(),
                    format: "name".into(),
                    description: String::new(),
                    priority: 0,
                },
                TableColumnDefinition {
                    name: "Delegations".into(),
                    type_: "integer".into(),
                    format: String::new(),
                    description: String::new(),
                    priority: 0,
                },
                TableColumnDefinition {
                    name: "Managed By".into(),
                    type_: "string".into(),
                    format: String::new(),
                    description: String::new(),
                    priority: 1,
                },
            ],
            rows: vec![TableRow { cells: vec![json!("t1"), json!(3), Value::Null], object: None }],
        };
        let t = from_table(&table);
        assert_eq!(t.render(false), "CUSTOMER TENANT   DELEGATIONS\nt1                3\n");
        assert_eq!(
            t.render(true),
            "CUSTOMER TENANT   DELEGATIONS   MANAGED BY\nt1                3             <none>\n"
        );
    }

    #[test]
    fn cells_of_every_json_type_print() {
        assert_eq!(cell_text(&json!("a")), "a");
        assert_eq!(cell_text(&json!(2)), "2");
        assert_eq!(cell_text(&json!(true)), "true");
        assert_eq!(cell_text(&Value::Null), "<none>");
        assert_eq!(cell_text(&json!(["a"])), "[\"a\"]");
    }

    #[test]
    fn names_are_resource_dot_group_slash_name() {
        assert_eq!(
            names("customer", "view.kubelighthouse.io", &["t1".into(), "t2".into()]),
            "customer.view.kubelighthouse.io/t1\ncustomer.view.kubelighthouse.io/t2\n"
        );
        assert_eq!(names("namespace", "", &["a".into()]), "namespace/a\n");
    }

    #[test]
    fn yaml_streams_separate_documents() {
        let s = to_yaml_stream(&[json!({"a": 1}), json!({"b": 2})]).expect("yaml");
        assert_eq!(s, "a: 1\n---\nb: 2\n");
        assert_eq!(to_json(&json!({"a": 1})).expect("json"), "{\n  \"a\": 1\n}\n");
    }

    #[test]
    fn the_access_matrix_marks_each_verb() {
        let m = access_matrix(
            &["get", "delete"],
            &[
                ("pods".into(), vec![Allowed::All, Allowed::No]),
                ("registrationassignments".into(), vec![Allowed::All, Allowed::Named(vec!["contoso".into()])]),
            ],
            false,
        );
        assert_eq!(
            m,
            "NAME                      GET   DELETE\npods                      ✔     ✖\nregistrationassignments   ✔     ✔ contoso\n"
        );
        let ascii = access_matrix(
            &["get", "delete"],
            &[("pods".into(), vec![Allowed::No, Allowed::Named(vec!["a".into()])])],
            true,
        );
        assert_eq!(ascii, "NAME   GET   DELETE\npods   no    named:a\n");
    }
}
