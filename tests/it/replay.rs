//! `dlq replay`: dead letters re-ingested after a fix land exactly once, beside what ingest
//! lands, and the ones that still fail stay in the DLQ.

use std::process::Output;

use crate::support::Workspace;

fn value(table: &str, id: i64) -> String {
    format!(
        r#"{{"before":null,"after":{{"id":{id},"note":"row {id}"}},"source":{{"connector":"postgresql","name":"shop","ts_ms":1767225600000,"snapshot":"false","db":"shop","schema":"public","table":"{table}","txId":{id},"lsn":{}}},"op":"c","ts_ms":1767225600100}}"#,
        1000 + id
    )
}

/// A dump line with no Kafka key (a table without a primary key, not marked `keyless`).
fn keyless_line(table: &str, offset: i64) -> String {
    let v = serde_json::to_string(&value(table, offset)).unwrap();
    format!(
        r#"{{"topic":"shop.public.{table}","partition":0,"offset":{offset},"timestamp":1767225600200,"key":null,"value":{v}}}"#
    )
}

fn write(ws: &Workspace, name: &str, lines: &[String]) -> String {
    let path = ws.root().join(name);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path.display().to_string()
}

fn run(ws: &Workspace, args: &[&str]) -> String {
    let out: Output = ws.medallion().args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{args:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_after_a_fix_lands_each_dead_letter_once() {
    let ws = Workspace::new("");
    // Before the fix: `notes` and `quiet` have no primary key, so their records (no Kafka key)
    // are dead letters; one `users` record is not JSON and stays one.
    let mut first: Vec<String> = (0..4).map(|o| keyless_line("notes", o)).collect();
    first.extend((0..2).map(|o| keyless_line("quiet", o)));
    first.push(
        r#"{"topic":"shop.public.users","partition":0,"offset":0,"timestamp":1767225600200,"key":"{\"id\":1}","value":"{not json"}"#.into(),
    );
    let a = write(&ws, "a.jsonl", &first);
    run(&ws, &["ingest", "--from", &a]);
    let dlq = "SELECT count(*) FROM bronze.\"_dlq\"";
    assert_eq!(ws.count(dlq).await, 7);
    assert!(!ws.tables("test_bronze").await.contains(&"notes".into()));

    // Nothing decodes yet: a replay lands nothing and says why.
    let out = run(&ws, &["dlq", "replay"]);
    assert!(out.contains("6 still fail (missing_key)"), "{out}");
    assert!(out.contains("1 still fail (invalid_json)"), "{out}");

    // The fix: the tables have no primary key. Ingest goes on with newer `notes` records.
    let text = std::fs::read_to_string(&ws.config_path).unwrap();
    std::fs::write(
        &ws.config_path,
        text.replace("table = \"$1\"", "table = \"$1\"\nkeyless = true"),
    )
    .unwrap();
    let later: Vec<String> = (4..7).map(|o| keyless_line("notes", o)).collect();
    let b = write(&ws, "b.jsonl", &later);
    run(&ws, &["ingest", "--from", &b]);
    let notes = "SELECT count(*) FROM bronze.notes";
    assert_eq!(ws.count(notes).await, 3);

    let out = run(&ws, &["dlq", "replay", "--dry-run"]);
    assert!(out.contains("4 replayed into notes"), "{out}");
    assert_eq!(ws.count(notes).await, 3, "a dry run commits nothing");

    let out = run(&ws, &["dlq", "replay"]);
    assert!(out.contains("7 dead letters considered"), "{out}");
    assert!(out.contains("4 replayed into notes"), "{out}");
    assert!(out.contains("1 still fail (invalid_json)"), "{out}");
    // `quiet` got no newer records: ingest has not committed past them.
    assert!(out.contains("2 decode now but lie beyond"), "{out}");
    let coords = "SELECT count(DISTINCT kafka_offset) FROM bronze.notes";
    assert_eq!(ws.count(notes).await, 7);
    assert_eq!(ws.count(coords).await, 7, "offsets 0..6, each once");
    let replayed_ops = "SELECT count(*) FROM bronze.notes WHERE op = 'c' AND kafka_offset < 4";
    assert_eq!(ws.count(replayed_ops).await, 4, "decoded like ingest does");

    // Again: nothing twice. Ingesting both files again: nothing twice either.
    let out = run(&ws, &["dlq", "replay"]);
    assert!(out.contains("4 already replayed before"), "{out}");
    assert!(!out.contains("replayed into"), "{out}");
    run(&ws, &["ingest", "--from", &a, "--from", &b]);
    assert_eq!(ws.count(notes).await, 7);
    assert_eq!(ws.count(dlq).await, 7, "the DLQ keeps its history");
    // Re-reading the file landed the `quiet` records (the file source re-reads what it is
    // given); a replay now finds them in their table and leaves them alone.
    assert_eq!(ws.count("SELECT count(*) FROM bronze.quiet").await, 2);
    let out = run(&ws, &["dlq", "replay"]);
    assert!(out.contains("6 already replayed before"), "{out}");
    assert_eq!(ws.count("SELECT count(*) FROM bronze.quiet").await, 2);

    // The recorded offsets are untouched by the replay: ingest resumes where it was.
    let c = write(&ws, "c.jsonl", &[keyless_line("notes", 7)]);
    run(&ws, &["ingest", "--from", &c]);
    assert_eq!(ws.count(notes).await, 8);
}

/// Two replays at once (a retried Airflow task beside a manual run): the table's commit check
/// makes the loser plan again, so every dead letter lands once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replays_at_once_land_each_dead_letter_once() {
    let ws = Workspace::new("");
    let tables = ["t1", "t2", "t3"];
    let mut lines = Vec::new();
    for t in tables {
        lines.extend((0..300).map(|o| keyless_line(t, o)));
    }
    let a = write(&ws, "a.jsonl", &lines);
    run(&ws, &["ingest", "--from", &a]);
    let text = std::fs::read_to_string(&ws.config_path).unwrap();
    std::fs::write(
        &ws.config_path,
        text.replace("table = \"$1\"", "table = \"$1\"\nkeyless = true"),
    )
    .unwrap();
    let later: Vec<String> = tables.iter().map(|t| keyless_line(t, 300)).collect();
    let b = write(&ws, "b.jsonl", &later);
    run(&ws, &["ingest", "--from", &b]);

    let spawn = || {
        ws.medallion_logging("info")
            .args(["dlq", "replay"])
            .output()
            .unwrap()
    };
    let (x, y) = std::thread::scope(|s| {
        let x = s.spawn(spawn);
        let y = s.spawn(spawn);
        (x.join().unwrap(), y.join().unwrap())
    });
    let text = |o: &Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    assert!(x.status.success(), "{}", text(&x));
    assert!(y.status.success(), "{}", text(&y));
    for t in tables {
        let rows = ws.count(&format!("SELECT count(*) FROM bronze.{t}")).await;
        let distinct = ws
            .count(&format!(
                "SELECT count(DISTINCT kafka_offset) FROM bronze.{t}"
            ))
            .await;
        assert_eq!(
            (rows, distinct),
            (301, 301),
            "{t}: {}\n{}",
            text(&x),
            text(&y)
        );
    }
    eprintln!("{}\n{}", text(&x), text(&y));
}
