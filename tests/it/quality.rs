//! Data-quality expectations on generated data: each action (warn, drop, quarantine, fail), the
//! counts in `_dq_runs` against the rows in silver, quarantine and dropped, checks at start-up,
//! and PyIceberg reading silver, quarantine and `_dq_runs`.

use std::collections::HashMap;

use medallion::catalog::TableName;
use medallion::lake::LakeTable;
use medallion::silver::{self, SilverError, SilverOptions, TableReport};

use crate::pyiceberg::check_with_pyiceberg;
use crate::support::Workspace;

/// The demo's column types (generated events have no schema).
const COLUMN_TYPES: &str = r#"
[silver.tables.users.columns]
created_at = "timestamptz"
[silver.tables.products.columns]
price = "decimal(10,2)"
[silver.tables.orders.columns]
unit_price = "decimal(10,2)"
ordered_at = "timestamp"
shipped_on = "date"
"#;

/// One expectation of each action on `orders`: quantity above `max_quantity` warns, a
/// cancelled order is dropped, a unit price of `max_price` or more is quarantined, a user id
/// that is not positive fails the run.
fn actions(max_quantity: i64, max_price: i64) -> String {
    format!(
        r#"
[[silver.tables.orders.expectations]]
name = "small_quantity"
expr = "quantity <= {max_quantity}"
action = "warn"

[[silver.tables.orders.expectations]]
name = "not_cancelled"
expr = "status <> 'cancelled'"
action = "drop"

[[silver.tables.orders.expectations]]
name = "affordable"
expr = "unit_price < {max_price}"
action = "quarantine"

[[silver.tables.orders.expectations]]
name = "has_user"
expr = "user_id > 0"
action = "fail"
"#
    )
}

fn generate_and_ingest(ws: &Workspace, events: u32) {
    let file = ws.root().join(format!("events-{events}.jsonl"));
    let file = file.to_str().unwrap();
    let events = events.to_string();
    let args = [
        "generate", "--keys", "200", "--events", &events, "--seed", "5",
    ];
    let (code, _, err) = ws.run(&[&args[..], &["--out", file]].concat());
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = ws.run(&["ingest", "--from", file]);
    assert_eq!(code, 0, "{err}");
}

/// `test_silver.<table>`, if it exists.
async fn silver_table(ws: &Workspace, table: &str) -> Option<LakeTable> {
    ws.lake()
        .load(&TableName::new("test_silver", table))
        .await
        .unwrap()
}

/// What a run on `orders` may change.
const ORDERS_TABLES: [&str; 3] = ["orders", "orders_quarantine", "_dq_runs"];

/// The current snapshot of each of [`ORDERS_TABLES`] (`None`: no table, or no snapshot).
async fn orders_snapshots(ws: &Workspace) -> Vec<Option<i64>> {
    let mut out = Vec::new();
    for t in ORDERS_TABLES {
        let table = silver_table(ws, t).await;
        out.push(table.and_then(|t| t.current_snapshot().map(|s| s.snapshot_id())));
    }
    out
}

/// Silver for every table, in process: the reports and the per-table errors.
async fn run_silver(ws: &Workspace) -> (Vec<TableReport>, Vec<(String, SilverError)>) {
    silver::run(&ws.lake(), &ws.config(), &SilverOptions::default())
        .await
        .unwrap()
}

/// `_dq_runs` of the latest run of `table`: expectation -> (action, checked, failed).
async fn latest_dq(ws: &Workspace, table: &str) -> HashMap<String, (String, i64, i64)> {
    let batches = ws
        .query(&format!(
            "SELECT expectation, action, CAST(sum(rows_checked) AS BIGINT), \
             CAST(sum(rows_failed) AS BIGINT) FROM silver._dq_runs \
             WHERE table_name = 'test_silver.{table}' AND run_id = \
             (SELECT max(run_id) FROM silver._dq_runs WHERE table_name = 'test_silver.{table}') \
             GROUP BY expectation, action"
        ))
        .await;
    let mut out = HashMap::new();
    for b in &batches {
        use arrow::array::AsArray;
        use arrow::datatypes::Int64Type;
        let name = arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::Utf8).unwrap();
        let action = arrow::compute::cast(b.column(1), &arrow::datatypes::DataType::Utf8).unwrap();
        for i in 0..b.num_rows() {
            out.insert(
                name.as_string::<i32>().value(i).to_string(),
                (
                    action.as_string::<i32>().value(i).to_string(),
                    b.column(2).as_primitive::<Int64Type>().value(i),
                    b.column(3).as_primitive::<Int64Type>().value(i),
                ),
            );
        }
    }
    out
}

/// Checks a first silver run of `orders` with [`actions`]: every expectation checked the same
/// rows (written + dropped + quarantined), each action did what it says, and `_dq_runs` counts
/// agree with silver and quarantine. `out`: the run's output.
async fn assert_each_action(ws: &Workspace, out: &str, max_quantity: i64, max_price: i64) {
    let dq = latest_dq(ws, "orders").await;

    // Every expectation checked the same rows: those the run wrote, dropped or quarantined.
    let silver_rows = ws.count("SELECT count(*) FROM silver.orders").await;
    let quarantined = ws
        .count("SELECT count(*) FROM silver.orders_quarantine WHERE array_has(expectations, 'affordable')")
        .await;
    let checked = dq["small_quantity"].1;
    for name in ["small_quantity", "not_cancelled", "affordable", "has_user"] {
        assert_eq!(dq[name].1, checked, "{name}: {dq:?}");
    }
    let dropped_line = out
        .lines()
        .find(|l| l.starts_with("test_silver.orders:"))
        .unwrap_or_else(|| panic!("no orders line in {out}"));
    let dropped: i64 = dropped_line
        .split(", ")
        .find_map(|p| p.strip_suffix(" dropped"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no dropped count in {dropped_line}"));
    assert_eq!(
        checked,
        silver_rows + dropped + quarantined,
        "{out}\n{dq:?}"
    );

    // quarantine: every row failing it is in quarantine, with its decoded row, none in silver.
    assert!(dq["affordable"].2 > 0, "{dq:?}");
    assert_eq!(dq["affordable"].0, "quarantine");
    assert_eq!(dq["affordable"].2, quarantined);
    assert_eq!(
        ws.count(&format!(
            "SELECT count(*) FROM silver.orders WHERE unit_price >= {max_price}"
        ))
        .await,
        0
    );
    assert_eq!(
        ws.count(
            "SELECT count(*) FROM silver.orders_quarantine WHERE row IS NULL \
             OR reason NOT LIKE 'failed expectations: %affordable (quarantine)%'"
        )
        .await,
        0
    );
    // drop: failing rows left out and counted (those also quarantined are in quarantine).
    assert!(dropped > 0, "{out}");
    let cancelled_in_quarantine = ws
        .count("SELECT count(*) FROM silver.orders_quarantine WHERE array_has(expectations, 'not_cancelled')")
        .await;
    assert_eq!(dq["not_cancelled"].2, dropped + cancelled_in_quarantine);
    assert_eq!(
        ws.count("SELECT count(*) FROM silver.orders WHERE status = 'cancelled'")
            .await,
        0
    );
    // warn: kept, flagged in _dq_failed, _dq_ok false.
    let flagged = ws
        .count("SELECT count(*) FROM silver.orders WHERE array_has(_dq_failed, 'small_quantity')")
        .await;
    assert!(flagged > 0);
    assert_eq!(
        flagged,
        ws.count(&format!(
            "SELECT count(*) FROM silver.orders WHERE quantity > {max_quantity}"
        ))
        .await
    );
    assert_eq!(
        ws.count(&format!(
            "SELECT count(*) FROM silver.orders WHERE _dq_ok <> (quantity <= {max_quantity})"
        ))
        .await,
        0
    );
    // fail: never failed here. Built-in checks are logged too.
    assert_eq!(dq["has_user"].2, 0);
    for builtin in ["_key_not_null", "_fits_type", "_decodes"] {
        assert_eq!(dq[builtin].0, "quarantine", "{dq:?}");
        assert_eq!(dq[builtin].2, 0, "{dq:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_action_counts_match_silver_quarantine_and_dropped() {
    let ws = Workspace::new(&format!("{COLUMN_TYPES}{}", actions(4, 150)));
    generate_and_ingest(&ws, 2000);
    let (code, out, err) = ws.run(&["silver"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_each_action(&ws, &out, 4, 150).await;
    // Tables without expectations still log the built-in checks.
    assert!(latest_dq(&ws, "users").await.contains_key("_decodes"));

    // `medallion dq` prints the latest results.
    let (code, out, err) = ws.run(&["dq", "--table", "orders"]);
    assert_eq!(code, 0, "{err}");
    for name in ["small_quantity", "not_cancelled", "affordable", "has_user"] {
        assert!(out.contains(name), "{out}");
    }
    assert!(!out.contains("test_silver.users"), "{out}");

    // PyIceberg reads silver, quarantine and the log the same.
    check_with_pyiceberg(
        &ws,
        "test_silver",
        "silver",
        &[
            "orders".to_string(),
            "orders_quarantine".to_string(),
            "_dq_runs".to_string(),
        ],
    );

    // A `fail` expectation that fails: the run stops, nothing of the table changes.
    generate_and_ingest(&ws, 2600);
    let before = orders_snapshots(&ws).await;
    assert!(before.iter().all(Option::is_some), "{before:?}");
    let text = std::fs::read_to_string(&ws.config_path).unwrap();
    std::fs::write(&ws.config_path, text.replace("user_id > 0", "quantity < 5")).unwrap();
    let (code, out, err) = ws.run(&["silver", "--table", "orders"]);
    assert_ne!(code, 0, "{out}");
    assert!(
        err.contains("expectation `has_user` (`quantity < 5`, action fail) failed for")
            && err.contains("nothing was committed"),
        "{err}"
    );
    assert_eq!(
        orders_snapshots(&ws).await,
        before,
        "{ORDERS_TABLES:?} changed"
    );

    // An unknown column stops the run before it reads anything.
    // (Tables are independent: the others may go on and log to `_dq_runs`; run orders alone.)
    std::fs::write(&ws.config_path, text.replace("user_id > 0", "no_such > 0")).unwrap();
    let (code, _, err) = ws.run(&["silver", "--table", "orders"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("expectation `has_user` (`no_such > 0`)") && err.contains("no_such"),
        "{err}"
    );
    assert_eq!(
        orders_snapshots(&ws).await,
        before,
        "{ORDERS_TABLES:?} changed"
    );

    // Fixed: the run goes on from where it stopped.
    std::fs::write(&ws.config_path, &text).unwrap();
    let (code, out, err) = ws.run(&["silver"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_ne!(orders_snapshots(&ws).await[2], before[2]);
}

#[test]
fn a_bad_expression_stops_at_config_load() {
    // `medallion config` with one expectation: it must fail; its error.
    let config_error = |expectation: &str| {
        let ws = Workspace::new(&format!(
            "[[silver.tables.orders.expectations]]\n{expectation}"
        ));
        let (code, _, err) = ws.run(&["config"]);
        assert_ne!(code, 0, "{expectation}");
        err
    };
    let err = config_error("name = \"broken\"\nexpr = \"quantity >=\"\naction = \"warn\"\n");
    assert!(
        err.contains("silver.tables.orders.expectations[0].expr") && err.contains("quantity >="),
        "{err}"
    );
    let err = config_error("name = \"x\"\nexpr = \"quantity > 0\"\naction = \"explode\"\n");
    assert!(err.contains("explode"), "{err}");
}

/// A Debezium PostgreSQL value with its schema: `after` has `id` (int32) and `n` of `n_type`.
fn value_with_schema(op: &str, id: i64, n: serde_json::Value, n_type: &str, lsn: i64) -> String {
    let row = serde_json::json!({"type": "struct", "optional": true, "fields": [
        {"type": "int32", "optional": false, "field": "id"},
        {"type": n_type, "optional": true, "field": "n"}]});
    let mut before = row.clone();
    before["field"] = "before".into();
    let mut after = row;
    after["field"] = "after".into();
    serde_json::json!({
        "schema": {"type": "struct", "optional": false, "fields": [before, after,
            {"type": "string", "optional": false, "field": "op"}]},
        "payload": {"before": null, "after": {"id": id, "n": n}, "op": op,
            "ts_ms": 1_700_000_000_000i64 + lsn,
            "source": {"connector": "postgresql", "name": "p", "db": "d", "schema": "public",
                "table": "t", "lsn": lsn, "ts_ms": 1_700_000_000_000i64 + lsn}}
    })
    .to_string()
}

fn line(table: &str, offset: i64, id: i64, value: String) -> String {
    serde_json::json!({"topic": format!("p.public.{table}"), "partition": 0, "offset": offset,
        "timestamp": 1_700_000_000_000i64, "key": format!("{{\"id\":{id}}}"), "value": value})
    .to_string()
}

async fn land(ws: &Workspace, name: &str, lines: &[String]) {
    let f = ws.root().join(name);
    std::fs::write(&f, lines.join("\n") + "\n").unwrap();
    medallion::bronze::ingest::ingest_files(&ws.lake(), &ws.config(), vec![f])
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_type_iceberg_can_widen_is_applied_another_stops_only_that_table() {
    let ws = Workspace::new("");
    land(
        &ws,
        "1.jsonl",
        &[
            line("t", 0, 1, value_with_schema("c", 1, 5.into(), "int32", 100)),
            line("u", 0, 1, value_with_schema("c", 1, 7.into(), "int32", 101)),
        ],
    )
    .await;
    let (_, errors) = run_silver(&ws).await;
    assert!(errors.is_empty(), "{errors:?}");

    // int32 -> int64: widened in place, the old row reads as a long.
    let big = 5_000_000_000i64;
    land(
        &ws,
        "2.jsonl",
        &[line(
            "t",
            1,
            2,
            value_with_schema("c", 2, big.into(), "int64", 200),
        )],
    )
    .await;
    let (_, errors) = run_silver(&ws).await;
    assert!(errors.is_empty(), "{errors:?}");
    let t = silver_table(&ws, "t").await.unwrap();
    let n = t.metadata().current_schema().field_by_name("n").unwrap();
    assert_eq!(n.field_type.to_string(), "long");
    assert_eq!(ws.count("SELECT sum(n) FROM silver.t").await, 5 + big);

    // int64 -> string: no Iceberg promotion; t stops with a clear message, u goes on.
    let snapshot = t.current_snapshot().map(|s| s.snapshot_id());
    land(
        &ws,
        "3.jsonl",
        &[
            line(
                "t",
                2,
                3,
                value_with_schema("c", 3, "x".into(), "string", 300),
            ),
            line("u", 1, 2, value_with_schema("c", 2, 8.into(), "int32", 301)),
        ],
    )
    .await;
    let (reports, errors) = run_silver(&ws).await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    let (table, e) = &errors[0];
    assert_eq!(table, "t");
    assert!(
        e.to_string()
            .contains("column n changed type from long to string, which Iceberg cannot widen"),
        "{e}"
    );
    assert!(
        reports
            .iter()
            .any(|r| r.table == "test_silver.u" && r.upserts == 1),
        "{reports:?}"
    );
    assert_eq!(ws.count("SELECT count(*) FROM silver.u").await, 2);
    let t = silver_table(&ws, "t").await.unwrap();
    assert_eq!(t.current_snapshot().map(|s| s.snapshot_id()), snapshot);
}

/// A schema-less Debezium PostgreSQL value (`schemas.enable=false`).
fn plain_value(after: serde_json::Value, lsn: i64) -> String {
    serde_json::json!({"before": null, "after": after, "op": "c", "ts_ms": 1_700_000_000_000i64 + lsn,
        "source": {"connector": "postgresql", "name": "p", "db": "d", "schema": "public",
            "table": "t", "lsn": lsn, "ts_ms": 1_700_000_000_000i64 + lsn}})
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_schemaless_fields_are_added_ignored_or_stop_the_table_as_configured() {
    let ws = Workspace::new(
        r#"
[silver.tables.b]
new_columns = "ignore"
[silver.tables.c]
new_columns = "fail"
[silver.tables.d]
new_columns = "fail"
"#,
    );
    let tables = ["a", "b", "c"];
    let first: Vec<String> = tables
        .iter()
        .map(|t| {
            line(
                t,
                0,
                1,
                plain_value(serde_json::json!({"id": 1, "n": 1, "_src": 7}), 100),
            )
        })
        .collect();
    // d's first run sees only a delete: it learns the key, and its columns are not pinned yet.
    let mut first = first;
    let delete = serde_json::json!({"before": {"id": 9}, "after": null, "op": "d",
        "ts_ms": 1_700_000_000_050i64, "source": {"connector": "postgresql", "name": "p",
        "db": "d", "schema": "public", "table": "d", "lsn": 50, "ts_ms": 1_700_000_000_050i64}});
    first.push(line("d", 0, 9, delete.to_string()));
    land(&ws, "1.jsonl", &first).await;
    let (_, errors) = run_silver(&ws).await;
    assert!(errors.is_empty(), "{errors:?}");
    let second: Vec<String> = tables
        .iter()
        .map(|t| {
            let after = serde_json::json!({"id": 2, "n": 2, "extra": "x", "_src": 8});
            line(t, 1, 2, plain_value(after, 200))
        })
        .collect();
    let mut second = second;
    let after = serde_json::json!({"id": 2, "n": 2, "extra": "x"});
    second.push(line("d", 1, 2, plain_value(after, 200)));
    land(&ws, "2.jsonl", &second).await;
    let (reports, errors) = run_silver(&ws).await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].0, "c");
    let e = errors[0].1.to_string();
    assert!(
        e.contains("field `extra`") && e.contains("new_columns"),
        "{e}"
    );
    assert_eq!(reports.len(), 3, "{reports:?}");
    assert_eq!(
        ws.count("SELECT count(*) FROM silver.d WHERE extra = 'x' AND n = 2")
            .await,
        1
    );
    // add: a nullable column, null for the older row.
    assert_eq!(
        ws.count("SELECT count(*) FROM silver.a WHERE extra IS NULL AND id = 1")
            .await,
        1
    );
    assert_eq!(
        ws.count("SELECT count(*) FROM silver.a WHERE extra = 'x' AND id = 2")
            .await,
        1
    );
    // ignore: the row lands without it. A source column named like medallion's (`_src`) is
    // a source column in every run, not a new one.
    assert_eq!(ws.count("SELECT count(*) FROM silver.b").await, 2);
    assert_eq!(ws.count("SELECT sum(_src) FROM silver.b").await, 15);
    assert_eq!(ws.count("SELECT sum(_src) FROM silver.a").await, 15);
    let b = silver_table(&ws, "b").await.unwrap();
    assert!(
        b.metadata()
            .current_schema()
            .field_by_name("extra")
            .is_none()
    );
    // fail: nothing of the second run in c.
    assert_eq!(ws.count("SELECT count(*) FROM silver.c").await, 1);
}

/// The real `pg-ecommerce` capture (with its `ALTER TABLE users ADD COLUMN` midway), in both
/// variants: with only a `warn` expectation silver still equals the source, new column
/// included; with one of each action the counts agree as on generated data, and a `fail`
/// commits nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_action_on_the_pg_ecommerce_fixture() {
    use crate::silver::{check_against_expected, scenario_config};
    for scenario in ["pg-ecommerce/schemas", "pg-ecommerce/noschemas"] {
        let (_, path) = crate::support::fixture_event_files()
            .into_iter()
            .find(|(s, _)| s == scenario)
            .unwrap_or_else(|| panic!("no fixture {scenario}"));
        let path = path.to_str().unwrap();

        // warn only: rows flagged, none changed.
        let warn = r#"
[[silver.tables.users.expectations]]
name = "known_country"
expr = "country IS NOT NULL"
"#;
        let ws = Workspace::new(&format!("{}{warn}", scenario_config(scenario)));
        let (code, _, err) = ws.run(&["ingest", "--from", path]);
        assert_eq!(code, 0, "{err}");
        let (code, out, err) = ws.run(&["silver"]);
        assert_eq!(code, 0, "{out}\n{err}");
        check_against_expected(&ws, scenario);
        let users = silver_table(&ws, "users").await.unwrap();
        let columns = users.metadata().current_schema();
        assert!(
            columns.field_by_name("loyalty_points").is_some(),
            "{scenario}: no ADD COLUMN column"
        );
        let dq = latest_dq(&ws, "users").await;
        let flagged = ws
            .count("SELECT count(*) FROM silver.users WHERE array_has(_dq_failed, 'known_country')")
            .await;
        assert!(flagged > 0, "{scenario}: {dq:?}");
        assert_eq!(
            flagged,
            ws.count("SELECT count(*) FROM silver.users WHERE country IS NULL")
                .await
        );
        assert_eq!(dq["known_country"].2, flagged, "{scenario}: {dq:?}");
        assert_eq!(
            dq["known_country"].1,
            ws.count("SELECT count(*) FROM silver.users").await
        );

        // One of each action.
        let ws = Workspace::new(&format!("{}{}", scenario_config(scenario), actions(3, 500)));
        let (code, _, err) = ws.run(&["ingest", "--from", path]);
        assert_eq!(code, 0, "{err}");
        let config = std::fs::read_to_string(&ws.config_path).unwrap();
        // fail first: a run that fails commits nothing, not even the tables' first snapshots.
        std::fs::write(
            &ws.config_path,
            config.replace("user_id > 0", "quantity < 4"),
        )
        .unwrap();
        let (code, _, err) = ws.run(&["silver", "--table", "orders"]);
        assert_ne!(code, 0);
        assert!(
            err.contains("`has_user`") && err.contains("nothing was committed"),
            "{err}"
        );
        assert_eq!(
            orders_snapshots(&ws).await,
            vec![None; 3],
            "{scenario}: a failed run made a snapshot"
        );
        std::fs::write(&ws.config_path, &config).unwrap();
        let (code, out, err) = ws.run(&["silver"]);
        assert_eq!(code, 0, "{out}\n{err}");
        assert_each_action(&ws, &out, 3, 500).await;
    }
}
