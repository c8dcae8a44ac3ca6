//! `varsel contacts`: loading the embedded contact register from files and writing it out.

use clap::{Args, Subcommand};
use futures::StreamExt;
use std::io::Write;
use std::path::PathBuf;
use varsel_activities::Store;
use varsel_activities::contacts::export::export;
use varsel_activities::contacts::import::{ContactKind, FileFormat, import};

/// What `varsel contacts` does.
#[derive(Subcommand)]
pub enum ContactsCommand {
    /// Load CSV or NDJSON files into the register, upserting by number. Bad lines are reported
    /// on stderr by number and skipped; the import goes on. Importing a file again leaves the
    /// same register.
    Import(ImportArgs),
    /// Write the register out as NDJSON, in number order (what `import` reads).
    Export {
        /// `persons` or `organizations`.
        #[arg(long)]
        kind: ContactKind,
        /// Write here instead of stdout.
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

/// The files of an import.
#[derive(Args)]
pub struct ImportArgs {
    /// `persons` or `organizations`.
    #[arg(long)]
    kind: ContactKind,
    /// `csv` or `ndjson`; by default each file's extension (.csv, .ndjson, .jsonl) says.
    #[arg(long)]
    format: Option<FileFormat>,
    /// The files (`-` is stdin, which needs --format).
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

/// Runs a `varsel contacts` command against `store`.
pub async fn run(store: &Store, command: ContactsCommand) -> anyhow::Result<()> {
    match command {
        ContactsCommand::Import(args) => import_files(store, args).await,
        ContactsCommand::Export { kind, output } => {
            let mut out: Box<dyn Write> = match &output {
                Some(path) => Box::new(std::io::BufWriter::new(std::fs::File::create(path)?)),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            let mut chunks = std::pin::pin!(export(store.clone(), kind));
            while let Some(chunk) = chunks.next().await {
                out.write_all(&chunk?)?;
            }
            out.flush()?;
            Ok(())
        }
    }
}

async fn import_files(store: &Store, args: ImportArgs) -> anyhow::Result<()> {
    let noun = match args.kind {
        ContactKind::Persons => "persons",
        ContactKind::Organizations => "organizations",
    };
    for path in &args.files {
        let shown = path.display().to_string();
        let format = args.format.or_else(|| FileFormat::of_path(path)).ok_or_else(|| {
            anyhow::anyhow!("{shown}: say --format csv or --format ndjson (the name does not)")
        })?;
        let reader: Box<dyn std::io::Read + Send> = if shown == "-" {
            Box::new(std::io::stdin())
        } else {
            Box::new(std::fs::File::open(path).map_err(|e| anyhow::anyhow!("{shown}: {e}"))?)
        };
        let started = std::time::Instant::now();
        let summary = import(store, args.kind, format, reader, |e| {
            eprintln!("{shown}: line {}: {}", e.line, e.message);
        })
        .await
        .map_err(|e| anyhow::anyhow!("{shown}: {e}"))?;
        let secs = started.elapsed().as_secs_f64();
        println!(
            "{shown}: imported {} {noun}, refused {} lines ({:.1} s, {:.0}/s)",
            summary.imported,
            summary.rejected,
            secs,
            summary.imported as f64 / secs.max(1e-9)
        );
    }
    Ok(())
}
