//! Maskinporten: OAuth2 access tokens for machine-to-machine calls, by the JWT-bearer grant
//! (RFC 7523). varsel signs a short grant with its key (RS256, named by `kid` or carrying its
//! certificate chain as `x5c`), posts it to the token endpoint, and keeps each scope's token
//! until shortly before it expires. One client serves every outbound caller (the contact
//! sources, the send-condition check), so a token is fetched once however many ask for it.

use chrono::Utc;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A grant is valid this long (Maskinporten accepts at most 120 s).
const GRANT_LIFETIME_SECS: i64 = 100;

/// How to reach Maskinporten and who varsel is there.
#[derive(Debug, Clone)]
pub struct MaskinportenSettings {
    /// The token endpoint, e.g. `https://maskinporten.no/token`.
    pub token_url: String,
    /// The grant's audience: Maskinporten's issuer, e.g. `https://maskinporten.no/`.
    pub audience: String,
    /// varsel's client id at Maskinporten (the grant's `iss`).
    pub client_id: String,
    /// The RSA private key, PEM (PKCS#1 or PKCS#8).
    pub key_pem: Vec<u8>,
    /// The key's id as registered with Maskinporten (`kid`); or else
    /// `certificate_chain` names a business certificate.
    pub kid: Option<String>,
    /// The business certificate and its chain, base64 DER each (`x5c`).
    pub certificate_chain: Vec<String>,
    /// A token is renewed this long before it expires.
    pub renew_before: Duration,
    /// Timeout of one token request.
    pub timeout: Duration,
}

/// Why no token could be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TokenError {
    /// Maskinporten refused the grant (`invalid_client`, `invalid_scope`, …): configuration.
    #[error("Maskinporten refused the grant for {scope}: {reason}")]
    Refused {
        /// The scope asked for.
        scope: String,
        /// Maskinporten's `error` and `error_description`, or its status.
        reason: String,
    },
    /// Unreachable, timed out, or 5xx: worth a retry.
    #[error("Maskinporten did not answer for {scope}: {reason}")]
    Unavailable {
        /// The scope asked for.
        scope: String,
        /// What went wrong.
        reason: String,
    },
}

#[derive(Serialize)]
struct Grant<'a> {
    aud: &'a str,
    iss: &'a str,
    scope: &'a str,
    iat: i64,
    exp: i64,
    jti: String,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: u64,
}

#[derive(Deserialize, Default)]
struct ErrorAnswer {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

struct Cached {
    token: String,
    renew_at: Instant,
}

/// The Maskinporten client.
pub struct Maskinporten {
    settings: MaskinportenSettings,
    key: EncodingKey,
    http: reqwest::Client,
    /// Tokens by scope. Held while a token is fetched, so concurrent callers wait for one fetch.
    tokens: tokio::sync::Mutex<HashMap<String, Cached>>,
    fetched: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Maskinporten {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Maskinporten")
            .field("token_url", &self.settings.token_url)
            .field("client_id", &self.settings.client_id)
            .finish_non_exhaustive()
    }
}

impl Maskinporten {
    /// A client; fails when the key is not an RSA private key or names no `kid` nor chain.
    pub fn new(settings: MaskinportenSettings) -> anyhow::Result<Self> {
        let key = EncodingKey::from_rsa_pem(&settings.key_pem).map_err(|e| {
            anyhow::anyhow!("the Maskinporten key is not an RSA private key in PEM: {e}")
        })?;
        if settings.kid.is_none() && settings.certificate_chain.is_empty() {
            anyhow::bail!(
                "Maskinporten needs the key's kid (VARSEL_MASKINPORTEN_KID) or its business certificate (VARSEL_MASKINPORTEN_CERTIFICATE_FILE)"
            );
        }
        let http = crate::providers::service_client(settings.timeout)?;
        Ok(Self { settings, key, http, tokens: Default::default(), fetched: Default::default() })
    }

    /// How many tokens were fetched from Maskinporten so far.
    pub fn tokens_fetched(&self) -> u64 {
        self.fetched.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// An access token for `scope`: the cached one while it is fresh, else a new one.
    pub async fn token(&self, scope: &str) -> Result<String, TokenError> {
        let mut tokens = self.tokens.lock().await;
        if let Some(c) = tokens.get(scope)
            && Instant::now() < c.renew_at
        {
            return Ok(c.token.clone());
        }
        let (token, lifetime) = self.fetch(scope).await?;
        let keep = lifetime.saturating_sub(self.settings.renew_before);
        tokens.insert(
            scope.to_owned(),
            Cached { token: token.clone(), renew_at: Instant::now() + keep },
        );
        Ok(token)
    }

    /// Forgets `scope`'s token (a resource server refused it), so the next call fetches anew.
    pub async fn forget(&self, scope: &str, token: &str) {
        let mut tokens = self.tokens.lock().await;
        if tokens.get(scope).is_some_and(|c| c.token == token) {
            tokens.remove(scope);
        }
    }

    fn grant(&self, scope: &str) -> Result<String, TokenError> {
        let now = Utc::now().timestamp();
        let mut header = Header::new(Algorithm::RS256);
        header.kid = self.settings.kid.clone();
        if !self.settings.certificate_chain.is_empty() {
            header.x5c = Some(self.settings.certificate_chain.clone());
        }
        let claims = Grant {
            aud: &self.settings.audience,
            iss: &self.settings.client_id,
            scope,
            iat: now,
            exp: now + GRANT_LIFETIME_SECS,
            jti: uuid::Uuid::new_v4().to_string(),
        };
        jsonwebtoken::encode(&header, &claims, &self.key).map_err(|e| TokenError::Refused {
            scope: scope.to_owned(),
            reason: format!("the grant could not be signed: {e}"),
        })
    }

    async fn fetch(&self, scope: &str) -> Result<(String, Duration), TokenError> {
        let unavailable =
            |reason: String| TokenError::Unavailable { scope: scope.to_owned(), reason };
        let grant = self.grant(scope)?;
        let resp = self
            .http
            .post(&self.settings.token_url)
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", &grant),
            ])
            .send()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| unavailable(e.to_string()))?;
        if status.is_success() {
            let answer: TokenAnswer = serde_json::from_slice(&body)
                .map_err(|e| unavailable(format!("not a token answer: {e}")))?;
            self.fetched.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::debug!(scope, expires_in = answer.expires_in, "Maskinporten token fetched");
            return Ok((answer.access_token, Duration::from_secs(answer.expires_in)));
        }
        let e: ErrorAnswer = serde_json::from_slice(&body).unwrap_or_default();
        let reason = if e.error.is_empty() {
            format!("HTTP {status}")
        } else {
            format!("HTTP {status}: {} {}", e.error, e.error_description).trim_end().to_owned()
        };
        if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            Err(unavailable(reason))
        } else {
            tracing::error!(
                scope,
                reason,
                "Maskinporten refused varsel's grant: check its client id, key and scopes"
            );
            Err(TokenError::Refused { scope: scope.to_owned(), reason })
        }
    }
}
