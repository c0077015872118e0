//! A gold model: one SQL file in `sql/gold/`. The file name is the gold table's name; the body
//! is one SELECT over silver tables (`silver.users`) and other gold models (`gold.user_ltv`).
//! A header of `-- key: value` comment lines says how the model is materialized and what must
//! hold before it is published:
//!
//! ```sql
//! -- Lifetime value and segment per user.
//! -- materialized: table
//! -- assert: unique(user_id)
//! -- assert: not_null(user_id)
//! -- assert: accepted_values(segment, ['new', 'regular', 'vip'])
//! -- assert: row_count > 0
//! -- assert: relationships(user_id, silver.users.id)
//! -- assert_sql: SELECT * FROM {{ this }} WHERE lifetime_value < 0
//! SELECT …
//! ```
//!
//! An incremental model rebuilds only the rows whose unique key a change touched. Every table
//! it reads says, with a `changed_keys` line, which keys a changed row of it touches (the row
//! as it is now and as it was at the last run):
//!
//! ```sql
//! -- materialized: incremental
//! -- unique_key: order_date
//! -- changed_keys: CAST(ordered_at AS DATE) FROM silver.orders
//! -- partitioned_by: month(order_date)
//! ```
//!
//! Other comment lines before the first `key:` line are the model's description. The body
//! stays plain SQL (no templating), so it runs unchanged in Athena.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use datafusion::sql::TableReference;
use datafusion::sql::parser::DFParser;
use datafusion::sql::resolve::resolve_table_references;

/// A layer a model reads from.
pub use crate::config::Layer;

/// A table a model reads: `silver.users`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ref {
    pub layer: Layer,
    pub table: String,
}

impl std::fmt::Display for Ref {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.layer.as_str(), self.table)
    }
}

/// How a model's table is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Materialized {
    /// Rebuilt in full every run, and replaced in one commit.
    Table,
    /// Only the rows whose unique key changed are rebuilt (see [`ChangedKeys`]); the first
    /// run, and a run after the model's SQL or partitioning changed, rebuild everything.
    Incremental,
}

/// `changed_keys: <expressions> FROM <table> [WHERE …]`: the model's unique-key values that a
/// changed row of `source` touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedKeys {
    pub source: Ref,
    /// `SELECT DISTINCT <expressions> FROM <table> …`, run over the changed rows only.
    pub sql: String,
}

/// One partition field: a transform of an output column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionField {
    pub column: String,
    pub transform: iceberg::spec::Transform,
}

impl PartitionField {
    /// The partition field's name, as Iceberg's own writers name them.
    pub fn name(&self) -> String {
        use iceberg::spec::Transform::*;
        match self.transform {
            Identity => self.column.clone(),
            Year => format!("{}_year", self.column),
            Month => format!("{}_month", self.column),
            Day => format!("{}_day", self.column),
            Hour => format!("{}_hour", self.column),
            Bucket(_) => format!("{}_bucket", self.column),
            Truncate(_) => format!("{}_trunc", self.column),
            _ => format!("{}_{}", self.column, self.transform),
        }
    }
}

impl std::fmt::Display for PartitionField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use iceberg::spec::Transform::*;
        match self.transform {
            Identity => write!(f, "{}", self.column),
            Bucket(n) => write!(f, "bucket({n}, {})", self.column),
            Truncate(w) => write!(f, "truncate({w}, {})", self.column),
            t => write!(f, "{t}({})", self.column),
        }
    }
}

/// A check on the model's new rows, before they are committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assertion {
    /// No two rows share these columns' values.
    Unique(Vec<String>),
    NotNull(String),
    /// Every non-null value is one of these (SQL literals, as written).
    AcceptedValues {
        column: String,
        values: Vec<String>,
    },
    /// The model has at least one row.
    RowCountPositive,
    /// Every non-null value of `column` is a value of `to_column` in `to`.
    Relationships {
        column: String,
        to: Ref,
        to_column: String,
    },
    /// A query that must return no rows; `{{ this }}` is the model's new rows.
    Sql(String),
}

impl std::fmt::Display for Assertion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Assertion::Unique(c) => write!(f, "unique({})", c.join(", ")),
            Assertion::NotNull(c) => write!(f, "not_null({c})"),
            Assertion::AcceptedValues { column, values } => {
                write!(f, "accepted_values({column}, [{}])", values.join(", "))
            }
            Assertion::RowCountPositive => write!(f, "row_count > 0"),
            Assertion::Relationships {
                column,
                to,
                to_column,
            } => write!(f, "relationships({column}, {to}.{to_column})"),
            Assertion::Sql(q) => write!(f, "sql: {q}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Model {
    pub name: String,
    pub path: PathBuf,
    pub description: String,
    /// The file's text (its comments are SQL comments).
    pub sql: String,
    pub materialized: Materialized,
    /// Columns that identify a row: checked unique and not null; an incremental model replaces
    /// rows by them.
    pub unique_key: Vec<String>,
    /// Incremental models: per table the SELECT reads, the keys its changes touch.
    pub changed_keys: Vec<ChangedKeys>,
    pub partitioned_by: Vec<PartitionField>,
    pub assertions: Vec<Assertion>,
    /// The tables the SELECT reads.
    pub sources: BTreeSet<Ref>,
    /// The tables the SELECT reads, and those its assertions compare with.
    pub reads: BTreeSet<Ref>,
}

impl Model {
    /// The gold models it depends on.
    pub fn depends_on(&self) -> impl Iterator<Item = &str> {
        self.reads
            .iter()
            .filter(|r| r.layer == Layer::Gold)
            .map(|r| r.table.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Header {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// Names the layers go by in SQL: `silver`, or the namespace (`cdc_demo_dev_silver`).
#[derive(Debug, Clone)]
pub struct Namespaces {
    pub bronze: String,
    pub silver: String,
    pub gold: String,
}

impl Namespaces {
    fn layer(&self, schema: &str) -> Option<Layer> {
        [
            (Layer::Bronze, &self.bronze),
            (Layer::Silver, &self.silver),
            (Layer::Gold, &self.gold),
        ]
        .into_iter()
        .find(|(l, ns)| schema == l.as_str() || schema == ns.as_str())
        .map(|(l, _)| l)
    }
}

/// Every model in `dir` (`*.sql`), sorted by name.
pub fn load_dir(dir: &Path, ns: &Namespaces) -> Result<Vec<Model>, ModelError> {
    let entries = std::fs::read_dir(dir).map_err(|source| ModelError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut paths = Vec::new();
    for e in entries {
        let e = e.map_err(|source| ModelError::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        let p = e.path();
        if p.extension().is_some_and(|x| x == "sql") {
            paths.push(p);
        }
    }
    paths.sort();
    paths.iter().map(|p| load(p, ns)).collect()
}

/// One model file.
pub fn load(path: &Path, ns: &Namespaces) -> Result<Model, ModelError> {
    let text = std::fs::read_to_string(path).map_err(|source| ModelError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text, ns)
}

/// A model from its file's path and text.
pub fn parse(path: &Path, text: &str, ns: &Namespaces) -> Result<Model, ModelError> {
    let invalid = |message: String| ModelError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let name = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_string();
    if name.is_empty()
        || !name.starts_with(|c: char| c.is_ascii_lowercase())
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(invalid(format!(
            "`{name}` is not a table name: name the file in lowercase letters, digits and `_`, starting with a letter"
        )));
    }
    let mut model = Model {
        name,
        path: path.to_path_buf(),
        description: String::new(),
        sql: text.to_string(),
        materialized: Materialized::Table,
        unique_key: Vec::new(),
        changed_keys: Vec::new(),
        partitioned_by: Vec::new(),
        assertions: Vec::new(),
        sources: BTreeSet::new(),
        reads: BTreeSet::new(),
    };
    let mut changed_keys_lines = Vec::new();
    let mut in_header = false;
    let mut materialized = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        let Some(comment) = trimmed.strip_prefix("--") else {
            break; // the SELECT starts
        };
        let comment = comment.trim();
        let header = |message: String| ModelError::Header {
            path: path.to_path_buf(),
            line: i + 1,
            message,
        };
        // A line is a header line when it names a key; before the first one, other lines are
        // the description (unless they look like a misspelt key).
        let keyed = comment.split_once(':').filter(|(k, _)| is_key(k));
        let keyed = keyed.filter(|(k, _)| {
            in_header || KEYS.contains(k) || KEYS.iter().any(|known| edits(k, known) <= 2)
        });
        let Some((key, value)) = keyed else {
            if !in_header {
                if !model.description.is_empty() {
                    model.description.push(' ');
                }
                model.description.push_str(comment);
            }
            continue;
        };
        in_header = true;
        let value = value.trim();
        match key {
            "materialized" => {
                if materialized.is_some() {
                    return Err(header("`materialized` is given twice".into()));
                }
                materialized = Some(match value {
                    "table" => Materialized::Table,
                    "incremental" => Materialized::Incremental,
                    other => {
                        return Err(header(format!(
                            "materialized: `{other}` is not supported; use `table` (a full rebuild, replaced atomically) or `incremental` (with unique_key and changed_keys)"
                        )));
                    }
                });
            }
            "unique_key" => {
                if !model.unique_key.is_empty() {
                    return Err(header("`unique_key` is given twice".into()));
                }
                model.unique_key = value
                    .split(',')
                    .map(column)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| header(format!("unique_key: {e}")))?;
            }
            "changed_keys" => {
                let parsed = parse_changed_keys(value, ns).map_err(header)?;
                changed_keys_lines.push((i + 1, parsed));
            }
            "partitioned_by" => {
                if !model.partitioned_by.is_empty() {
                    return Err(header("`partitioned_by` is given twice".into()));
                }
                model.partitioned_by = split_top_level(value)
                    .iter()
                    .map(|p| parse_partition_field(p))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(header)?;
            }
            "assert" => model
                .assertions
                .push(parse_assertion(value, ns).map_err(header)?),
            "assert_sql" => {
                if value.is_empty() {
                    return Err(header(
                        "assert_sql: give a query that must return no rows".into(),
                    ));
                }
                model.assertions.push(Assertion::Sql(value.to_string()));
            }
            other => {
                return Err(header(format!(
                    "unknown header key `{other}`; known: {}",
                    KEYS.join(", ")
                )));
            }
        }
    }
    model.materialized = materialized.unwrap_or(Materialized::Table);
    // A unique key is one: unique and never null.
    if !model.unique_key.is_empty() {
        let unique = Assertion::Unique(model.unique_key.clone());
        if !model.assertions.contains(&unique) {
            model.assertions.insert(0, unique);
        }
        for c in model.unique_key.iter().rev() {
            let not_null = Assertion::NotNull(c.clone());
            if !model.assertions.contains(&not_null) {
                model.assertions.insert(1, not_null);
            }
        }
    }

    // The body: one SELECT; what it reads.
    let mut statements = DFParser::parse_sql(text).map_err(|e| invalid(format!("{e}")))?;
    if statements.len() != 1 {
        return Err(invalid(format!(
            "a model is one SELECT; found {} statements",
            statements.len()
        )));
    }
    let statement = statements.pop_front().expect("one statement");
    let is_query = matches!(
        &statement,
        datafusion::sql::parser::Statement::Statement(s)
            if matches!(**s, datafusion::sql::sqlparser::ast::Statement::Query(_))
    );
    if !is_query {
        return Err(invalid(
            "a model is one SELECT (or WITH … SELECT); found another statement".into(),
        ));
    }
    let (tables, _ctes) =
        resolve_table_references(&statement, true).map_err(|e| invalid(format!("{e}")))?;
    for t in tables {
        model.sources.insert(table_ref(&t, ns).map_err(&invalid)?);
    }
    model.reads = model.sources.clone();
    for a in &model.assertions {
        if let Assertion::Relationships { to, .. } = a {
            model.reads.insert(to.clone());
        }
    }
    check_incremental(&mut model, changed_keys_lines, path)?;
    if model.reads.iter().any(|r| *r == model.gold_ref()) {
        return Err(invalid(format!(
            "the model reads gold.{} itself; a model is built from other tables",
            model.name
        )));
    }
    Ok(model)
}

impl Model {
    fn gold_ref(&self) -> Ref {
        Ref {
            layer: Layer::Gold,
            table: self.name.clone(),
        }
    }
}

const KEYS: [&str; 6] = [
    "materialized",
    "unique_key",
    "changed_keys",
    "partitioned_by",
    "assert",
    "assert_sql",
];

/// What an incremental model needs, and what only an incremental model may say.
fn check_incremental(
    model: &mut Model,
    changed_keys: Vec<(usize, (ChangedKeys, usize))>,
    path: &Path,
) -> Result<(), ModelError> {
    let invalid = |message: String| ModelError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let header = |line: usize, message: String| ModelError::Header {
        path: path.to_path_buf(),
        line,
        message,
    };
    if model.materialized != Materialized::Incremental {
        if let Some((line, _)) = changed_keys.first() {
            return Err(header(
                *line,
                "changed_keys applies to `materialized: incremental` models only".into(),
            ));
        }
        return Ok(());
    }
    if model.unique_key.is_empty() {
        return Err(invalid(
            "an incremental model needs `-- unique_key: <columns>`: the rows it replaces are found by it".into(),
        ));
    }
    for (line, (ck, width)) in changed_keys {
        if !model.sources.contains(&ck.source) {
            return Err(header(
                line,
                format!(
                    "changed_keys: the model's SELECT does not read {}",
                    ck.source
                ),
            ));
        }
        if width != model.unique_key.len() {
            return Err(header(
                line,
                format!(
                    "changed_keys: gives {width} value(s) per row, but the unique key ({}) has {}",
                    model.unique_key.join(", "),
                    model.unique_key.len()
                ),
            ));
        }
        if model.changed_keys.iter().any(|c| c.source == ck.source) {
            return Err(header(
                line,
                format!("changed_keys: {} is given twice", ck.source),
            ));
        }
        model.changed_keys.push(ck);
    }
    if let Some(missing) = model
        .sources
        .iter()
        .find(|s| !model.changed_keys.iter().any(|c| &c.source == *s))
    {
        return Err(invalid(format!(
            "the model reads {missing} but no `-- changed_keys: <{}> FROM {missing}` line says which of its rows a change to {missing} touches",
            model.unique_key.join(", ")
        )));
    }
    Ok(())
}

/// A column name in a header value.
fn column(s: &str) -> Result<String, String> {
    let s = s.trim();
    let ok = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '"');
    ok.then(|| s.trim_matches('"').to_string())
        .ok_or_else(|| format!("`{s}` is not a column name"))
}

/// Splits on commas outside parentheses and quotes.
fn split_top_level(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let (mut depth, mut quoted) = (0i32, false);
    for c in s.chars() {
        match c {
            '\'' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth -= 1,
            ',' if !quoted && depth == 0 => {
                out.push(std::mem::take(&mut cur).trim().to_string());
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// `month(order_date)`, `bucket(16, user_id)`, `truncate(4, sku)`, `status` (identity).
fn parse_partition_field(text: &str) -> Result<PartitionField, String> {
    use iceberg::spec::Transform;
    let usage = "partitioned_by: columns or transforms of them: col, year(col), month(col), day(col), hour(col), bucket(n, col), truncate(width, col)";
    let Some((name, args)) = text
        .split_once('(')
        .and_then(|(n, rest)| Some((n.trim(), rest.trim().strip_suffix(')')?)))
    else {
        return Ok(PartitionField {
            column: column(text).map_err(|e| format!("{e}; {usage}"))?,
            transform: Transform::Identity,
        });
    };
    let args: Vec<&str> = args.split(',').map(str::trim).collect();
    let number = |s: &str| -> Result<u32, String> {
        s.parse::<u32>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("`{s}` in {name}(…) is not a positive number; {usage}"))
    };
    let (transform, col) = match (name, args.as_slice()) {
        ("identity", [c]) => (Transform::Identity, c),
        ("year", [c]) => (Transform::Year, c),
        ("month", [c]) => (Transform::Month, c),
        ("day", [c]) => (Transform::Day, c),
        ("hour", [c]) => (Transform::Hour, c),
        ("bucket", [n, c]) => (Transform::Bucket(number(n)?), c),
        ("truncate", [w, c]) => (Transform::Truncate(number(w)?), c),
        _ => return Err(format!("`{text}` is not a partition field; {usage}")),
    };
    Ok(PartitionField {
        column: column(col)?,
        transform,
    })
}

/// `user_id FROM silver.orders`: the query over changed rows, the table, and how many values
/// it gives per row.
fn parse_changed_keys(text: &str, ns: &Namespaces) -> Result<(ChangedKeys, usize), String> {
    use datafusion::sql::sqlparser::ast::{SelectItem, SetExpr, Statement as Sql};
    let usage = "changed_keys: <the unique key's values, as expressions over the table's columns> FROM <layer.table> [WHERE …], e.g. `changed_keys: CAST(ordered_at AS DATE) FROM silver.orders`";
    let sql = format!("SELECT DISTINCT {text}");
    let mut statements =
        DFParser::parse_sql(&sql).map_err(|e| format!("changed_keys: {e}; {usage}"))?;
    let statement = match statements.pop_front() {
        Some(s) if statements.is_empty() => s,
        _ => return Err(usage.to_string()),
    };
    let width = match &statement {
        datafusion::sql::parser::Statement::Statement(s) => match &**s {
            Sql::Query(q) => match &*q.body {
                SetExpr::Select(select) => {
                    if select.projection.iter().any(|p| {
                        !matches!(
                            p,
                            SelectItem::UnnamedExpr(_) | SelectItem::ExprWithAlias { .. }
                        )
                    }) {
                        return Err(format!(
                            "changed_keys: name the key's expressions, not `*`; {usage}"
                        ));
                    }
                    select.projection.len()
                }
                _ => return Err(usage.to_string()),
            },
            _ => return Err(usage.to_string()),
        },
        _ => return Err(usage.to_string()),
    };
    let (tables, _) = resolve_table_references(&statement, true).map_err(|e| e.to_string())?;
    let [table] = tables.as_slice() else {
        return Err(format!(
            "changed_keys: read exactly one table (found {}); {usage}",
            tables.len()
        ));
    };
    Ok((
        ChangedKeys {
            source: table_ref(table, ns)?,
            sql,
        },
        width,
    ))
}

/// Edit distance (insertions, deletions, substitutions) between two short words.
fn edits(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

fn is_key(k: &str) -> bool {
    !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
}

/// `silver.users` (or `<namespace>.users`) as a layer and table.
fn table_ref(t: &TableReference, ns: &Namespaces) -> Result<Ref, String> {
    match t {
        TableReference::Partial { schema, table } => match ns.layer(schema) {
            Some(layer) => Ok(Ref {
                layer,
                table: table.to_string(),
            }),
            None => Err(format!(
                "`{t}`: `{schema}` is not a layer; read silver.<table> or gold.<model>"
            )),
        },
        TableReference::Bare { table } => Err(format!(
            "`{table}` has no layer: write silver.{table} or gold.{table}"
        )),
        TableReference::Full { .. } => Err(format!(
            "`{t}`: name tables as layer.table (silver.{}, gold.{})",
            t.table(),
            t.table()
        )),
    }
}

/// One `assert:` value.
fn parse_assertion(text: &str, ns: &Namespaces) -> Result<Assertion, String> {
    let compact: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if compact == "row_count > 0" {
        return Ok(Assertion::RowCountPositive);
    }
    let usage = "known assertions: unique(col, …), not_null(col), accepted_values(col, ['a', 'b']), row_count > 0, relationships(col, layer.table.col or model.col); or assert_sql: <query returning no rows>";
    let (name, args) = text
        .split_once('(')
        .and_then(|(n, rest)| Some((n.trim(), rest.trim().strip_suffix(')')?)))
        .ok_or_else(|| format!("`{text}` is not an assertion; {usage}"))?;
    match name {
        "unique" => {
            let cols = args.split(',').map(column).collect::<Result<Vec<_>, _>>()?;
            Ok(Assertion::Unique(cols))
        }
        "not_null" => Ok(Assertion::NotNull(column(args)?)),
        "accepted_values" => {
            let (col, list) = args
                .split_once(',')
                .ok_or("accepted_values(col, ['a', 'b'])")?;
            let list = list.trim();
            let inner = list
                .strip_prefix('[')
                .and_then(|l| l.strip_suffix(']'))
                .ok_or("accepted_values: give the values as a list: ['a', 'b']")?;
            let values = split_literals(inner)?;
            if values.is_empty() {
                return Err("accepted_values: the list is empty".into());
            }
            Ok(Assertion::AcceptedValues {
                column: column(col)?,
                values,
            })
        }
        "relationships" => {
            let (col, target) = args
                .split_once(',')
                .ok_or("relationships(col, silver.table.col or model.col)")?;
            let parts: Vec<&str> = target.trim().split('.').collect();
            let (to, to_column) = match parts.as_slice() {
                [model, c] => (
                    Ref {
                        layer: Layer::Gold,
                        table: column(model)?,
                    },
                    column(c)?,
                ),
                [layer, table, c] => (
                    Ref {
                        layer: ns
                            .layer(layer)
                            .ok_or_else(|| format!("relationships: `{layer}` is not a layer"))?,
                        table: column(table)?,
                    },
                    column(c)?,
                ),
                _ => {
                    return Err(format!(
                        "relationships: `{}` is not layer.table.column or model.column",
                        target.trim()
                    ));
                }
            };
            Ok(Assertion::Relationships {
                column: column(col)?,
                to,
                to_column,
            })
        }
        other => Err(format!("unknown assertion `{other}`; {usage}")),
    }
}

/// `'a', 'b''c', 3` → the literals as written; commas inside quotes are kept.
fn split_literals(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' if quoted && chars.peek() == Some(&'\'') => {
                cur.push_str("''");
                chars.next();
            }
            '\'' => {
                quoted = !quoted;
                cur.push(c);
            }
            ',' if !quoted => {
                out.push(std::mem::take(&mut cur).trim().to_string());
            }
            _ => cur.push(c),
        }
    }
    if quoted {
        return Err(format!("accepted_values: unterminated quote in [{s}]"));
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    if out.iter().any(String::is_empty) {
        return Err(format!("accepted_values: an empty value in [{s}]"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns() -> Namespaces {
        Namespaces {
            bronze: "b".into(),
            silver: "cdc_silver".into(),
            gold: "cdc_gold".into(),
        }
    }

    fn model(name: &str, text: &str) -> Result<Model, ModelError> {
        parse(Path::new(&format!("sql/gold/{name}.sql")), text, &ns())
    }

    #[test]
    fn header_body_and_references() {
        let m = model(
            "user_ltv",
            "-- Lifetime value per user.\n-- One row per user.\n-- materialized: table\n\
             -- assert: unique(user_id)\n-- assert: not_null( user_id )\n\
             -- assert: accepted_values(segment, ['new', 'it''s, ok', 3])\n-- assert: row_count  >  0\n\
             -- assert: relationships(user_id, silver.users.id)\n-- assert: relationships(day, daily.day)\n\
             -- assert_sql: SELECT * FROM {{ this }} WHERE ltv < 0\n\
             WITH o AS (SELECT * FROM silver.orders) SELECT u.id AS user_id FROM cdc_silver.users u JOIN o ON o.user_id = u.id \
             WHERE u.id IN (SELECT user_id FROM gold.vip)",
        )
        .unwrap();
        assert_eq!(m.description, "Lifetime value per user. One row per user.");
        assert_eq!(m.materialized, Materialized::Table);
        assert_eq!(
            m.assertions,
            vec![
                Assertion::Unique(vec!["user_id".into()]),
                Assertion::NotNull("user_id".into()),
                Assertion::AcceptedValues {
                    column: "segment".into(),
                    values: vec!["'new'".into(), "'it''s, ok'".into(), "3".into()],
                },
                Assertion::RowCountPositive,
                Assertion::Relationships {
                    column: "user_id".into(),
                    to: Ref {
                        layer: Layer::Silver,
                        table: "users".into()
                    },
                    to_column: "id".into(),
                },
                Assertion::Relationships {
                    column: "day".into(),
                    to: Ref {
                        layer: Layer::Gold,
                        table: "daily".into()
                    },
                    to_column: "day".into(),
                },
                Assertion::Sql("SELECT * FROM {{ this }} WHERE ltv < 0".into()),
            ]
        );
        let reads: Vec<String> = m.reads.iter().map(Ref::to_string).collect();
        assert_eq!(
            reads,
            ["silver.orders", "silver.users", "gold.daily", "gold.vip"]
        );
        assert_eq!(m.depends_on().collect::<Vec<_>>(), ["daily", "vip"]);
    }

    #[test]
    fn mistakes_name_the_file_and_line() {
        let err = |name: &str, text: &str| model(name, text).unwrap_err().to_string();
        assert!(err("Bad-Name", "SELECT 1").contains("not a table name"));
        assert!(
            err("m", "-- materialized: view\nSELECT 1")
                .contains("sql/gold/m.sql:1: materialized: `view` is not supported")
        );
        assert!(
            err("m", "-- x\n-- asert: unique(a)\nSELECT 1")
                .contains("m.sql:2: unknown header key `asert`")
        );
        assert!(err("m", "-- assert: uniq(a)\nSELECT 1").contains("unknown assertion `uniq`"));
        assert!(err("m", "SELECT * FROM users").contains("`users` has no layer"));
        assert!(err("m", "SELECT * FROM other.users").contains("`other` is not a layer"));
        assert!(err("m", "SELECT 1; SELECT 2").contains("found 2 statements"));
        assert!(err("m", "DELETE FROM silver.users").contains("one SELECT"));
        assert!(err("m", "SELECT * FROM gold.m").contains("reads gold.m itself"));
    }

    #[test]
    fn incremental_models_say_which_keys_a_change_touches() {
        let m = model(
            "daily",
            "-- materialized: incremental\n-- unique_key: day, country\n\
             -- changed_keys: CAST(ordered_at AS DATE), country FROM silver.orders WHERE status <> 'x'\n\
             -- changed_keys: CAST(created_at AS DATE) AS d, country FROM cdc_silver.users\n\
             -- partitioned_by: month(day), bucket(8, country), truncate(2, country), country\n\
             SELECT CAST(o.ordered_at AS DATE) AS day, u.country, count(*) AS n \
             FROM silver.orders o JOIN silver.users u ON u.id = o.user_id GROUP BY 1, 2",
        )
        .unwrap();
        assert_eq!(m.materialized, Materialized::Incremental);
        assert_eq!(m.unique_key, ["day", "country"]);
        assert_eq!(
            m.assertions,
            [
                Assertion::Unique(vec!["day".into(), "country".into()]),
                Assertion::NotNull("day".into()),
                Assertion::NotNull("country".into()),
            ]
        );
        let sources: Vec<String> = m
            .changed_keys
            .iter()
            .map(|c| c.source.to_string())
            .collect();
        assert_eq!(sources, ["silver.orders", "silver.users"]);
        assert!(
            m.changed_keys[0]
                .sql
                .starts_with("SELECT DISTINCT CAST(ordered_at")
        );
        let parts: Vec<String> = m.partitioned_by.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            parts,
            [
                "month(day)",
                "bucket(8, country)",
                "truncate(2, country)",
                "country"
            ]
        );
        let names: Vec<String> = m.partitioned_by.iter().map(|p| p.name()).collect();
        assert_eq!(
            names,
            ["day_month", "country_bucket", "country_trunc", "country"]
        );

        let err = |text: &str| model("m", text).unwrap_err().to_string();
        let body = "SELECT user_id, count(*) AS n FROM silver.orders GROUP BY 1";
        assert!(
            err(&format!("-- materialized: incremental\n{body}")).contains("needs `-- unique_key")
        );
        assert!(
            err(&format!(
                "-- materialized: incremental\n-- unique_key: user_id\n{body}"
            ))
            .contains("reads silver.orders but no `-- changed_keys: <user_id> FROM silver.orders`")
        );
        assert!(
            err(&format!(
                "-- materialized: incremental\n-- unique_key: user_id\n\
                 -- changed_keys: user_id, id FROM silver.orders\n{body}"
            ))
            .contains("m.sql:3: changed_keys: gives 2 value(s) per row, but the unique key (user_id) has 1")
        );
        assert!(
            err(&format!(
                "-- materialized: incremental\n-- unique_key: user_id\n\
                 -- changed_keys: id FROM silver.users\n{body}"
            ))
            .contains("does not read silver.users")
        );
        assert!(
            err(&format!(
                "-- materialized: incremental\n-- unique_key: user_id\n\
                 -- changed_keys: * FROM silver.orders\n{body}"
            ))
            .contains("not `*`")
        );
        assert!(
            err(&format!(
                "-- changed_keys: user_id FROM silver.orders\n{body}"
            ))
            .contains("m.sql:1: changed_keys applies to `materialized: incremental` models only")
        );
        assert!(
            err(&format!("-- partitioned_by: weekly(day)\n{body}"))
                .contains("not a partition field")
        );
        assert!(
            err(&format!("-- partitioned_by: bucket(0, day)\n{body}"))
                .contains("not a positive number")
        );
    }
}
