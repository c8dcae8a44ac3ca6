//! Where contact details come from, one port a kind: persons (by national identity number) and
//! organisations (by organisation number). The embedded register answers both by default; a
//! deployment may look persons up in KRR instead (`krr.rs`). A source that cannot answer
//! (unreachable, 5xx, its database down) returns an error and the caller retries: a recipient is
//! never "not identified" because a source was down. A number the source does not know is
//! absent from its answer.

use crate::store::{OrgContact, PersonContact, Store};
use chrono::{DateTime, Months, Utc};
use std::collections::HashMap;
use std::sync::Arc;

/// KRR's rule: contact details neither changed nor confirmed for this long are not used for
/// notifications unless the order allows stale contact information.
pub const STALE_AFTER: Months = Months::new(18);

/// A source could not answer; the lookup is worth retrying.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the {source_name} lookup failed: {reason}")]
pub struct LookupError {
    /// Which source (`contact register`, `KRR`, …).
    pub source_name: &'static str,
    /// What went wrong.
    pub reason: String,
}

/// Persons by national identity number.
#[async_trait::async_trait]
pub trait PersonSource: Send + Sync {
    /// The persons the source knows among `nins`. Contact details older than
    /// [`STALE_AFTER`] are left out unless `allow_stale` (KRR's 18-month rule).
    async fn persons(
        &self,
        nins: &[String],
        allow_stale: bool,
    ) -> Result<HashMap<String, PersonContact>, LookupError>;
}

/// Organisations' notification addresses by organisation number.
#[async_trait::async_trait]
pub trait OrganizationSource: Send + Sync {
    /// The organisations the source knows among `orgs`.
    async fn organizations(
        &self,
        orgs: &[String],
    ) -> Result<HashMap<String, OrgContact>, LookupError>;
}

/// Self-identified users (Altinn's external identities, `urn:altinn:person:idporten-email:…`).
#[async_trait::async_trait]
pub trait ExternalIdentitySource: Send + Sync {
    /// The users the source knows among `ids`, keyed as asked.
    async fn external_identities(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, PersonContact>, LookupError>;
}

/// Names for `$recipientName$`, where the contact source gives none (KRR and Profile do not).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Names {
    /// Persons' names by national identity number.
    pub persons: HashMap<String, String>,
    /// Organisations' names by organisation number.
    pub organizations: HashMap<String, String>,
}

/// Names of persons and organisations.
#[async_trait::async_trait]
pub trait NameSource: Send + Sync {
    /// The names the source knows among `nins` and `orgs`.
    async fn names(&self, nins: &[String], orgs: &[String]) -> Result<Names, LookupError>;
}

/// The sources a process looks recipients up in.
#[derive(Clone)]
pub struct ContactSources {
    /// Persons.
    pub persons: Arc<dyn PersonSource>,
    /// Organisations.
    pub organizations: Arc<dyn OrganizationSource>,
    /// Self-identified users; `None`: none is configured, and they are not identified.
    pub external: Option<Arc<dyn ExternalIdentitySource>>,
    /// Names for the keywords.
    pub names: Arc<dyn NameSource>,
}

impl ContactSources {
    /// Every kind from the embedded register; no self-identified users.
    pub fn embedded(store: &Store) -> Self {
        let register = Arc::new(EmbeddedRegister(store.clone()));
        Self {
            persons: register.clone(),
            organizations: register.clone(),
            external: None,
            names: register,
        }
    }
}

/// A detail a service answered, `None` when it answered it blank (KRR and Profile write `""`).
pub(crate) fn present(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.trim().is_empty())
}

/// Whether details last changed or confirmed at `updated` are too old to use at `now`.
pub fn is_stale(updated: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    match (updated, now.checked_sub_months(STALE_AFTER)) {
        (Some(updated), Some(limit)) => updated < limit,
        // Unknown: the operator who loaded it vouches for it.
        _ => false,
    }
}

/// The embedded contact register as a source.
pub struct EmbeddedRegister(pub Store);

const REGISTER: &str = "contact register";

fn db_error(e: sea_orm::DbErr) -> LookupError {
    LookupError { source_name: REGISTER, reason: e.to_string() }
}

#[async_trait::async_trait]
impl PersonSource for EmbeddedRegister {
    async fn persons(
        &self,
        nins: &[String],
        allow_stale: bool,
    ) -> Result<HashMap<String, PersonContact>, LookupError> {
        let mut found = self.0.lookup_persons(nins).await.map_err(db_error)?;
        if !allow_stale {
            let now = Utc::now();
            for p in found.values_mut().filter(|p| is_stale(p.updated_at, now)) {
                p.email = None;
                p.mobile = None;
            }
        }
        Ok(found)
    }
}

#[async_trait::async_trait]
impl OrganizationSource for EmbeddedRegister {
    async fn organizations(
        &self,
        orgs: &[String],
    ) -> Result<HashMap<String, OrgContact>, LookupError> {
        self.0.lookup_organizations(orgs).await.map_err(db_error)
    }
}

#[async_trait::async_trait]
impl NameSource for EmbeddedRegister {
    async fn names(&self, nins: &[String], orgs: &[String]) -> Result<Names, LookupError> {
        let persons = self.0.lookup_persons(nins).await.map_err(db_error)?;
        let organizations = self.0.lookup_organizations(orgs).await.map_err(db_error)?;
        let named = |(k, name): (String, Option<String>)| Some((k, name?));
        Ok(Names {
            persons: persons.into_iter().map(|(k, p)| (k, p.name)).filter_map(named).collect(),
            organizations: organizations
                .into_iter()
                .map(|(k, o)| (k, o.name))
                .filter_map(named)
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_older_than_18_months_are_stale() {
        let now = DateTime::parse_from_rfc3339("2026-12-01T12:00:00Z").unwrap().to_utc();
        let at = |s: &str| Some(DateTime::parse_from_rfc3339(s).unwrap().to_utc());
        assert!(!is_stale(at("2025-06-01T12:00:00Z"), now), "exactly 18 months");
        assert!(is_stale(at("2025-06-01T11:59:59Z"), now));
        assert!(!is_stale(at("2026-11-01T00:00:00Z"), now));
        assert!(!is_stale(None, now), "unknown is not stale");
    }
}
