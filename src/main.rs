//! The `medallion` binary: parse the command line, start logging, run, map errors to exit codes.

use clap::Parser;
use medallion::cli::{self, Cli};

fn main() {
    tune_allocator();
    let cli = Cli::parse();
    if matches!(cli.command, cli::Command::Silver(_)) {
        tune_allocator_for_batch();
    }
    init_logging(&cli.log, cli.log_json);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("start the tokio runtime");
    let result = runtime.block_on(cli::run(cli));
    if let Err(e) = result {
        let mut msg = format!("error: {e}");
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            let text = s.to_string();
            if !msg.contains(&text) {
                msg.push_str(&format!("\n  caused by: {text}"));
            }
            source = s.source();
        }
        eprintln!("{msg}");
        std::process::exit(e.exit_code());
    }
}

fn init_logging(filter: &str, json: bool) {
    // rdkafka's consumer Drop logs an error when the consumer was already closed (we close it
    // ourselves, with a deadline): noise, not a problem.
    let filter = format!("{filter},rdkafka::consumer::base_consumer=off");
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only for people: not in files, pipes or log collectors.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if json {
        builder.json().init();
    } else {
        builder.compact().init();
    }
}

/// Large buffers (a batch's columns, Parquet pages) come and go on different threads; glibc
/// serves allocations below its dynamic mmap threshold (up to 32 MiB) from heaps that it rarely
/// gives back, so the resident set drifts far above what is live (~350 MB instead of ~260 MB
/// for 1 KB events with 64 MiB batches, measured). A fixed threshold of 4 MiB maps every
/// large buffer on its own and returns it to the kernel on free.
fn tune_allocator() {
    set_malloc_option("MALLOC_MMAP_THRESHOLD_", M_MMAP_THRESHOLD, 4 << 20);
}

/// Silver is a batch job that allocates and frees a lot of mid-sized memory (Parquet pages,
/// decoded values) on every core. glibc's default trim threshold (128 KiB once the mmap
/// threshold is fixed) hands freed heap tops back to the kernel at once, only to fault them
/// in again: on the 10M-event silver benchmark that was ~5 s of system CPU of ~30 s. Keeping
/// up to 256 MiB per heap top (and growing heaps by 64 MiB) cuts it to ~2 s, for a few
/// percent more peak memory.
fn tune_allocator_for_batch() {
    set_malloc_option("MALLOC_TRIM_THRESHOLD_", M_TRIM_THRESHOLD, 256 << 20);
    set_malloc_option("MALLOC_TOP_PAD_", M_TOP_PAD, 64 << 20);
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
use libc::{M_MMAP_THRESHOLD, M_TOP_PAD, M_TRIM_THRESHOLD};
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
const M_MMAP_THRESHOLD: i32 = 0;
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
const M_TRIM_THRESHOLD: i32 = 0;
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
const M_TOP_PAD: i32 = 0;

/// Sets a glibc malloc parameter, unless its environment variable (`env`) is set: that wins.
/// Called before the runtime starts any thread.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn set_malloc_option(env: &str, param: i32, value: i32) {
    if std::env::var_os(env).is_none() {
        // SAFETY: mallopt only changes allocator parameters; it is called before any other
        // thread exists, with a valid parameter and value.
        unsafe {
            libc::mallopt(param, value);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_malloc_option(_env: &str, _param: i32, _value: i32) {}
