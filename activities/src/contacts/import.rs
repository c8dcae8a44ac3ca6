//! Streaming import of register files. A parsing thread reads the file a line at a time and
//! hands batches of valid entries over a channel of two batches to the writer, which upserts
//! each batch in one transaction: memory stays bounded by two batches and one line, however
//! large the file. A bad line is reported by its number and skipped; only an unreadable file or
//! a failing database stops the import. Importing the same file twice leaves the same register.

use super::lines::{OrganizationCsvLine, OrganizationLine, PersonLine};
use super::records::{OrganizationRecord, PersonRecord};
use crate::store::Store;
use sea_orm::DbErr;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::str::FromStr;

/// Entries written a transaction.
pub const BATCH: usize = 1_000;
/// The longest NDJSON line read; a longer one is reported and skipped without being held.
pub const MAX_LINE: usize = 64 * 1024;
/// Bad lines kept in the summary (all are counted, and each is passed to the caller's sink).
pub const KEPT_ERRORS: usize = 1_000;

/// What a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactKind {
    /// Persons by national identity number.
    Persons,
    /// Organisations by organisation number.
    Organizations,
}

impl FromStr for ContactKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "persons" => Ok(Self::Persons),
            "organizations" | "organisations" => Ok(Self::Organizations),
            _ => Err(format!("'{s}' is not a kind of contact: persons or organizations")),
        }
    }
}

/// How a file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// Comma-separated, with a header row naming the fields.
    Csv,
    /// One JSON object a line.
    Ndjson,
}

impl FromStr for FileFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "csv" => Ok(Self::Csv),
            "ndjson" | "jsonl" => Ok(Self::Ndjson),
            _ => Err(format!("'{s}' is not a file format: csv or ndjson")),
        }
    }
}

impl FileFormat {
    /// The format a file name's extension says, if it says one.
    pub fn of_path(path: &std::path::Path) -> Option<Self> {
        path.extension()?.to_str()?.to_ascii_lowercase().parse().ok()
    }
}

/// A line that was not imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// 1-based line number in the file.
    pub line: u64,
    /// What is wrong with it.
    pub message: String,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportSummary {
    /// Entries written (a number given twice counts twice; the later line wins).
    pub imported: u64,
    /// Lines refused.
    pub rejected: u64,
    /// The first `KEPT_ERRORS` refused lines.
    pub errors: Vec<LineError>,
}

/// Why an import stopped before the end of its file.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file could not be read, or its CSV header is unusable.
    #[error("{0}")]
    File(String),
    /// The register could not be written; what was imported before stays.
    #[error("the register could not be written after {imported} entries: {source}")]
    Database {
        /// Entries written before.
        imported: u64,
        /// The database's error.
        source: DbErr,
    },
}

enum Record {
    Person(PersonRecord),
    Organization(OrganizationRecord),
}

impl Record {
    fn key(&self) -> &str {
        match self {
            Record::Person(p) => &p.nin,
            Record::Organization(o) => &o.org_no,
        }
    }
}

/// One batch from the parser: entries in file order with each number once (its last line), and
/// the lines refused meanwhile.
#[derive(Default)]
struct Batch {
    records: Vec<Record>,
    index: HashMap<String, usize>,
    lines: u64,
    errors: Vec<LineError>,
}

impl Batch {
    fn push(&mut self, r: Result<Record, LineError>) {
        match r {
            Ok(r) => {
                self.lines += 1;
                match self.index.get(r.key()) {
                    Some(&i) => self.records[i] = r,
                    None => {
                        self.index.insert(r.key().to_owned(), self.records.len());
                        self.records.push(r);
                    }
                }
            }
            Err(e) => self.errors.push(e),
        }
    }
    fn full(&self) -> bool {
        self.records.len() >= BATCH || self.errors.len() >= BATCH
    }
}

type Sender = tokio::sync::mpsc::Sender<Batch>;

/// Reads `reader` as `format` of `kind` into `store`, passing each refused line to `on_error`
/// as it is found.
pub async fn import<R: Read + Send + 'static>(
    store: &Store,
    kind: ContactKind,
    format: FileFormat,
    reader: R,
    mut on_error: impl FnMut(&LineError) + Send,
) -> Result<ImportSummary, ImportError> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Batch>(2);
    let parser = tokio::task::spawn_blocking(move || match format {
        FileFormat::Ndjson => parse_ndjson(kind, reader, &tx),
        FileFormat::Csv => parse_csv(kind, reader, &tx),
    });
    let mut summary = ImportSummary::default();
    while let Some(batch) = rx.recv().await {
        for e in batch.errors {
            on_error(&e);
            summary.rejected += 1;
            if summary.errors.len() < KEPT_ERRORS {
                summary.errors.push(e);
            }
        }
        let (mut persons, mut organizations) = (Vec::new(), Vec::new());
        for r in batch.records {
            match r {
                Record::Person(p) => persons.push((p.nin, p.contact)),
                Record::Organization(o) => organizations.push((o.org_no, o.contact)),
            }
        }
        let written = async {
            if !persons.is_empty() {
                store.upsert_persons(&persons).await?;
            }
            if !organizations.is_empty() {
                store.upsert_organizations(&organizations).await?;
            }
            Ok::<_, DbErr>(())
        }
        .await;
        // Dropping the receiver on an error stops the parser at its next batch.
        written.map_err(|source| ImportError::Database { imported: summary.imported, source })?;
        summary.imported += batch.lines;
    }
    match parser.await {
        Ok(result) => result.map(|()| summary),
        Err(e) => Err(ImportError::File(format!("the file's reader stopped: {e}"))),
    }
}

/// Sends the batch on and starts a new one; false when the writer has stopped.
fn flush(batch: &mut Batch, tx: &Sender) -> bool {
    tx.blocking_send(std::mem::take(batch)).is_ok()
}

fn parse_line(kind: ContactKind, line: &[u8]) -> Result<Record, String> {
    let json = |e: serde_json::Error| format!("not {} entry: {e}", kind_name(kind));
    match kind {
        ContactKind::Persons => {
            serde_json::from_slice::<PersonLine>(line).map_err(json)?.record().map(Record::Person)
        }
        ContactKind::Organizations => serde_json::from_slice::<OrganizationLine>(line)
            .map_err(json)?
            .record()
            .map(Record::Organization),
    }
}

fn kind_name(kind: ContactKind) -> &'static str {
    match kind {
        ContactKind::Persons => "a person",
        ContactKind::Organizations => "an organization",
    }
}

fn parse_ndjson<R: Read>(kind: ContactKind, reader: R, tx: &Sender) -> Result<(), ImportError> {
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    let mut buf = Vec::with_capacity(1024);
    let mut batch = Batch::default();
    let mut number = 0u64;
    loop {
        buf.clear();
        number += 1;
        let read = (&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|e| ImportError::File(format!("line {number}: {e}")))?;
        if read == 0 {
            break;
        }
        if buf.len() > MAX_LINE && buf.last() != Some(&b'\n') {
            skip_line(&mut reader).map_err(|e| ImportError::File(format!("line {number}: {e}")))?;
            batch.push(Err(LineError {
                line: number,
                message: format!("longer than {MAX_LINE} bytes"),
            }));
        } else {
            let line = buf.trim_ascii();
            if !line.is_empty() {
                batch.push(
                    parse_line(kind, line).map_err(|message| LineError { line: number, message }),
                );
            }
        }
        if batch.full() && !flush(&mut batch, tx) {
            return Ok(());
        }
    }
    flush(&mut batch, tx);
    Ok(())
}

/// Consumes the rest of an overlong line without keeping it.
fn skip_line<R: BufRead>(reader: &mut R) -> std::io::Result<()> {
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            return Ok(());
        }
        match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => {
                reader.consume(i + 1);
                return Ok(());
            }
            None => {
                let n = chunk.len();
                reader.consume(n);
            }
        }
    }
}

fn parse_csv<R: Read>(kind: ContactKind, reader: R, tx: &Sender) -> Result<(), ImportError> {
    let mut csv = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(reader);
    let headers = csv
        .headers()
        .map_err(|e| ImportError::File(format!("the CSV header cannot be read: {e}")))?
        .clone();
    let known: &[&str] = match kind {
        ContactKind::Persons => &[
            "nationalIdentityNumber",
            "name",
            "email",
            "mobileNumber",
            "isReserved",
            "lastUpdated",
        ],
        ContactKind::Organizations => {
            &["organizationNumber", "name", "emailList", "mobileNumberList"]
        }
    };
    if !headers.iter().any(|h| h == known[0]) {
        return Err(ImportError::File(format!(
            "the CSV header has no {} column (it has: {})",
            known[0],
            headers.iter().collect::<Vec<_>>().join(", ")
        )));
    }
    if let Some(unknown) = headers.iter().find(|h| !known.contains(h)) {
        return Err(ImportError::File(format!(
            "the CSV header names an unknown column '{unknown}' (known: {})",
            known.join(", ")
        )));
    }
    let mut batch = Batch::default();
    let mut record = csv::StringRecord::new();
    loop {
        let line = csv.position().line() + 1;
        match csv.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let line = record.position().map_or(line, |p| p.line());
                let parsed = match kind {
                    ContactKind::Persons => record
                        .deserialize::<PersonLine>(Some(&headers))
                        .map_err(|e| format!("not a person entry: {e}"))
                        .and_then(|l| l.record())
                        .map(Record::Person),
                    ContactKind::Organizations => record
                        .deserialize::<OrganizationCsvLine>(Some(&headers))
                        .map_err(|e| format!("not an organization entry: {e}"))
                        .and_then(|l| l.record())
                        .map(Record::Organization),
                };
                batch.push(parsed.map_err(|message| LineError { line, message }));
            }
            Err(e) if e.is_io_error() => {
                return Err(ImportError::File(format!("line {line}: {e}")));
            }
            // A row with the wrong number of fields, or not UTF-8: that row only.
            Err(e) => {
                let line = e.position().map_or(line, |p| p.line());
                batch.push(Err(LineError { line, message: format!("not a CSV row: {e}") }));
            }
        }
        if batch.full() && !flush(&mut batch, tx) {
            return Ok(());
        }
    }
    flush(&mut batch, tx);
    Ok(())
}
