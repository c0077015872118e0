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
/// large buffer on its own and returns it to the kernel on free. `MALLOC_MMAP_THRESHOLD_` in
/// the environment still wins.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn tune_allocator() {
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
        // SAFETY: mallopt only changes allocator parameters; it is called before any other
        // thread exists, with a valid parameter and value.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}

/// Silver is a batch job that allocates and frees a lot of mid-sized memory (Parquet pages,
/// decoded values) on every core. glibc's default trim threshold (128 KiB once the mmap
/// threshold is fixed) hands freed heap tops back to the kernel at once, only to fault them
/// in again: on the 10M-event silver benchmark that was ~5 s of system CPU of ~30 s. Keeping
/// up to 256 MiB per heap top (and growing heaps by 64 MiB) cuts it to ~2 s, for a few
/// percent more peak memory. `MALLOC_TRIM_THRESHOLD_` / `MALLOC_TOP_PAD_` still win.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn tune_allocator_for_batch() {
    if std::env::var_os("MALLOC_TRIM_THRESHOLD_").is_none() {
        // SAFETY: mallopt only changes allocator parameters, with valid parameters and values;
        // no other thread exists yet (the runtime starts after this).
        unsafe {
            libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
        }
    }
    if std::env::var_os("MALLOC_TOP_PAD_").is_none() {
        // SAFETY: as above.
        unsafe {
            libc::mallopt(libc::M_TOP_PAD, 64 << 20);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator_for_batch() {}
