//! Export of the embedded register as the NDJSON an import reads, a page at a time in key order,
//! so that memory stays bounded by one page however large the register.

use super::import::ContactKind;
use super::lines::{OrganizationLine, PersonLine};
use crate::store::Store;
use futures::Stream;
use sea_orm::DbErr;

/// Entries read a query.
pub const PAGE: u64 = 1_000;

/// The register's entries of `kind` as NDJSON, one chunk a page; it ends at the first empty page.
pub fn export(store: Store, kind: ContactKind) -> impl Stream<Item = Result<Vec<u8>, DbErr>> {
    // The state is the last key written (`None` before the first page).
    futures::stream::try_unfold(None::<String>, move |after| {
        let store = store.clone();
        async move {
            let (chunk, last) = page(&store, kind, after.as_deref()).await?;
            Ok(last.map(|last| (chunk, Some(last))))
        }
    })
}

/// One page after `after`: its NDJSON and its last key (`None` when the page is empty).
async fn page(
    store: &Store,
    kind: ContactKind,
    after: Option<&str>,
) -> Result<(Vec<u8>, Option<String>), DbErr> {
    let mut out = Vec::new();
    let last = match kind {
        ContactKind::Persons => {
            let rows = store.persons_after(after, PAGE).await?;
            for (nin, contact) in &rows {
                push_line(&mut out, &PersonLine::of(nin, contact));
            }
            rows.last().map(|(k, _)| k.clone())
        }
        ContactKind::Organizations => {
            let rows = store.organizations_after(after, PAGE).await?;
            for (org_no, contact) in &rows {
                push_line(&mut out, &OrganizationLine::of(org_no, contact));
            }
            rows.last().map(|(k, _)| k.clone())
        }
    };
    Ok((out, last))
}

fn push_line<T: serde::Serialize>(out: &mut Vec<u8>, line: &T) {
    serde_json::to_writer(&mut *out, line).expect("a line serialises");
    out.push(b'\n');
}
