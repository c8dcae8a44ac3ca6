//! Token validation and minting.
//!
//! Two ways in, as in Altinn (§5): an `Authorization: Bearer` JWT carrying the scope
//! `altinn:serviceowner/notifications.create` and the creator org in `urn:altinn:org`, or a
//! `PlatformAccessToken` header JWT whose issuer is the creator. Keys come from configuration;
//! with none configured, a dev key is created in the data dir and `varsel token` mints for it.

use crate::error::ApiError;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The scope of operator endpoints (dead reports, every org's orders).
pub const OPERATOR_SCOPE: &str = "varsel:operator";

/// The scope an order creator needs.
pub const CREATE_SCOPE: &str = "altinn:serviceowner/notifications.create";
/// The claim naming the service owner org.
pub const ORG_CLAIM: &str = "urn:altinn:org";

/// Claims varsel reads.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Claims {
    /// Issuer; the creator for platform access tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// Space-separated scopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Service owner org.
    #[serde(rename = "urn:altinn:org", default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// Expiry (required).
    pub exp: i64,
    /// Not before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Issued at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The creator org every order and read is scoped to.
    pub org: String,
}

/// The keys tokens are checked against.
#[derive(Clone)]
pub struct Verifier {
    keys: Vec<(DecodingKey, Algorithm)>,
    /// Issuers accepted for bearer tokens; empty: any.
    issuers: Vec<String>,
}

/// The issuer of tokens minted for the dev key (`varsel token`).
pub const DEV_ISSUER: &str = "varsel-dev";

/// The dev signing key's file in a data dir.
pub fn dev_key_path(data_dir: &Path) -> PathBuf {
    data_dir.join("dev-signing-key")
}

/// Reads the dev key, creating it on first use.
pub fn load_or_create_dev_key(data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    let path = dev_key_path(data_dir);
    if let Ok(text) = std::fs::read_to_string(&path) {
        return Ok(base64::engine::general_purpose::STANDARD.decode(text.trim())?);
    }
    std::fs::create_dir_all(data_dir)?;
    let key: [u8; 32] = rand::random();
    std::fs::write(&path, base64::engine::general_purpose::STANDARD.encode(key))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    tracing::info!(path = %path.display(), "created a dev signing key");
    Ok(key.to_vec())
}

impl Verifier {
    /// Accepts nothing (for offline document generation).
    pub fn empty() -> Self {
        Self { keys: vec![], issuers: vec![] }
    }

    /// From configured secrets and public keys; with neither, the data dir's dev key.
    pub fn from_config(cfg: &crate::config::Config) -> anyhow::Result<Self> {
        let mut keys = Vec::new();
        for s in &cfg.auth_hmac_secrets {
            let raw = base64::engine::general_purpose::STANDARD.decode(s.trim())?;
            keys.push((DecodingKey::from_secret(&raw), Algorithm::HS256));
        }
        for f in &cfg.auth_public_key_files {
            let pem = std::fs::read(f)?;
            if let Ok(k) = DecodingKey::from_rsa_pem(&pem) {
                keys.push((k, Algorithm::RS256));
            } else {
                keys.push((DecodingKey::from_ec_pem(&pem)?, Algorithm::ES256));
            }
        }
        let mut issuers: Vec<String> = cfg.auth_issuers.iter().map(|i| i.trim().to_owned()).filter(|i| !i.is_empty()).collect();
        if keys.is_empty() {
            tracing::warn!("no token keys configured (VARSEL_AUTH_HMAC_SECRETS / VARSEL_AUTH_PUBLIC_KEY_FILES): accepting tokens signed with the dev key of the data dir");
            let key = load_or_create_dev_key(&cfg.data_dir)?;
            keys.push((DecodingKey::from_secret(&key), Algorithm::HS256));
            if issuers.is_empty() {
                issuers.push(DEV_ISSUER.to_owned());
            }
        } else if issuers.is_empty() {
            tracing::warn!("VARSEL_AUTH_ISSUERS is empty: bearer tokens from any issuer signed by a configured key are accepted");
        }
        Ok(Self { keys, issuers })
    }

    /// Checks signature (only the algorithm each key is for, so `alg: none` or an HMAC made
    /// with a public key never passes), `exp` (required), `nbf`, and for bearer tokens the
    /// issuer.
    fn decode(&self, token: &str, check_issuer: bool) -> Option<Claims> {
        self.keys.iter().find_map(|(key, alg)| {
            let mut v = Validation::new(*alg);
            v.leeway = 5;
            v.validate_nbf = true;
            v.validate_aud = false;
            if check_issuer && !self.issuers.is_empty() {
                v.set_issuer(&self.issuers);
                v.set_required_spec_claims(&["exp", "iss"]);
            } else {
                v.set_required_spec_claims(&["exp"]);
            }
            jsonwebtoken::decode::<Claims>(token, key, &v).ok().map(|d| d.claims)
        })
    }

    /// Authorises an order API call from its headers.
    pub fn authorize(&self, headers: &poem::http::HeaderMap) -> Result<Principal, ApiError> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty());
        let platform = header("PlatformAccessToken");
        let bearer = header("Authorization").map(|v| {
            v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")).unwrap_or(v).trim()
        });
        if platform.is_none() && bearer.is_none() {
            return Err(ApiError::unauthorized("A bearer token or a PlatformAccessToken header is required."));
        }
        // Either credential authorises on its own; a valid platform token wins.
        if let Some(claims) = platform.and_then(|t| self.decode(t, false)) {
            return match claims.iss.filter(|i| !i.is_empty()) {
                Some(org) => Ok(Principal { org }),
                None => Err(ApiError::forbidden("The PlatformAccessToken has no issuer to act as creator.")),
            };
        }
        match bearer.and_then(|t| self.decode(t, true)) {
            Some(claims) => {
                let scoped = claims.scope.as_deref().unwrap_or("").split_whitespace().any(|s| s == CREATE_SCOPE);
                if !scoped {
                    return Err(ApiError::forbidden(format!("The token lacks the scope {CREATE_SCOPE}.")));
                }
                match claims.org.filter(|o| !o.is_empty()) {
                    Some(org) => Ok(Principal { org }),
                    None => Err(ApiError::forbidden(format!("The token has no {ORG_CLAIM} claim naming the creator."))),
                }
            }
            None => Err(ApiError::unauthorized("The token is invalid, expired or not signed by a trusted key.")),
        }
    }
}

impl Verifier {
    /// Authorises an operator endpoint: a valid bearer token with the operator scope.
    pub fn authorize_operator(&self, headers: &poem::http::HeaderMap) -> Result<(), ApiError> {
        let bearer = headers
            .get("Authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim);
        let Some(claims) = bearer.and_then(|t| self.decode(t, true)) else {
            return Err(ApiError::unauthorized("A valid bearer token is required."));
        };
        if claims.scope.as_deref().unwrap_or("").split_whitespace().any(|s| s == OPERATOR_SCOPE) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!("The token lacks the scope {OPERATOR_SCOPE}.")))
        }
    }
}

/// Reads the secret that authenticates delivery reports, creating it on first use.
pub fn load_or_create_report_secret(cfg: &crate::config::Config) -> anyhow::Result<String> {
    if !cfg.report_secret.is_empty() {
        return Ok(cfg.report_secret.clone());
    }
    let path = cfg.data_dir.join("report-secret");
    if let Ok(text) = std::fs::read_to_string(&path) {
        return Ok(text.trim().to_owned());
    }
    std::fs::create_dir_all(&cfg.data_dir)?;
    let key: [u8; 32] = rand::random();
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key);
    std::fs::write(&path, &secret)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(secret)
}

/// Mints an HS256 token with `key`, valid for `ttl_secs`.
pub fn mint(key: &[u8], claims_for: TokenKind, ttl_secs: i64) -> anyhow::Result<String> {
    let now = chrono::Utc::now().timestamp();
    let claims = match claims_for {
        TokenKind::Bearer { org, scope } => Claims {
            iss: Some(DEV_ISSUER.into()),
            sub: Some(format!("org:{org}")),
            scope: Some(scope),
            org: Some(org),
            exp: now + ttl_secs,
            nbf: Some(now),
            iat: Some(now),
        },
        TokenKind::Platform { org } => Claims {
            iss: Some(org),
            sub: Some("app".into()),
            exp: now + ttl_secs,
            nbf: Some(now),
            iat: Some(now),
            ..Default::default()
        },
    };
    Ok(jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(key))?)
}

/// Which token to mint.
#[derive(Debug, Clone)]
pub enum TokenKind {
    /// A Maskinporten-style service owner token.
    Bearer {
        /// Creator org.
        org: String,
        /// Scopes, space-separated.
        scope: String,
    },
    /// A PlatformAccessToken issued by `org`.
    Platform {
        /// Creator org (issuer).
        org: String,
    },
}
