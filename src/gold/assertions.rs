//! A model's assertions, checked on its new rows before anything is written: each becomes a
//! query for the rows that break it, over the new rows registered as a temporary table.

use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;

use super::model::{Assertion, Model};
use crate::query::{self, QueryError};

/// Rows in a failure's sample.
const SAMPLE_ROWS: usize = 5;

/// An assertion that does not hold, with how many rows break it and a few of them.
#[derive(Debug, Clone)]
pub struct Failure {
    pub assertion: String,
    pub rows: i64,
    pub sample: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "assertion `{}` failed ({} rows); nothing was committed and the previous table is unchanged",
            self.assertion, self.rows
        )?;
        if !self.sample.is_empty() {
            write!(f, "; for example:\n{}", self.sample)?;
        }
        Ok(())
    }
}

/// Why the checks stopped: an assertion failed, or a check could not run.
#[derive(Debug)]
pub enum Checked {
    Failed(Failure),
    Error(QueryError),
}

impl From<QueryError> for Checked {
    fn from(e: QueryError) -> Self {
        Checked::Error(e)
    }
}

fn quote(column: &str) -> String {
    format!("\"{}\"", column.replace('"', "\"\""))
}

/// The query for the rows that break `a`, over the new rows in `this`.
fn offending(a: &Assertion, this: &str) -> String {
    match a {
        Assertion::Unique(cols) => {
            let cols = cols.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ");
            format!(
                "SELECT {cols}, count(*) AS copies FROM {this} GROUP BY {cols} HAVING count(*) > 1"
            )
        }
        Assertion::NotNull(c) => format!("SELECT * FROM {this} WHERE {} IS NULL", quote(c)),
        Assertion::AcceptedValues { column, values } => {
            let c = quote(column);
            format!(
                "SELECT {c}, count(*) AS \"rows\" FROM {this} WHERE {c} IS NOT NULL AND {c} NOT IN ({}) GROUP BY {c}",
                values.join(", ")
            )
        }
        Assertion::RowCountPositive => {
            format!("SELECT count(*) AS \"rows\" FROM {this} HAVING count(*) = 0")
        }
        Assertion::Relationships {
            column,
            to,
            to_column,
        } => {
            let (c, k) = (quote(column), quote(to_column));
            format!(
                "SELECT n.* FROM {this} n LEFT ANTI JOIN (SELECT DISTINCT {k} AS k FROM {to} WHERE {k} IS NOT NULL) r \
                 ON n.{c} = r.k WHERE n.{c} IS NOT NULL"
            )
        }
        Assertion::Sql(q) => q.replace("{{ this }}", this).replace("{{this}}", this),
    }
}

/// Checks every assertion of `model` on its new rows (`batches`); the first that fails stops.
pub async fn check(
    ctx: &SessionContext,
    model: &Model,
    batches: &[RecordBatch],
) -> Result<(), Checked> {
    if model.assertions.is_empty() {
        return Ok(());
    }
    let schema = match batches.first() {
        Some(b) => b.schema(),
        None => return check_empty(model),
    };
    let this = format!("__medallion_new_{}", model.name);
    let table = MemTable::try_new(schema, vec![batches.to_vec()]).map_err(|source| {
        QueryError::Register {
            table: this.clone(),
            source,
        }
    })?;
    ctx.register_table(&this, Arc::new(table))
        .map_err(|source| QueryError::Register {
            table: this.clone(),
            source,
        })?;
    let result = check_each(ctx, model, &this).await;
    let _ = ctx.deregister_table(&this);
    result
}

/// A result without batches: only `row_count > 0` can say something.
fn check_empty(model: &Model) -> Result<(), Checked> {
    if model.assertions.contains(&Assertion::RowCountPositive) {
        return Err(Checked::Failed(Failure {
            assertion: Assertion::RowCountPositive.to_string(),
            rows: 0,
            sample: String::new(),
        }));
    }
    Ok(())
}

async fn check_each(ctx: &SessionContext, model: &Model, this: &str) -> Result<(), Checked> {
    for a in &model.assertions {
        let sql = offending(a, this);
        let count = query::run(ctx, &format!("SELECT count(*) FROM ({sql}) offending")).await?;
        let rows = count
            .first()
            .filter(|b| b.num_rows() > 0)
            .map(|b| b.column(0).as_primitive::<Int64Type>().value(0))
            .unwrap_or(0);
        if rows == 0 {
            continue;
        }
        let sample = query::run(ctx, &format!("{sql} LIMIT {SAMPLE_ROWS}")).await?;
        let sample = arrow::util::pretty::pretty_format_batches(&sample)
            .map(|t| t.to_string())
            .unwrap_or_default();
        return Err(Checked::Failed(Failure {
            assertion: a.to_string(),
            rows: if *a == Assertion::RowCountPositive {
                0
            } else {
                rows
            },
            sample: if *a == Assertion::RowCountPositive {
                "(the model has no rows)".into()
            } else {
                sample
            },
        }));
    }
    Ok(())
}
