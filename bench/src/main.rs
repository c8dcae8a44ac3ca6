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
    /// looked up in a KRR stand-in answering in 20 ms against the embedded register), scale
    /// (one order of --scale-recipients by each of --scale-workers worker processes, to a relay
    /// answering after --relay-delay-ms) and sizes (one order of each of --sizes, by a worker
    /// process each: notifications/s and peak memory), console (the operator console's page of a
    /// --recipients order against that of a one-recipient order) and search (the operator's order
    /// search over --search-orders seeded orders against a search by id).
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
    /// Run the workers as N processes of their own (`varsel worker`, built beside this binary)
    /// for every phase; 0 runs the worker in this process, beside the API.
    #[arg(long, default_value_t = 0)]
    workers: usize,
    /// How long the scale phase's relay takes to answer each message, milliseconds.
    #[arg(long, default_value_t = 50)]
    relay_delay_ms: u64,
    /// Worker processes the scale phase sends one order with, in turn.
    #[arg(long, default_value = "1,2,4", value_delimiter = ',')]
    scale_workers: Vec<usize>,
    /// Recipients of the scale phase's order (slices of 250, 4 a worker in flight).
    #[arg(long, default_value_t = 20_000)]
    scale_recipients: u32,
    /// Order sizes of the sizes phase.
    #[arg(long, default_value = "10000,100000,1000000", value_delimiter = ',')]
    sizes: Vec<u32>,
    /// Orders the search phase seeds (in one statement) and searches.
    #[arg(long, default_value_t = 1_000_000)]
    search_orders: u64,
    /// The database: sqlite (a file) or postgres (a fresh database on --postgres-url's server,
    /// dropped afterwards). VARSEL_DATABASE_URL overrides both.
    #[arg(long, default_value = "sqlite")]
    database: String,
    /// A PostgreSQL server where the user may create databases.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres_url: String,
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
        workers: args.workers,
        relay_delay_ms: args.relay_delay_ms,
        scale_workers: args.scale_workers,
        scale_recipients: args.scale_recipients,
        sizes: args.sizes,
        search_orders: args.search_orders,
        database: args.database,
        postgres_url: args.postgres_url,
    };
    match rt.block_on(varsel_bench::run(opts)) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
