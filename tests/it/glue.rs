//! The S3 warehouse and the Glue catalog against real servers (SeaweedFS, moto server): what
//! Athena needs in every Glue table, the pointer swap refusing a stale writer, a foreign Glue
//! table left alone, large files through multipart uploads and ranged reads, and refused
//! credentials failing fast with the S3 location named.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

use bytes::Bytes;
use medallion::bronze::schema;
use medallion::catalog::{CatalogError, Pointer, TableName};
use medallion::config::{S3Config, TimePartition};
use medallion::lake::Change;

use crate::pyiceberg::python;
use crate::support::{Backend, Workspace, aws_services, fixture_event_files};

/// Runs `tests/glue_check.py` over the workspace's databases of `layers`; panics with its
/// output on any problem. Returns the Iceberg types it saw.
pub fn glue_check(ws: &Workspace, layers: &[&str]) -> BTreeSet<String> {
    assert_eq!(ws.backend, Backend::S3Glue);
    let aws = aws_services();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(python())
        .arg(root.join("tests/glue_check.py"))
        .args(["--glue-endpoint", &aws.glue_endpoint])
        .args(["--s3-endpoint", &aws.s3_endpoint])
        .arg("--readme")
        .arg(root.join("README.md"))
        .args(layers.iter().map(|l| ws.ns(l)))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("Athena-ready"),
        "Glue tables are not what Athena needs:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("types: "))
        .expect("glue_check prints the types it saw")
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

fn glue_client() -> aws_sdk_glue::Client {
    let aws = aws_services();
    let conf = aws_sdk_glue::Config::builder()
        .behavior_version(aws_sdk_glue::config::BehaviorVersion::latest())
        .region(aws_sdk_glue::config::Region::new("us-east-1"))
        .endpoint_url(aws.glue_endpoint)
        .credentials_provider(aws_sdk_glue::config::Credentials::new(
            "test", "test", None, None, "test",
        ))
        .build();
    aws_sdk_glue::Client::from_conf(conf)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_writer_cannot_move_the_glue_pointer() {
    let ws = Workspace::on_backend(Backend::S3Glue, "");
    let lake = ws.lake();
    let name = TableName::new(ws.ns("bronze"), "race");
    let s = schema::dlq_schema();
    let spec = schema::partition_spec(&s, TimePartition::Day);
    let created = lake
        .load_or_create(&name, s, spec, Default::default())
        .await
        .unwrap();
    let stale = created.pointer.clone();
    assert!(stale.version.is_some(), "Glue gives a VersionId: {stale:?}");

    // Another writer commits.
    let moved = lake
        .commit_with_retry(&name, |_| {
            Ok(Some(Change::append(
                vec![],
                BTreeMap::from([("medallion.writer".to_string(), "other".to_string())]),
            )))
        })
        .await
        .unwrap()
        .expect("committed");
    let now = lake.catalog().load(&name).await.unwrap().unwrap();
    assert_eq!(now.metadata_location, moved.pointer.metadata_location);
    assert_ne!(now.metadata_location, stale.metadata_location);
    assert_ne!(
        now.version, stale.version,
        "UpdateTable gives a new VersionId"
    );

    // The writer that loaded before that commit is refused, by location and by VersionId.
    let bogus = format!(
        "{}/metadata/99999-bogus.metadata.json",
        created.metadata().location()
    );
    for expected in [
        stale.clone(),
        Pointer {
            metadata_location: now.metadata_location.clone(),
            version: stale.version.clone(),
        },
    ] {
        let err = lake
            .catalog()
            .swap(&name, &expected, &bogus, created.metadata())
            .await
            .unwrap_err();
        assert!(
            matches!(err, CatalogError::Conflict { .. }) && err.is_retryable(),
            "{err}"
        );
    }
    assert_eq!(
        lake.catalog().load(&name).await.unwrap().unwrap(),
        now,
        "a refused swap leaves the pointer where it was"
    );

    // The stale writer's next commit through the commit layer reloads and lands after it.
    let t = lake
        .commit_with_retry(&name, |t| {
            assert_eq!(t.summary_property("medallion.writer"), Some("other"));
            Ok(Some(Change::append(
                vec![],
                BTreeMap::from([("medallion.writer".to_string(), "me".to_string())]),
            )))
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(t.metadata().snapshots().count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_glue_table_that_is_not_iceberg_is_left_alone() {
    let ws = Workspace::on_backend(Backend::S3Glue, "");
    let lake = ws.lake();
    let db = ws.ns("bronze");
    lake.catalog()
        .ensure_namespace(&db, &lake.namespace_location(&db))
        .await
        .unwrap();
    glue_client()
        .create_table()
        .database_name(&db)
        .table_input(
            aws_sdk_glue::types::TableInput::builder()
                .name("users")
                .table_type("EXTERNAL_TABLE")
                .parameters("classification", "csv")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let err = lake
        .load(&TableName::new(&db, "users"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("not an Iceberg table") && err.contains("users"),
        "{err}"
    );
    // Ingest stops with that message instead of overwriting the table.
    let (_, fixture) = fixture_event_files()
        .into_iter()
        .find(|(s, _)| s == "pg-ecommerce/schemas")
        .unwrap();
    let (code, _, stderr) = ws.run(&["ingest", "--from", fixture.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(stderr.contains("not an Iceberg table"), "{stderr}");
    let t = glue_client()
        .get_table()
        .database_name(&db)
        .name("users")
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    assert_eq!(t.table_type.as_deref(), Some("EXTERNAL_TABLE"));
    assert_eq!(
        t.parameters,
        Some(std::collections::HashMap::from([(
            "classification".to_string(),
            "csv".to_string()
        )])),
        "the foreign table is untouched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_files_go_through_multipart_uploads_and_ranged_reads() {
    let aws = aws_services();
    let (io, _) = medallion::lake::s3::open(&S3Config {
        endpoint: Some(aws.s3_endpoint.clone()),
        region: Some("us-east-1".into()),
        path_style: true,
        ..Default::default()
    });
    let location = format!(
        "s3://{}/{}/large.bin",
        aws.bucket,
        uuid::Uuid::new_v4().simple()
    );
    // 20 MiB in 1 MiB pieces: more than the 8 MiB buffer, so a multipart upload.
    let piece = |i: u8| Bytes::from(vec![i; 1 << 20]);
    let out = io.new_output(&location).unwrap();
    let mut w = out.writer().await.unwrap();
    for i in 0..20u8 {
        w.write(piece(i)).await.unwrap();
    }
    w.close().await.unwrap();

    let input = io.new_input(&location).unwrap();
    assert!(input.exists().await.unwrap());
    assert_eq!(input.metadata().await.unwrap().size, 20 << 20);
    let r = input.reader().await.unwrap();
    // A range across the boundary of pieces 7 and 8.
    let got = r.read((8 << 20) - 3..(8 << 20) + 5).await.unwrap();
    assert_eq!(&got[..], &[7, 7, 7, 8, 8, 8, 8, 8]);
    let all = input.read().await.unwrap();
    assert_eq!(all.len(), 20 << 20);
    assert!(
        all.chunks(1 << 20)
            .enumerate()
            .all(|(i, c)| c.iter().all(|b| *b == i as u8))
    );

    io.delete(&location).await.unwrap();
    assert!(!io.exists(&location).await.unwrap());
    io.delete(&location).await.unwrap(); // deleting what is gone is fine

    // Keys as Iceberg writes them (partition values with `=`, spaces, `+`, `%`) arrive in S3
    // exactly as named, not encoded twice.
    let dir = uuid::Uuid::new_v4().simple().to_string();
    let odd = format!("s3://{}/{dir}/day=2026-01-01/a b+c%20.parquet", aws.bucket);
    io.new_output(&odd)
        .unwrap()
        .write(Bytes::from_static(b"x"))
        .await
        .unwrap();
    let listed = Command::new(python())
        .args(["-c", "import sys, boto3; print('\\n'.join(o['Key'] for o in boto3.client('s3', endpoint_url=sys.argv[1], region_name='us-east-1').list_objects_v2(Bucket=sys.argv[2], Prefix=sys.argv[3])['Contents']))"])
        .args([&aws.s3_endpoint, &aws.bucket, &dir])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&listed.stdout).trim(),
        format!("{dir}/day=2026-01-01/a b+c%20.parquet"),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    assert_eq!(&io.new_input(&odd).unwrap().read().await.unwrap()[..], b"x");
    let err = io.new_input(&location).unwrap().read().await.unwrap_err();
    assert!(err.to_string().contains(&location), "{err}");
    assert!(
        !err.retryable(),
        "a missing object is not worth retrying: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_or_missing_s3_credentials_fail_at_once_naming_the_location() {
    // A budget long enough that a retried failure would show: as a "retrying" warning, and as
    // exit code 75 (retryable) instead of 1.
    let ws = Workspace::on_backend(Backend::S3Glue, "[retry]\nmax_elapsed = \"1m\"\n");
    let (_, fixture) = fixture_event_files()
        .into_iter()
        .find(|(s, _)| s == "pg-ecommerce/schemas")
        .unwrap();
    let empty_home = tempfile::tempdir().unwrap();
    let run = |strip: bool| {
        let mut c = ws.medallion_logging("warn,medallion=debug");
        c.args(["ingest", "--from", fixture.to_str().unwrap()]);
        if strip {
            // Nothing anywhere in the chain: no keys, no profile, no instance metadata.
            c.env_remove("AWS_ACCESS_KEY_ID")
                .env_remove("AWS_SECRET_ACCESS_KEY")
                .env("HOME", empty_home.path())
                .env("AWS_EC2_METADATA_DISABLED", "true");
        } else {
            c.env("AWS_SECRET_ACCESS_KEY", "not-the-secret");
        }
        c.output().unwrap()
    };
    for (strip, says) in [(false, "s3://"), (true, "no AWS credentials")] {
        let out = run(strip);
        let stderr = String::from_utf8_lossy(&out.stderr);
        // The error (after the debug log), which may span lines (S3's XML answer).
        let last = &stderr[stderr.rfind("\nerror: ").unwrap_or(0)..];
        assert_eq!(out.status.code(), Some(1), "not retryable: {last}");
        assert!(last.contains(says), "the error says why and where: {last}");
        assert!(
            !stderr.contains("retrying"),
            "refused credentials are not retried: {stderr}"
        );
    }
}
