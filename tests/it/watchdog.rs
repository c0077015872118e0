//! A hung test fails loudly and says where it hung. Every workspace starts a watchdog; if the
//! workspace is still alive past its time limit, the watchdog prints every thread's stack of the
//! test process and of each child process (gdb for native programs, py-spy for Python, the
//! kernel's view otherwise), writes the same report to `$MEDALLION_TEST_HANGS/<test>.txt` when
//! that is set (CI prints those files last), and aborts the process, which fails the test.

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The limit of one workspace: `MEDALLION_TEST_TIMEOUT` seconds, else 600 s.
pub fn default_limit() -> Duration {
    let secs = std::env::var("MEDALLION_TEST_TIMEOUT")
        .ok()
        .map(|s| {
            s.parse()
                .unwrap_or_else(|_| panic!("MEDALLION_TEST_TIMEOUT={s}: not a number of seconds"))
        })
        .unwrap_or(600);
    Duration::from_secs(secs)
}

/// The last steps tests marked (`step`), newest last: the hang report starts with them, since
/// an async task's stack shows little more than the executor.
static STEPS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Marks what the test does next, for the hang report.
pub fn step(what: impl Into<String>) {
    let mut steps = STEPS.lock().unwrap_or_else(|p| p.into_inner());
    if steps.len() == 20 {
        steps.remove(0);
    }
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    steps.push(format!("[unix {}] {}", at.as_secs(), what.into()));
}

/// Stops watching when dropped.
pub struct Watchdog {
    done: Arc<(Mutex<bool>, Condvar)>,
}

impl Watchdog {
    pub fn start(limit: Duration) -> Watchdog {
        let done = Arc::new((Mutex::new(false), Condvar::new()));
        let test = test_name();
        let watched = done.clone();
        std::thread::Builder::new()
            .name("watchdog".into())
            .spawn(move || {
                let deadline = Instant::now() + limit;
                let (lock, cv) = &*watched;
                let mut finished = lock.lock().unwrap();
                while !*finished {
                    let now = Instant::now();
                    if now >= deadline {
                        drop(finished);
                        hung(&test, limit);
                    }
                    finished = cv.wait_timeout(finished, deadline - now).unwrap().0;
                }
            })
            .expect("start the watchdog thread");
        Watchdog { done }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        let (lock, cv) = &*self.done;
        *lock.lock().unwrap_or_else(|p| p.into_inner()) = true;
        cv.notify_all();
    }
}

/// libtest names a test's thread after the test; nextest runs one test per process.
fn test_name() -> String {
    match std::thread::current().name() {
        Some(name) if name != "main" => name.to_string(),
        _ => std::env::var("NEXTEST_TEST_NAME")
            .ok()
            .or_else(|| std::env::args().skip(1).find(|a| !a.starts_with('-')))
            .unwrap_or_else(|| "unknown-test".to_string()),
    }
}

fn hung(test: &str, limit: Duration) -> ! {
    let me = std::process::id();
    let steps = STEPS.lock().unwrap_or_else(|p| p.into_inner()).join("\n");
    let children = descendants(me);
    // A summary first (what CI's log tail shows), native stacks after it.
    let mut report = format!(
        "HUNG: {test} was still running after {} s (MEDALLION_TEST_TIMEOUT).\n\
         Its last steps:\n{steps}\nIts child processes: {}\n",
        limit.as_secs(),
        children.len()
    );
    let mut details = format!("\n== the test process {me}\n{}", native_stacks(me));
    for (pid, cmdline) in &children {
        let short: String = cmdline.chars().take(300).collect();
        report.push_str(&format!("- {pid}: {short}\n"));
        let program = cmdline.split(' ').next().unwrap_or_default();
        if program.contains("python") {
            report.push_str(&python_stacks(*pid));
        } else if program.contains("java") {
            report.push_str(&kernel_view(*pid));
        } else {
            details.push_str(&format!(
                "\n== child {pid}: {short}\n{}",
                native_stacks(*pid)
            ));
        }
    }
    report.push_str(&details);
    eprintln!("{report}");
    if let Ok(dir) = std::env::var("MEDALLION_TEST_HANGS") {
        let _ = std::fs::create_dir_all(&dir);
        let file = PathBuf::from(dir).join(format!("{}.txt", test.replace("::", "__")));
        let _ = std::fs::write(file, &report);
    }
    std::process::abort();
}

fn output(cmd: &mut Command) -> String {
    match cmd.output() {
        Ok(out) => format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => format!("({cmd:?} failed: {e})\n"),
    }
}

fn native_stacks(pid: u32) -> String {
    output(
        Command::new("timeout")
            .args(["120", "gdb", "-p", &pid.to_string(), "-batch", "-nx", "-q"])
            .args(["-ex", "set pagination off", "-ex", "thread apply all bt"]),
    )
}

fn python_stacks(pid: u32) -> String {
    let py_spy = std::env::var("MEDALLION_PYTHON")
        .map(|p| PathBuf::from(p).with_file_name("py-spy"))
        .unwrap_or_else(|_| PathBuf::from("py-spy"));
    output(
        Command::new("timeout")
            .arg("60")
            .arg(py_spy)
            .args(["dump", "--pid", &pid.to_string()]),
    ) + &kernel_view(pid)
}

fn kernel_view(pid: u32) -> String {
    let read = |f: &str| std::fs::read_to_string(format!("/proc/{pid}/{f}")).unwrap_or_default();
    format!("wchan: {}\nkernel stack:\n{}", read("wchan"), read("stack"))
}

/// Every process below `root`, parents before children, with its command line.
fn descendants(root: u32) -> Vec<(u32, String)> {
    let mut parent_of = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // The command name may hold spaces and parentheses: fields follow the last ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            parent_of.push((pid, ppid));
        }
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let p = found[i];
        found.extend(
            parent_of
                .iter()
                .filter(|(_, ppid)| *ppid == p)
                .map(|(pid, _)| *pid),
        );
        i += 1;
    }
    found
        .into_iter()
        .skip(1)
        .map(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            (pid, cmdline.trim().to_string())
        })
        .collect()
}
