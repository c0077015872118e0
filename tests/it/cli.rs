//! The command line as a scheduler and a person meet it: help that teaches, exit codes that say
//! whether to retry, errors that name what to fix.

use crate::support::Workspace;

fn run(ws: &Workspace, args: &[&str]) -> (i32, String, String) {
    ws.run(args)
}

#[test]
fn help_explains_every_command() {
    let ws = Workspace::new("");
    let (code, out, _) = run(&ws, &["--help"]);
    assert_eq!(code, 0);
    for cmd in ["ingest", "demo", "tables", "query", "generate", "config"] {
        assert!(out.contains(cmd), "--help lists {cmd}:\n{out}");
        let (code, out, err) = run(&ws, &[cmd, "--help"]);
        assert_eq!(code, 0, "{cmd} --help: {err}");
        assert!(
            out.lines().count() > 5,
            "{cmd} --help says something:\n{out}"
        );
    }
    let (_, out, _) = run(&ws, &["ingest", "--help"]);
    assert!(out.contains("exactly once"), "{out}");
}

#[test]
fn configuration_errors_name_the_key_and_exit_2() {
    let ws = Workspace::new("[bronze]\nmax_rowz = 5\n");
    let (code, _, err) = run(&ws, &["tables"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("max_rowz"), "{err}");

    let ws = Workspace::new("[bronze]\nmax_interval = \"soon\"\n");
    let (code, _, err) = run(&ws, &["config"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("max_interval") || err.contains("soon"),
        "{err}"
    );

    let ws = Workspace::new("");
    let out = ws
        .medallion()
        .arg("tables")
        .env("MEDALLION__BRONZE__MAX_ROWS", "0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bronze.max_rows"));
}

#[test]
fn usage_and_sql_errors_exit_2_with_a_hint() {
    let ws = Workspace::new("");
    let (code, _, err) = run(&ws, &["ingest"]);
    assert_eq!(code, 2);
    assert!(err.contains("--from"), "{err}");
    let (code, _, err) = run(&ws, &["query", "SELECT nope FROM bronze.missing"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("bronze.missing") || err.contains("missing"),
        "{err}"
    );
}

#[test]
fn generate_ingest_tables_and_query_formats() {
    let ws = Workspace::new("");
    let file = ws.root().join("events.jsonl.gz");
    let (code, _, err) = run(
        &ws,
        &[
            "generate",
            "--keys",
            "20",
            "--events",
            "100",
            "--schemas",
            "--out",
            file.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run(&ws, &["ingest", "--from", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("100 landed"), "{out}");
    let (code, out, _) = run(&ws, &["tables"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("users") && out.contains("offsets: demo.public.users[0]"),
        "{out}"
    );
    let (code, out, _) = run(
        &ws,
        &[
            "query",
            "--format",
            "csv",
            "SELECT count(*) AS n FROM bronze.users",
        ],
    );
    assert_eq!(code, 0);
    assert!(out.starts_with("n\n"), "{out}");
    let (code, out, _) = run(
        &ws,
        &[
            "query",
            "--format",
            "json",
            "SELECT kafka_offset FROM bronze.users ORDER BY kafka_offset LIMIT 1",
        ],
    );
    assert_eq!(code, 0);
    assert_eq!(out.trim(), r#"{"kafka_offset":0}"#);
    let (code, out, _) = run(
        &ws,
        &["query", "SELECT count(*) AS n FROM test_bronze.orders"],
    );
    assert_eq!(code, 0);
    assert!(
        out.contains("| n "),
        "real namespace names work too:\n{out}"
    );
}

#[test]
fn dlq_list_shows_where_each_dead_letter_came_from_and_why() {
    let ws = Workspace::new("");
    let (code, out, _) = run(&ws, &["dlq", "list"]);
    assert_eq!(code, 0);
    assert!(out.contains("no dead letters"), "{out}");

    let file = ws.root().join("bad.jsonl");
    std::fs::write(
        &file,
        concat!(
            r#"{"topic":"db.public.users","partition":0,"offset":0,"timestamp":1,"key":"{\"id\":1}","value":"{\"op\":\"x\",\"after\":{\"id\":1},\"source\":{}}"}"#,
            "\n",
            "{not json at all\n",
            r#"{"topic":"db.public.users","partition":0,"offset":2,"timestamp":1,"key":"{\"id\":1}","value":"{\"op\":\"c\",\"after\":{\"id\":1},\"source\":{}}"}"#,
            "\n",
        ),
    )
    .unwrap();
    let (code, _, err) = run(&ws, &["ingest", "--from", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run(&ws, &["dlq", "list", "--format", "csv"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "a header and two dead letters: {out}");
    assert!(
        lines[0].contains("topic") && lines[0].contains("reason"),
        "{out}"
    );
    assert!(
        out.contains("db.public.users,0,0,") && out.contains("unknown_op"),
        "{out}"
    );
    // Lines count from 0, as offsets do.
    assert!(
        out.contains("bad.jsonl,1,") && out.contains("unreadable"),
        "{out}"
    );
}
