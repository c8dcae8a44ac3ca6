//! KRR, Kontakt- og reservasjonsregisteret: persons' email, mobile and reservation from
//! Digdir's lookup service (`POST {url}/rest/v1/personer`, up to 1,000
//! `personidentifikatorer` a call), authenticated with a Maskinporten token.
//!
//! What KRR answers, and what varsel makes of it:
//! - `status` `SLETTET` or `IKKE_REGISTRERT`: the person is not in KRR, as if not returned
//!   (`*_Failed_RecipientNotIdentified`).
//! - `reservasjon` `JA`: reserved (`*_Failed_RecipientReserved` unless the order ignores
//!   reservations; its details are kept for that case).
//! - an email or mobile neither changed (`*_oppdatert`) nor confirmed (`*_sist_verifisert`) for
//!   18 months is left out, and so is all contact information of a person KRR marks
//!   `varslingsstatus` `KAN_IKKE_VARSLES` without a reservation explaining it, unless the
//!   recipient allows stale contact information (`useStaleContactInformation`).
//!
//! Calls run `concurrency` at a time. A 5xx, 429, timeout or unreachable KRR fails the lookup
//! (the order waits and retries); a 4xx on a batch is retried one number at a time, and a 4xx
//! on one number leaves that recipient alone unidentified. A refused token is fetched anew once.

use super::calls::{CallError, in_batches, post_json};
use super::sources::{LookupError, PersonSource, is_stale, present};
use crate::providers::maskinporten::Maskinporten;
use crate::store::PersonContact;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Numbers a call at most (KRR's limit).
pub const MAX_BATCH: usize = 1_000;

const KRR: &str = "KRR";

/// Where KRR is and how varsel calls it.
#[derive(Debug, Clone)]
pub struct KrrSettings {
    /// The service's base URL, e.g. `https://kontaktregisteret.no`.
    pub url: String,
    /// The Maskinporten scope, `krr:global/kontaktinformasjon.read`.
    pub scope: String,
    /// Numbers a call (at most 1,000).
    pub batch: usize,
    /// Calls at once.
    pub concurrency: usize,
    /// Timeout of one call.
    pub timeout: Duration,
}

/// KRR as a person source.
pub struct Krr {
    settings: KrrSettings,
    endpoint: String,
    http: reqwest::Client,
    maskinporten: Arc<Maskinporten>,
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    personer: Vec<KrrPerson>,
}

#[derive(Deserialize)]
struct KrrPerson {
    personidentifikator: String,
    #[serde(default)]
    reservasjon: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    varslingsstatus: Option<String>,
    #[serde(default)]
    kontaktinformasjon: Option<Kontaktinformasjon>,
}

#[derive(Deserialize, Default)]
struct Kontaktinformasjon {
    epostadresse: Option<String>,
    epostadresse_oppdatert: Option<String>,
    epostadresse_sist_verifisert: Option<String>,
    mobiltelefonnummer: Option<String>,
    mobiltelefonnummer_oppdatert: Option<String>,
    mobiltelefonnummer_sist_verifisert: Option<String>,
}

/// KRR's times: RFC 3339, or with an hour-only offset (`2023-06-13T13:42:34+02`), or without
/// one (UTC).
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.to_utc());
    }
    let bytes = s.as_bytes();
    if bytes.len() > 3
        && matches!(bytes[bytes.len() - 3], b'+' | b'-')
        && let Ok(t) = DateTime::parse_from_rfc3339(&format!("{s}:00"))
    {
        return Some(t.to_utc());
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").ok().map(|t| t.and_utc())
}

/// The later of a detail's change and confirmation times.
fn confirmed(updated: &Option<String>, verified: &Option<String>) -> Option<DateTime<Utc>> {
    let times = [updated, verified].into_iter().flatten().filter_map(|s| parse_time(s));
    times.max()
}

impl KrrPerson {
    /// The register entry, or `None` when KRR does not have the person.
    fn contact(self, allow_stale: bool, now: DateTime<Utc>) -> Option<(String, PersonContact)> {
        if matches!(self.status.as_deref(), Some("SLETTET" | "IKKE_REGISTRERT")) {
            return None;
        }
        let reserved = self.reservasjon.as_deref() == Some("JA");
        let k = self.kontaktinformasjon.unwrap_or_default();
        let email_at = confirmed(&k.epostadresse_oppdatert, &k.epostadresse_sist_verifisert);
        let mobile_at =
            confirmed(&k.mobiltelefonnummer_oppdatert, &k.mobiltelefonnummer_sist_verifisert);
        let cannot_notify =
            self.varslingsstatus.as_deref() == Some("KAN_IKKE_VARSLES") && !reserved;
        let usable =
            |at: Option<DateTime<Utc>>| allow_stale || (!cannot_notify && !is_stale(at, now));
        Some((
            self.personidentifikator,
            PersonContact {
                name: None,
                email: present(k.epostadresse).filter(|_| usable(email_at)),
                mobile: present(k.mobiltelefonnummer).filter(|_| usable(mobile_at)),
                reserved,
                updated_at: email_at.max(mobile_at),
            },
        ))
    }
}

impl Krr {
    /// KRR at `settings.url`, with tokens from `maskinporten`.
    pub fn new(settings: KrrSettings, maskinporten: Arc<Maskinporten>) -> anyhow::Result<Self> {
        let http = crate::providers::service_client(settings.timeout)?;
        let endpoint = format!("{}/rest/v1/personer", settings.url.trim_end_matches('/'));
        let settings = KrrSettings {
            batch: settings.batch.clamp(1, MAX_BATCH),
            concurrency: settings.concurrency.max(1),
            ..settings
        };
        Ok(Self { settings, endpoint, http, maskinporten })
    }

    /// One call; a token KRR refuses is forgotten and the call made once more with a new one.
    async fn call(&self, nins: Vec<String>) -> Result<Vec<KrrPerson>, CallError> {
        let body = serde_json::json!({ "personidentifikatorer": nins });
        let mut refreshed = false;
        loop {
            let token = self
                .maskinporten
                .token(&self.settings.scope)
                .await
                .map_err(|e| CallError::Unavailable(e.to_string()))?;
            match post_json::<Answer>(&self.http, &self.endpoint, &body, Some(&token), &[]).await {
                Ok(answer) => return Ok(answer.personer),
                Err((_, Some(401 | 403))) if !refreshed => {
                    // Revoked or expired early: one more try with a fresh token.
                    self.maskinporten.forget(&self.settings.scope, &token).await;
                    refreshed = true;
                }
                Err((e, _)) => return Err(e),
            }
        }
    }
}

#[async_trait::async_trait]
impl PersonSource for Krr {
    async fn persons(
        &self,
        nins: &[String],
        allow_stale: bool,
    ) -> Result<HashMap<String, PersonContact>, LookupError> {
        let (batch, concurrency) = (self.settings.batch, self.settings.concurrency);
        let found = in_batches(KRR, nins, batch, concurrency, |chunk| self.call(chunk)).await?;
        let now = Utc::now();
        let asked: std::collections::HashSet<&str> = nins.iter().map(String::as_str).collect();
        Ok(found
            .into_iter()
            .filter(|p| asked.contains(p.personidentifikator.as_str()))
            .filter_map(|p| p.contact(allow_stale, now))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn krr_times_parse_in_each_form_it_writes() {
        let utc = |s: &str| parse_time(s).unwrap().to_rfc3339();
        assert_eq!(utc("2023-06-13T13:42:34+02"), "2023-06-13T11:42:34+00:00");
        assert_eq!(utc("2023-08-05T10:45:15.768Z"), "2023-08-05T10:45:15.768+00:00");
        assert_eq!(utc("2023-08-05T10:45:15+01:00"), "2023-08-05T09:45:15+00:00");
        assert_eq!(utc("2023-08-05T10:45:15"), "2023-08-05T10:45:15+00:00");
        assert!(parse_time("yesterday").is_none());
    }

    fn person(json: serde_json::Value) -> KrrPerson {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn krr_statuses_map_to_what_a_user_expects() {
        let now = parse_time("2026-12-01T12:00:00Z").unwrap();
        let fresh = "2026-10-01T12:00:00+02";
        let old = "2024-01-01T12:00:00+01";
        let entry = |status: &str, reservasjon: &str, varsling: &str, at: &str| {
            person(serde_json::json!({
                "personidentifikator": "01017012345", "status": status, "reservasjon": reservasjon,
                "varslingsstatus": varsling,
                "kontaktinformasjon": {"epostadresse": "ola@example.no", "epostadresse_oppdatert": at,
                                       "mobiltelefonnummer": "99999999", "mobiltelefonnummer_oppdatert": fresh}
            }))
        };
        let c = entry("AKTIV", "NEI", "KAN_VARSLES", fresh).contact(false, now).unwrap().1;
        assert_eq!(
            (c.email.as_deref(), c.mobile.as_deref(), c.reserved),
            (Some("ola@example.no"), Some("99999999"), false)
        );
        for status in ["SLETTET", "IKKE_REGISTRERT"] {
            assert!(entry(status, "NEI", "KAN_IKKE_VARSLES", fresh).contact(false, now).is_none());
        }
        let reserved =
            entry("AKTIV", "JA", "KAN_IKKE_VARSLES", fresh).contact(false, now).unwrap().1;
        assert!(reserved.reserved);
        assert!(reserved.email.is_some(), "kept for orders that ignore reservations");
        let stale = entry("AKTIV", "NEI", "KAN_VARSLES", old).contact(false, now).unwrap().1;
        assert_eq!((stale.email, stale.mobile.as_deref()), (None, Some("99999999")), "per detail");
        let allowed = entry("AKTIV", "NEI", "KAN_VARSLES", old).contact(true, now).unwrap().1;
        assert_eq!(allowed.email.as_deref(), Some("ola@example.no"));
        let cannot =
            entry("AKTIV", "NEI", "KAN_IKKE_VARSLES", fresh).contact(false, now).unwrap().1;
        assert_eq!((cannot.email, cannot.mobile), (None, None));
        let verified = person(serde_json::json!({
            "personidentifikator": "01017012345", "status": "AKTIV", "reservasjon": "NEI",
            "kontaktinformasjon": {"epostadresse": "ola@example.no", "epostadresse_oppdatert": old,
                                   "epostadresse_sist_verifisert": fresh}
        }));
        assert!(verified.contact(false, now).unwrap().1.email.is_some(), "confirmed recently");
    }
}
