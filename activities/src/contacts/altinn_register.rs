//! Altinn Register's names lookup, for `$recipientName$` where the contact source gives no
//! name (KRR and Profile do not): `POST parties/nameslookup` (relative to Register's
//! `…/register/api/v1/`) with `{"organizationNumbers":[…],"socialSecurityNumbers":[…],
//! "parties":[{"orgNo":…}|{"ssn":…}]}`, answered `{"partyNames":[{"name","orgNo","ssn"}]}`.
//! Register requires a `PlatformAccessToken` header: a short JWT (RS256) issued by `platform`
//! for the app `notifications`, as Altinn's own services send it, signed with a configured key.

use super::calls::{in_batches, post_json};
use super::sources::{LookupError, NameSource, Names};
use chrono::Utc;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Deserialize;
use std::collections::HashSet;
use std::time::Duration;

const REGISTER: &str = "Altinn Register";

/// Lifetime of a PlatformAccessToken varsel makes.
const ACCESS_TOKEN_SECS: i64 = 300;

/// Where Register is and how varsel proves itself to it.
#[derive(Debug, Clone)]
pub struct RegisterSettings {
    /// Register's API base, e.g. `https://platform.altinn.no/register/api/v1/`.
    pub url: String,
    /// The RSA key PlatformAccessTokens are signed with, PEM.
    pub key_pem: Vec<u8>,
    /// The key's id (`kid`), if the platform names keys by it.
    pub kid: Option<String>,
    /// The token's issuer (`iss`): `platform`.
    pub issuer: String,
    /// The token's app (`urn:altinn:app`): `notifications`.
    pub app: String,
    /// Parties a call.
    pub batch: usize,
    /// Calls at once.
    pub concurrency: usize,
    /// Timeout of one call.
    pub timeout: Duration,
}

/// Altinn Register as a name source.
pub struct AltinnRegister {
    settings: RegisterSettings,
    key: EncodingKey,
    endpoint: String,
    http: reqwest::Client,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    #[serde(default)]
    party_names: Vec<PartyName>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PartyName {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    org_no: Option<String>,
    #[serde(default)]
    ssn: Option<String>,
}

impl AltinnRegister {
    /// Register at `settings.url`; fails when the key is not an RSA private key.
    pub fn new(settings: RegisterSettings) -> anyhow::Result<Self> {
        let key = EncodingKey::from_rsa_pem(&settings.key_pem).map_err(|e| {
            anyhow::anyhow!("the PlatformAccessToken key is not an RSA private key in PEM: {e}")
        })?;
        let http = crate::providers::service_client(settings.timeout)?;
        let endpoint = format!("{}/parties/nameslookup", settings.url.trim_end_matches('/'));
        Ok(Self { settings, key, endpoint, http })
    }

    fn access_token(&self) -> Result<String, LookupError> {
        let now = Utc::now().timestamp();
        let mut header = Header::new(Algorithm::RS256);
        header.kid = self.settings.kid.clone();
        let claims = serde_json::json!({
            "iss": self.settings.issuer, "urn:altinn:app": self.settings.app,
            "iat": now, "nbf": now, "exp": now + ACCESS_TOKEN_SECS,
        });
        jsonwebtoken::encode(&header, &claims, &self.key).map_err(|e| LookupError {
            source_name: REGISTER,
            reason: format!("the PlatformAccessToken could not be signed: {e}"),
        })
    }
}

/// Keys of the lookup: `p:<ssn>` or `o:<orgNo>`, so persons and organisations batch together.
fn party(key: &str) -> serde_json::Value {
    match key.split_once(':') {
        Some(("o", org)) => serde_json::json!({ "orgNo": org }),
        Some((_, ssn)) => serde_json::json!({ "ssn": ssn }),
        None => serde_json::json!({ "ssn": key }),
    }
}

#[async_trait::async_trait]
impl NameSource for AltinnRegister {
    async fn names(&self, nins: &[String], orgs: &[String]) -> Result<Names, LookupError> {
        let keys: Vec<String> = nins
            .iter()
            .map(|n| format!("p:{n}"))
            .chain(orgs.iter().map(|o| format!("o:{o}")))
            .collect();
        if keys.is_empty() {
            return Ok(Names::default());
        }
        let token = self.access_token()?;
        let token = token.as_str();
        let found = in_batches(
            REGISTER,
            &keys,
            self.settings.batch,
            self.settings.concurrency,
            |chunk| async move {
                let pick = |prefix: &str| -> Vec<&str> {
                    chunk.iter().filter_map(|k| k.strip_prefix(prefix)).collect()
                };
                let body = serde_json::json!({
                    "organizationNumbers": pick("o:"),
                    "socialSecurityNumbers": pick("p:"),
                    "parties": chunk.iter().map(|k| party(k)).collect::<Vec<_>>(),
                });
                post_json::<Answer>(
                    &self.http,
                    &self.endpoint,
                    &body,
                    None,
                    &[("PlatformAccessToken", token)],
                )
                .await
                .map(|a| a.party_names)
                .map_err(|(e, _)| e)
            },
        )
        .await?;
        let (nins, orgs): (HashSet<&String>, HashSet<&String>) =
            (nins.iter().collect(), orgs.iter().collect());
        let mut names = Names::default();
        for p in found {
            let Some(name) = p.name.filter(|n| !n.trim().is_empty()) else { continue };
            if let Some(org) = p.org_no.filter(|o| orgs.contains(o)) {
                names.organizations.insert(org, name);
            } else if let Some(ssn) = p.ssn.filter(|s| nins.contains(s)) {
                names.persons.insert(ssn, name);
            }
        }
        Ok(names)
    }
}
