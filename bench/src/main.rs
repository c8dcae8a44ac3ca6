//! `varsel-bench`: measure varsel on the embedded stack, each figure against a baseline from the
//! same run (see docs/benchmark.md).

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

/// Measure varsel on the embedded stack, each figure against a baseline from the same run.
///
/// Starts a Temporal dev server (unless TEMPORAL_ADDRESS names one), a SQLite database (unless
/// VARSEL_DATABASE_URL names one), an SMTP sink, and the API and worker; prints a table and
/// writes it as JSON.
#[derive(Parser)]
#[command(name = "varsel-bench", version)]
struct Args {
    /// Recipients of the bulk order.
    #[arg(long, default_value_t = 100_000)]
    recipients: u32,
    /// Orders of the small-order phase.
    #[arg(long, default_value_t = 500)]
    small_orders: u32,
    /// Seconds each accept measurement runs.
    #[arg(long, default_value_t = 10)]
    accept_seconds: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Phases, comma-separated: accept, small, bulk, and, not run by default, load (80% of the
    /// highest accept rate for --load-seconds, then every order to its final status), instant
    /// (instant emails against lettre's sends, --accept-seconds each), import (--import-persons
    /// persons from an NDJSON file against upserts from memory) and krr (--recipients persons
    /// looked up in a KRR stand-in answering in 20 ms against the embedded register).
    #[arg(long, default_value = "accept,small,bulk", value_delimiter = ',')]
    phases: Vec<String>,
    /// Persons in the import phase's file.
    #[arg(long, default_value_t = 1_000_000)]
    import_persons: usize,
    /// Seconds the load phase offers orders.
    #[arg(long, default_value_t = 60)]
    load_seconds: u64,
    /// Where the JSON result goes.
    #[arg(long, default_value = "bench.json")]
    json: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    // The table and progress bars would drown in per-notification lines.
    let format = varsel_api::Config::load().map(|c| c.log_format).unwrap_or_default();
    varsel_api::cli::init_tracing(format, "warn");
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let opts = varsel_bench::BenchOptions {
        recipients: args.recipients,
        small_orders: args.small_orders,
        accept_secs: args.accept_seconds,
        clients: args.clients,
        phases: args.phases,
        import_persons: args.import_persons,
        load_secs: args.load_seconds,
        json_out: args.json,
    };
    match rt.block_on(varsel_bench::run(opts)) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
