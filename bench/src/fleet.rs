//! varsel as separate processes, as in production: one `varsel api` and N `varsel worker`
//! processes on a task queue of their own, sharing the benchmark's Temporal server and database.
//! The scaling and order-size phases run on fleets, and `--workers N` runs every phase on one.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use varsel_api::config::Config;

/// The `varsel` binary beside this one (`cargo build --release` builds both).
pub fn varsel_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?.with_file_name("varsel");
    anyhow::ensure!(
        exe.exists(),
        "{} is missing: build it beside varsel-bench with `cargo build --release -p varsel-api -p varsel-bench`",
        exe.display()
    );
    Ok(exe)
}

/// Running `varsel` processes; killed when dropped.
pub struct Fleet {
    /// The API's base URL (`http://127.0.0.1:PORT`); `None` when the fleet has no API.
    pub api: Option<String>,
    processes: Vec<(String, Child)>,
}

impl Fleet {
    /// Starts `workers` worker processes and, if `api`, an API process, all configured as `cfg`
    /// (written to a `VARSEL_CONFIG` file in `dir`); returns once each says it is ready.
    pub async fn start(
        cfg: &Config,
        api: bool,
        workers: usize,
        dir: &Path,
    ) -> anyhow::Result<Self> {
        let exe = varsel_binary()?;
        let mut fleet = Self { api: None, processes: Vec::new() };
        let mut ready = Vec::new();
        if api {
            let port = varsel_api::devserver::free_port()?;
            let mut c = cfg.clone();
            c.run_api = true;
            c.run_worker = false;
            c.http.listen = format!("127.0.0.1:{port}");
            fleet.spawn(&exe, &c, "api", dir)?;
            let base = format!("http://127.0.0.1:{port}");
            ready.push(format!("{base}/health/ready"));
            fleet.api = Some(base);
        }
        for _ in 0..workers {
            let port = varsel_api::devserver::free_port()?;
            let mut c = cfg.clone();
            c.run_api = false;
            c.run_worker = true;
            c.worker_metrics_listen = format!("127.0.0.1:{port}");
            fleet.spawn(&exe, &c, "worker", dir)?;
            ready.push(format!("http://127.0.0.1:{port}/health/ready"));
        }
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        for url in ready {
            loop {
                let ok = http.get(&url).send().await.is_ok_and(|r| r.status().is_success());
                if ok {
                    break;
                }
                anyhow::ensure!(Instant::now() < deadline, "{url} not ready in 60 s");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(fleet)
    }

    fn spawn(&mut self, exe: &Path, cfg: &Config, role: &str, dir: &Path) -> anyhow::Result<()> {
        let name = format!("{role}-{}", uuid::Uuid::new_v4().simple());
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(&config, toml::to_string(cfg)?)?;
        let log = std::fs::File::create(dir.join(format!("{name}.log")))?;
        let child = Command::new(exe)
            .arg(role)
            .env("VARSEL_CONFIG", &config)
            .env("VARSEL_LOG", "warn")
            .env_remove("TEMPORAL_ADDRESS")
            .env_remove("TEMPORAL_NAMESPACE")
            .env_remove("VARSEL_DATABASE_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        self.processes.push((role.to_owned(), child));
        Ok(())
    }

    /// The peak resident memory of each worker process so far, MiB (Linux's `VmHWM`).
    pub fn worker_peak_rss_mib(&self) -> Vec<f64> {
        self.processes
            .iter()
            .filter(|(role, _)| role == "worker")
            .filter_map(|(_, child)| peak_rss_mib(child.id()))
            .collect()
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for (_, child) in &mut self.processes {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A process's peak resident memory, MiB, from `/proc/PID/status` (`None` elsewhere than Linux).
pub fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

/// Each `varsel.order.send_slice` attempt of an order's history (Temporal's JSON): the worker
/// that ran it, and when it started and ended (Temporal's event times, Unix milliseconds).
pub fn slice_runs(history: &serde_json::Value) -> Vec<(String, i64, i64)> {
    let events = history["events"].as_array().cloned().unwrap_or_default();
    let attrs = |e: &serde_json::Value, kind: &str| e["attributes"].get(kind).cloned();
    let time = |e: &serde_json::Value| {
        e["event_time"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map_or(0, |t| t.timestamp_millis())
    };
    let slices: std::collections::HashSet<i64> = events
        .iter()
        .filter(|e| {
            attrs(e, "ActivityTaskScheduledEventAttributes")
                .is_some_and(|a| a["activity_type"]["name"] == "varsel.order.send_slice")
        })
        .filter_map(|e| e["event_id"].as_i64())
        .collect();
    let mut started = std::collections::HashMap::new();
    let mut runs = Vec::new();
    for e in &events {
        if let Some(a) = attrs(e, "ActivityTaskStartedEventAttributes")
            && a["scheduled_event_id"].as_i64().is_some_and(|id| slices.contains(&id))
        {
            let worker = a["identity"].as_str().unwrap_or_default().to_owned();
            started.insert(e["event_id"].as_i64().unwrap_or_default(), (worker, time(e)));
        }
        if let Some(a) = attrs(e, "ActivityTaskCompletedEventAttributes")
            && let Some((worker, from)) = started.get(&a["started_event_id"].as_i64().unwrap_or(0))
        {
            runs.push((worker.clone(), *from, time(e)));
        }
    }
    runs
}
