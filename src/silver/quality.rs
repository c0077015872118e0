//! Data quality: a table's expectations, checked on the rows a run is about to write.
//!
//! An expectation is a SQL boolean expression over the decoded row (the silver columns,
//! medallion's included) with an action: `warn` keeps the row and names the expectation in its
//! `_dq_failed`; `drop` leaves the change out of silver; `quarantine` leaves it out and writes it
//! to `<table>_quarantine` with the names it failed; `fail` stops the table's run before it
//! commits anything. A row fails when the expression is false; null (unknown) passes, as in a
//! SQL CHECK constraint. A change left out is not applied: its key keeps the row silver had.
//!
//! Expressions are compiled by DataFusion against the table's Arrow schema, so a bad expression
//! or an unknown column is reported before any data is read (or, for a table silver has not
//! created yet, before its first commit), and they run vectorized over the run's new rows.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{
    Array, AsArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray, UInt32Array,
};
use arrow::datatypes::{DataType, Schema as ArrowSchema};
use arrow::error::ArrowError;
use datafusion::common::DFSchema;
use datafusion::physical_plan::PhysicalExpr;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;

use iceberg::spec::{NestedField, PrimitiveType, Schema, Type, UnboundPartitionSpec};

use super::SilverError;
use super::merge::{BUILTIN_CHECKS, Plan, Quarantined};
use super::write::OutRow;
use crate::catalog::TableName;
use crate::config::{Config, DqAction, ExpectationConfig};
use crate::lake::{Lake, LakeError, LakeTable};

/// Checks that `sql` is one SQL expression (syntax only: columns are checked against the
/// table's schema by [`Expectations::compile`]).
pub fn parse_expr(sql: &str) -> Result<(), String> {
    let dialect = GenericDialect {};
    let mut parser = Parser::new(&dialect)
        .try_with_sql(sql)
        .map_err(|e| format!("`{sql}` is not valid SQL: {e}"))?;
    parser
        .parse_expr()
        .map_err(|e| format!("`{sql}` is not a SQL expression: {e}"))?;
    let rest = parser.peek_token();
    if rest.token != datafusion::sql::sqlparser::tokenizer::Token::EOF {
        return Err(format!(
            "`{sql}` has more after the expression, at `{rest}`; write one boolean expression (combine with AND / OR)"
        ));
    }
    Ok(())
}

/// A table's expectations, compiled against its schema.
pub struct Expectations {
    checks: Vec<(ExpectationConfig, Arc<dyn PhysicalExpr>)>,
}

/// Which rows failed which expectations.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Per expectation (in config order): the rows that failed it.
    pub failed: Vec<Vec<u32>>,
    /// Per row: the strongest action of the expectations it failed (`None`: it passed all).
    pub action: Vec<Option<DqAction>>,
}

impl Verdict {
    /// The expectations row `row` failed.
    pub fn failed_by<'a>(
        &self,
        expectations: &'a Expectations,
        row: u32,
    ) -> impl Iterator<Item = &'a ExpectationConfig> {
        expectations
            .checks
            .iter()
            .zip(&self.failed)
            .filter(move |(_, rows)| rows.binary_search(&row).is_ok())
            .map(|((c, _), _)| c)
    }

    /// Names of the expectations row `row` failed with `action`.
    pub fn names<'a>(
        &self,
        expectations: &'a Expectations,
        row: u32,
        action: DqAction,
    ) -> Vec<&'a str> {
        self.failed_by(expectations, row)
            .filter(|c| c.action == action)
            .map(|c| c.name.as_str())
            .collect()
    }
}

impl Expectations {
    pub fn none() -> Expectations {
        Expectations { checks: Vec::new() }
    }

    /// Compiles `configs` against `schema`: an unknown column, a type error or an expression
    /// that is not boolean is an error naming the expectation.
    pub fn compile(
        configs: &[ExpectationConfig],
        schema: &ArrowSchema,
    ) -> Result<Expectations, String> {
        if configs.is_empty() {
            return Ok(Expectations::none());
        }
        let ctx = SessionContext::new();
        let df_schema = DFSchema::try_from(schema.clone()).map_err(|e| e.to_string())?;
        let mut checks = Vec::with_capacity(configs.len());
        for c in configs {
            let what = || format!("expectation `{}` (`{}`)", c.name, c.expr);
            let expr = ctx
                .parse_sql_expr(&c.expr, &df_schema)
                .map_err(|e| format!("{}: {}", what(), strip(&e.to_string())))?;
            let physical = ctx
                .create_physical_expr(expr, &df_schema)
                .map_err(|e| format!("{}: {}", what(), strip(&e.to_string())))?;
            let ty = physical
                .data_type(schema)
                .map_err(|e| format!("{}: {}", what(), strip(&e.to_string())))?;
            if ty != DataType::Boolean {
                return Err(format!(
                    "{}: is {ty}, not a boolean; write a condition such as `price >= 0`",
                    what()
                ));
            }
            checks.push((c.clone(), physical));
        }
        Ok(Expectations { checks })
    }

    pub fn is_empty(&self) -> bool {
        self.checks.is_empty()
    }

    pub fn configs(&self) -> impl Iterator<Item = &ExpectationConfig> {
        self.checks.iter().map(|(c, _)| c)
    }

    /// Evaluates every expectation on `batch` (rows in the table's Arrow schema).
    pub fn evaluate(&self, batch: &RecordBatch) -> Result<Verdict, String> {
        let n = batch.num_rows();
        let mut verdict = Verdict {
            failed: Vec::with_capacity(self.checks.len()),
            action: vec![None; n],
        };
        for (c, expr) in &self.checks {
            let result = expr
                .evaluate(batch)
                .and_then(|v| v.into_array(n))
                .map_err(|e| format!("expectation `{}`: {}", c.name, strip(&e.to_string())))?;
            let result = result.as_boolean();
            let mut failed = Vec::new();
            for i in 0..n {
                if result.is_valid(i) && !result.value(i) {
                    failed.push(i as u32);
                    let a = &mut verdict.action[i];
                    *a = (*a).max(Some(c.action));
                }
            }
            verdict.failed.push(failed);
        }
        Ok(verdict)
    }
}

/// A run's new rows after its expectations.
pub struct Checked {
    /// The rows to write (`warn` ones flagged).
    pub kept: Vec<OutRow>,
    /// Rows left out by `drop`.
    pub dropped: u64,
    /// Per expectation: the rows that failed it.
    pub failed: Vec<u64>,
}

impl Expectations {
    /// Applies the expectations to the run's new live rows (`batch`: the same rows as Arrow;
    /// `owners`: each row's outcome in `plan`). A `fail` is an error before anything is
    /// written; rows held back by `drop` or `quarantine` are marked not `applied` (the key
    /// keeps its silver row), and quarantined ones join `plan.quarantined` with every name
    /// they failed and the decoded row.
    pub fn hold_back(
        &self,
        table: &str,
        rows: Vec<OutRow>,
        owners: &[usize],
        batch: &RecordBatch,
        plan: &mut Plan,
        applied: &mut [bool],
    ) -> Result<Checked, SilverError> {
        let verdict = self
            .evaluate(batch)
            .map_err(|message| SilverError::Expectations {
                table: table.to_string(),
                message,
            })?;
        for (c, failed) in self.configs().zip(&verdict.failed) {
            if c.action == DqAction::Fail && !failed.is_empty() {
                let sample = failed
                    .iter()
                    .take(5)
                    .map(|&r| plan.outcomes[owners[r as usize]].key_text.to_string())
                    .collect();
                return Err(SilverError::ExpectationFailed {
                    table: table.to_string(),
                    expectation: c.name.clone(),
                    expr: c.expr.clone(),
                    rows: failed.len(),
                    checked: rows.len(),
                    sample,
                });
            }
        }
        let held: Vec<u32> = (0..rows.len() as u32)
            .filter(|&r| verdict.action[r as usize] == Some(DqAction::Quarantine))
            .collect();
        let mut held_json = rows_as_json(batch, &held)
            .map_err(|e| SilverError::arrow(table, e))?
            .into_iter();
        let mut checked = Checked {
            kept: Vec::with_capacity(rows.len()),
            dropped: 0,
            failed: verdict.failed.iter().map(|f| f.len() as u64).collect(),
        };
        for (r, (mut row, &i)) in rows.into_iter().zip(owners).enumerate() {
            let r = r as u32;
            match verdict.action[r as usize] {
                None => checked.kept.push(row),
                Some(DqAction::Warn) => {
                    row.failed = verdict
                        .names(self, r, DqAction::Warn)
                        .into_iter()
                        .map(Arc::from)
                        .collect();
                    checked.kept.push(row);
                }
                Some(DqAction::Drop) => {
                    applied[i] = false;
                    checked.dropped += 1;
                }
                Some(DqAction::Quarantine) | Some(DqAction::Fail) => {
                    applied[i] = false;
                    // Every expectation it failed, whatever its action.
                    let failed: Vec<&ExpectationConfig> = verdict.failed_by(self, r).collect();
                    let reason = failed
                        .iter()
                        .map(|c| format!("{} ({})", c.name, c.action.as_str()))
                        .collect::<Vec<_>>()
                        .join(", ");
                    let o = &plan.outcomes[i];
                    let q = Quarantined {
                        key_text: o.key_text.clone(),
                        event: o.event.clone(),
                        reason: format!("failed expectations: {reason}"),
                        checks: failed.iter().map(|c| c.name.clone()).collect(),
                        row: held_json.next(),
                    };
                    plan.quarantined.push(q);
                }
            }
        }
        Ok(checked)
    }
}

/// One expectation's (or built-in check's) counts in a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DqCount {
    pub expectation: String,
    pub action: &'static str,
    pub checked: u64,
    pub failed: u64,
}

/// The counts a run starts from: every expectation with `rows` checked (its failures are
/// filled in by the evaluation), then the built-in checks over the run's `events`, failed by
/// the changes the plan already quarantined.
pub fn counts(expectations: &Expectations, rows: u64, events: u64, plan: &Plan) -> Vec<DqCount> {
    let mut out: Vec<DqCount> = expectations
        .configs()
        .map(|c| DqCount {
            expectation: c.name.clone(),
            action: c.action.as_str(),
            checked: rows,
            failed: 0,
        })
        .collect();
    for check in BUILTIN_CHECKS {
        out.push(DqCount {
            expectation: check.to_string(),
            action: DqAction::Quarantine.as_str(),
            checked: events,
            failed: plan
                .quarantined
                .iter()
                .filter(|q| q.checks.iter().any(|c| c == check))
                .count() as u64,
        });
    }
    out
}

/// The data-quality log: one row per table, expectation and run step.
pub const RUNS_TABLE: &str = "_dq_runs";

/// Snapshot summary key of `_dq_runs`, per silver table: the bronze sequence number its rows
/// cover (so a run redone after a crash does not log twice).
fn covered_key(table: &str) -> String {
    format!("medallion.dq.{table}")
}

/// The bronze sequence number the `_dq_runs` rows of silver table `table` cover.
pub fn covered(runs: &LakeTable, table: &str) -> i64 {
    runs.summary_property(&covered_key(table))
        .and_then(|s| s.parse::<i64>().ok())
        .unwrap_or(0)
}

pub fn runs_schema() -> Schema {
    use PrimitiveType::*;
    let p = |t| Type::Primitive(t);
    let fields = vec![
        NestedField::required(1, "run_id", p(String)),
        NestedField::required(2, "table_name", p(String)),
        NestedField::required(3, "expectation", p(String)),
        NestedField::required(4, "action", p(String)),
        NestedField::required(5, "rows_checked", p(Long)),
        NestedField::required(6, "rows_failed", p(Long)),
        NestedField::required(7, "run_at", p(Timestamptz)),
        NestedField::optional(8, "bronze_sequence_number", p(Long)),
    ];
    Schema::builder()
        .with_fields(fields.into_iter().map(Arc::new))
        .build()
        .expect("static _dq_runs schema")
}

/// Appends a step's counts to `<silver>._dq_runs`, unless a crashed run already did.
pub async fn record(
    lake: &Lake,
    config: &Config,
    table: &str,
    run_id: &str,
    counts: &[DqCount],
    bronze_seq: i64,
) -> Result<(), SilverError> {
    let name = TableName::new(config.namespaces.silver.clone(), RUNS_TABLE);
    let t = lake
        .load_or_create(
            &name,
            runs_schema(),
            UnboundPartitionSpec::builder().build(),
            HashMap::from([("medallion.layer".to_string(), "silver-dq".to_string())]),
        )
        .await?;
    let key = covered_key(table);
    if covered(&t, table) >= bronze_seq {
        return Ok(());
    }
    let schema = t.metadata().current_schema().clone();
    let arrow_schema = Arc::new(
        iceberg::arrow::schema_to_arrow_schema(&schema)
            .map_err(LakeError::iceberg(&name.to_string(), "convert the schema"))?,
    );
    let now = chrono::Utc::now().timestamp_micros();
    let n = counts.len();
    let batch = RecordBatch::try_new(
        arrow_schema,
        vec![
            Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
                run_id, n,
            ))),
            Arc::new(StringArray::from_iter_values(std::iter::repeat_n(table, n))),
            Arc::new(StringArray::from_iter_values(
                counts.iter().map(|c| c.expectation.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                counts.iter().map(|c| c.action),
            )),
            Arc::new(Int64Array::from_iter_values(
                counts.iter().map(|c| c.checked as i64),
            )),
            Arc::new(Int64Array::from_iter_values(
                counts.iter().map(|c| c.failed as i64),
            )),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(std::iter::repeat_n(now, n))
                    .with_timezone("+00:00"),
            ),
            Arc::new(Int64Array::from_iter_values(std::iter::repeat_n(
                bronze_seq, n,
            ))),
        ],
    )
    .map_err(|e| SilverError::arrow(&name.to_string(), e))?;
    let summary = BTreeMap::from([(key.clone(), bronze_seq.to_string())]);
    let done = |t: &LakeTable| covered(t, table) >= bronze_seq;
    super::append_once(
        lake,
        config,
        (&name, &t),
        schema,
        batch,
        summary,
        None,
        done,
    )
    .await
}

/// Rows `rows` of `batch` as JSON objects (one string per row), for quarantine.
pub fn rows_as_json(batch: &RecordBatch, rows: &[u32]) -> Result<Vec<String>, ArrowError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let picked = arrow::compute::take_record_batch(batch, &UInt32Array::from(rows.to_vec()))?;
    // The row as the source had it, with its position; not the flags of a row never written.
    let keep: Vec<usize> = (0..picked.num_columns())
        .filter(|&i| !picked.schema().field(i).name().starts_with("_dq_"))
        .collect();
    let picked = picked.project(&keep)?;
    let mut out = Vec::new();
    let mut w = arrow_json::LineDelimitedWriter::new(&mut out);
    w.write(&picked)?;
    w.finish()?;
    let text =
        String::from_utf8(out).map_err(|e| ArrowError::JsonError(format!("not UTF-8: {e}")))?;
    Ok(text.lines().map(String::from).collect())
}

/// DataFusion's errors start with their kind ("Schema error: ", "Error during planning: ").
fn strip(e: &str) -> &str {
    e.split_once(": ")
        .filter(|(kind, _)| kind.ends_with("error") || kind.starts_with("Error"))
        .map_or(e, |(_, rest)| rest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::Field;

    fn exp(name: &str, expr: &str, action: DqAction) -> ExpectationConfig {
        ExpectationConfig {
            name: name.into(),
            expr: expr.into(),
            action,
        }
    }

    fn schema() -> ArrowSchema {
        ArrowSchema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("email", DataType::Utf8, true),
            Field::new("quantity", DataType::Int64, true),
        ])
    }

    #[test]
    fn syntax_is_checked_on_its_own() {
        assert!(parse_expr("quantity BETWEEN 1 AND 1000").is_ok());
        assert!(parse_expr("email LIKE '%@%' AND id > 0").is_ok());
        let e = parse_expr("price >=").unwrap_err();
        assert!(e.contains("not a SQL expression"), "{e}");
        let e = parse_expr("price > 0 price < 5").unwrap_err();
        assert!(e.contains("more after the expression"), "{e}");
    }

    #[test]
    fn unknown_columns_and_non_booleans_are_named() {
        let e = Expectations::compile(&[exp("p", "price >= 0", DqAction::Warn)], &schema())
            .err()
            .unwrap();
        assert!(e.starts_with("expectation `p` (`price >= 0`): "), "{e}");
        assert!(e.contains("price"), "{e}");
        let e = Expectations::compile(&[exp("q", "quantity + 1", DqAction::Warn)], &schema())
            .err()
            .unwrap();
        assert!(e.contains("not a boolean"), "{e}");
    }

    #[test]
    fn rows_fail_on_false_not_on_null_and_take_the_strongest_action() {
        let checks = Expectations::compile(
            &[
                exp("email_has_at", "email LIKE '%@%'", DqAction::Warn),
                exp(
                    "quantity_range",
                    "quantity BETWEEN 1 AND 1000",
                    DqAction::Quarantine,
                ),
                exp("positive_id", "id > 0", DqAction::Drop),
            ],
            &schema(),
        )
        .unwrap();
        let batch = RecordBatch::try_new(
            Arc::new(schema()),
            vec![
                Arc::new(Int64Array::from(vec![1, 2, -3, 4])),
                Arc::new(StringArray::from(vec![
                    Some("a@b"),
                    Some("nope"),
                    Some("c@d"),
                    None,
                ])),
                Arc::new(Int64Array::from(vec![Some(5), Some(0), Some(7), None])),
            ],
        )
        .unwrap();
        let v = checks.evaluate(&batch).unwrap();
        assert_eq!(v.failed, vec![vec![1], vec![1], vec![2]]);
        assert_eq!(
            v.action,
            vec![None, Some(DqAction::Quarantine), Some(DqAction::Drop), None]
        );
        assert_eq!(v.names(&checks, 1, DqAction::Warn), vec!["email_has_at"]);
        assert_eq!(
            v.names(&checks, 1, DqAction::Quarantine),
            vec!["quantity_range"]
        );
    }
}
