//! Token validation and minting: who is calling, and for which organisation.
//!
//! Two credentials, in two headers, verified with two separate key sets (Altinn §5, without its
//! gaps):
//!
//! - **Bearer tokens** (`Authorization: Bearer …`, Maskinporten-style service-owner tokens):
//!   signed by a bearer key (`VARSEL_AUTH_HMAC_SECRETS`, `VARSEL_AUTH_PUBLIC_KEY_FILES`), from an
//!   issuer in `VARSEL_AUTH_ISSUERS`, with the scope `altinn:serviceowner/notifications.create`;
//!   the creator is the `urn:altinn:org` claim.
//! - **PlatformAccessTokens** (`PlatformAccessToken: …`, tokens Altinn apps and platform
//!   components issue for themselves): verified only with the keys configured for the token's
//!   own issuer (`VARSEL_PLATFORM_ISSUERS`), and carrying the app claim `urn:altinn:app`; the
//!   creator is the issuer. A token signed by one issuer's key cannot claim another issuer, and
//!   no bearer key verifies a platform token, nor a platform key a bearer token.
//!
//! With no keys configured at all (the embedded default), the data dir holds a dev bearer key
//! and a dev platform secret from which each issuer's platform key is derived, so
//! `varsel token` and `varsel token --platform` mint tokens the dev instance accepts.

use crate::error::{ApiError, json_kind};
use base64::Engine;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Map, Value, json};
use sha2::Sha256;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The scope of operator endpoints (dead reports, every org's orders).
pub const OPERATOR_SCOPE: &str = "varsel:operator";
/// The scope an order creator needs.
pub const CREATE_SCOPE: &str = "altinn:serviceowner/notifications.create";
/// The scope of composed emails (`/future/orders/composed-email`), and of nothing else.
pub const COMPOSED_EMAIL_SCOPE: &str = "altinn:serviceowner/notifications.composedemail.create";
/// The claim naming the service owner org.
pub const ORG_CLAIM: &str = "urn:altinn:org";
/// The claim naming the app a PlatformAccessToken was issued to (required on those tokens).
pub const APP_CLAIM: &str = "urn:altinn:app";
/// The header carrying a PlatformAccessToken (the raw JWT, no scheme).
pub const PLATFORM_HEADER: &str = "PlatformAccessToken";
/// The issuer of bearer tokens minted for the dev key (`varsel token`).
pub const DEV_ISSUER: &str = "varsel-dev";

/// Leeway for `exp` and `nbf`, seconds.
const LEEWAY_SECS: u64 = 5;

/// Which credential authenticated a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// A bearer token with the create scope.
    Bearer,
    /// A PlatformAccessToken.
    Platform,
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The creator org every order and read is scoped to.
    pub org: String,
    /// The credential that said so.
    pub credential: Credential,
}

/// One verification key and the one algorithm it is for.
#[derive(Clone)]
struct Key {
    key: DecodingKey,
    alg: Algorithm,
    /// The key material, to refuse a key shared between credentials.
    fingerprint: Vec<u8>,
}

/// How PlatformAccessTokens are verified.
#[derive(Clone)]
enum PlatformKeys {
    /// Each issuer with its own keys.
    Issuers(BTreeMap<String, Vec<Key>>),
    /// Dev: each issuer's HS256 key derived from one secret of the data dir.
    Derived(Vec<u8>),
}

/// The keys tokens are checked against.
#[derive(Clone)]
pub struct Verifier {
    bearer: Vec<Key>,
    /// Bearer keys of the configured JWK sets, kept fresh.
    jwks: Option<Arc<crate::jwks::Jwks>>,
    /// Issuers accepted for bearer tokens; empty: any.
    issuers: Vec<String>,
    platform: PlatformKeys,
}

/// The dev signing key's file in a data dir.
pub fn dev_key_path(data_dir: &Path) -> PathBuf {
    data_dir.join("dev-signing-key")
}

/// Reads the dev bearer key, creating it on first use.
pub fn load_or_create_dev_key(data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    load_or_create_secret(&dev_key_path(data_dir))
}

/// Reads the dev platform secret (from which each issuer's platform key is derived), creating
/// it on first use.
pub fn load_or_create_dev_platform_secret(data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    load_or_create_secret(&data_dir.join("dev-platform-key"))
}

fn load_or_create_secret(path: &Path) -> anyhow::Result<Vec<u8>> {
    if let Ok(text) = std::fs::read_to_string(path) {
        return Ok(base64::engine::general_purpose::STANDARD.decode(text.trim())?);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let key: [u8; 32] = rand::random();
    std::fs::write(path, base64::engine::general_purpose::STANDARD.encode(key))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    tracing::info!(path = %path.display(), "created a dev signing key");
    Ok(key.to_vec())
}

/// The HS256 key of a PlatformAccessToken issuer in the dev key set.
pub fn derived_platform_key(dev_secret: &[u8], issuer: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(dev_secret).expect("HMAC takes any key length");
    mac.update(b"varsel platform access token issuer\0");
    mac.update(issuer.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// The first configured bearer HMAC secret (`VARSEL_AUTH_HMAC_SECRETS`), decoded: what
/// `varsel token` signs with in a deployment, so that the token works on every API host.
pub fn configured_hmac_key(cfg: &crate::config::Config) -> anyhow::Result<Option<Vec<u8>>> {
    cfg.auth
        .hmac_secrets
        .first()
        .map(|s| hmac_key(s.expose(), "VARSEL_AUTH_HMAC_SECRETS").map(|k| k.fingerprint))
        .transpose()
}

fn hmac_key(secret_b64: &str, what: &str) -> anyhow::Result<Key> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(secret_b64.trim())
        .map_err(|e| anyhow::anyhow!("{what}: an HMAC secret is not base64: {e}"))?;
    anyhow::ensure!(raw.len() >= 32, "{what}: an HMAC secret must be at least 32 bytes (256 bits)");
    Ok(Key { key: DecodingKey::from_secret(&raw), alg: Algorithm::HS256, fingerprint: raw })
}

fn public_key(file: &Path, what: &str) -> anyhow::Result<Key> {
    let pem = std::fs::read(file)
        .map_err(|e| anyhow::anyhow!("{what}: cannot read {}: {e}", file.display()))?;
    let (key, alg) = match DecodingKey::from_rsa_pem(&pem) {
        Ok(k) => (k, Algorithm::RS256),
        Err(_) => (
            DecodingKey::from_ec_pem(&pem).map_err(|e| {
                anyhow::anyhow!(
                    "{what}: {} is neither an RSA nor an EC public key: {e}",
                    file.display()
                )
            })?,
            Algorithm::ES256,
        ),
    };
    // The key's base64 body without line breaks: the same key written out differently is
    // still the same key.
    let fingerprint: Vec<u8> = String::from_utf8_lossy(&pem)
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .flat_map(|l| l.trim().bytes().collect::<Vec<_>>())
        .collect();
    Ok(Key { key, alg, fingerprint })
}

impl Verifier {
    /// Accepts nothing (for offline document generation).
    pub fn empty() -> Self {
        Self {
            bearer: vec![],
            jwks: None,
            issuers: vec![],
            platform: PlatformKeys::Issuers(BTreeMap::new()),
        }
    }

    /// From configuration; with no keys configured at all, the data dir's dev key set.
    pub fn from_config(cfg: &crate::config::Config) -> anyhow::Result<Self> {
        let mut bearer = Vec::new();
        for s in &cfg.auth.hmac_secrets {
            bearer.push(hmac_key(s.expose(), "VARSEL_AUTH_HMAC_SECRETS")?);
        }
        for f in &cfg.auth.public_key_files {
            bearer.push(public_key(f, "VARSEL_AUTH_PUBLIC_KEY_FILES")?);
        }
        let jwks = (!cfg.auth.jwks_urls.is_empty()).then(|| {
            let jwks = crate::jwks::Jwks::new(
                cfg.auth.jwks_urls.clone(),
                std::time::Duration::from_secs(cfg.auth.jwks_refresh_secs),
            );
            if tokio::runtime::Handle::try_current().is_ok() {
                jwks.start();
            }
            jwks
        });
        let mut platform = BTreeMap::new();
        for (issuer, keys) in &cfg.auth.platform_issuers {
            let issuer = issuer.trim();
            anyhow::ensure!(!issuer.is_empty(), "VARSEL_PLATFORM_ISSUERS: an issuer has no name");
            let what = format!("VARSEL_PLATFORM_ISSUERS ({issuer})");
            let mut set = Vec::new();
            for s in &keys.hmac_secrets {
                set.push(hmac_key(s.expose(), &what)?);
            }
            for f in &keys.public_key_files {
                set.push(public_key(f, &what)?);
            }
            anyhow::ensure!(
                !set.is_empty(),
                "{what}: the issuer has no keys (hmac_secrets or public_key_files)"
            );
            platform.insert(issuer.to_owned(), set);
        }
        // One key, one credential, one issuer: a key shared between them would let a token of
        // one kind or issuer pass as another.
        let mut seen: Vec<(&[u8], String)> =
            bearer.iter().map(|k| (k.fingerprint.as_slice(), "bearer tokens".to_owned())).collect();
        for (issuer, keys) in &platform {
            for k in keys {
                if let Some((_, other)) = seen.iter().find(|(f, _)| *f == k.fingerprint.as_slice())
                {
                    anyhow::bail!(
                        "one key verifies both {other} and platform tokens of issuer {issuer:?}: give each its own key"
                    );
                }
                seen.push((
                    k.fingerprint.as_slice(),
                    format!("platform tokens of issuer {issuer:?}"),
                ));
            }
        }
        let mut issuers: Vec<String> = cfg
            .auth
            .issuers
            .iter()
            .map(|i| i.trim().to_owned())
            .filter(|i| !i.is_empty())
            .collect();
        let platform = if !cfg.auth.has_keys() {
            tracing::warn!(
                "no token keys configured (VARSEL_AUTH_HMAC_SECRETS / VARSEL_AUTH_PUBLIC_KEY_FILES / VARSEL_AUTH_JWKS_URLS / VARSEL_PLATFORM_ISSUERS): \
                 accepting tokens signed with the dev keys of the data dir"
            );
            let key = load_or_create_dev_key(&cfg.data_dir)?;
            bearer.push(Key {
                key: DecodingKey::from_secret(&key),
                alg: Algorithm::HS256,
                fingerprint: key,
            });
            if issuers.is_empty() {
                issuers.push(DEV_ISSUER.to_owned());
            }
            PlatformKeys::Derived(load_or_create_dev_platform_secret(&cfg.data_dir)?)
        } else {
            if bearer.is_empty() && jwks.is_none() {
                tracing::warn!(
                    "no bearer token keys configured: only PlatformAccessTokens are accepted"
                );
            } else if issuers.is_empty() {
                tracing::warn!(
                    "VARSEL_AUTH_ISSUERS is empty: bearer tokens from any issuer signed by a configured key are accepted"
                );
            }
            if platform.is_empty() {
                tracing::info!(
                    "no PlatformAccessToken issuers configured (VARSEL_PLATFORM_ISSUERS): platform tokens are refused"
                );
            }
            PlatformKeys::Issuers(platform)
        };
        Ok(Self { bearer, jwks, issuers, platform })
    }

    /// Checks a bearer token's signature (only the algorithm each key is for, so `alg: none`
    /// or an HMAC made with a public key never passes), `exp` (required), `nbf` and issuer.
    fn decode_bearer(&self, token: &str) -> Option<Map<String, Value>> {
        let decode = |key: &DecodingKey, alg: Algorithm| {
            let mut v = validation(alg);
            if self.issuers.is_empty() {
                v.set_required_spec_claims(&["exp"]);
            } else {
                v.set_issuer(&self.issuers);
                v.set_required_spec_claims(&["exp", "iss"]);
            }
            jsonwebtoken::decode::<Map<String, Value>>(token, key, &v).ok().map(|d| d.claims)
        };
        if let Some(claims) = self.bearer.iter().find_map(|k| decode(&k.key, k.alg)) {
            return Some(claims);
        }
        let jwks = self.jwks.as_ref()?;
        let kid = jsonwebtoken::decode_header(token).ok().and_then(|h| h.kid);
        let keys = jwks.keys();
        let claims = keys
            .iter()
            .filter(|k| kid.is_none() || k.kid.is_none() || k.kid == kid)
            .find_map(|k| decode(&k.key, k.alg));
        if claims.is_none()
            && let Some(kid) = &kid
        {
            jwks.unknown_key(kid);
        }
        claims
    }

    /// Checks a PlatformAccessToken against the keys of the issuer it names, and its app claim.
    fn decode_platform(&self, token: &str) -> Result<(String, Map<String, Value>), &'static str> {
        const INVALID: &str =
            "The PlatformAccessToken is invalid, expired or not signed by its issuer's key.";
        let issuer = unverified_issuer(token).ok_or(INVALID)?;
        let derived;
        let keys: Vec<(&DecodingKey, Algorithm)> = match &self.platform {
            PlatformKeys::Issuers(map) => {
                map.get(&issuer).ok_or(INVALID)?.iter().map(|k| (&k.key, k.alg)).collect()
            }
            PlatformKeys::Derived(secret) => {
                derived = DecodingKey::from_secret(&derived_platform_key(secret, &issuer));
                vec![(&derived, Algorithm::HS256)]
            }
        };
        let claims = keys
            .into_iter()
            .find_map(|(key, alg)| {
                let mut v = validation(alg);
                v.set_issuer(&[issuer.as_str()]);
                v.set_required_spec_claims(&["exp", "iss"]);
                jsonwebtoken::decode::<Map<String, Value>>(token, key, &v).ok().map(|d| d.claims)
            })
            .ok_or(INVALID)?;
        match claims.get(APP_CLAIM) {
            Some(Value::String(app)) if !app.trim().is_empty() => Ok((issuer, claims)),
            _ => Err(
                "The PlatformAccessToken has no urn:altinn:app claim naming the app it was issued to.",
            ),
        }
    }

    /// Authorises an order API call from its headers: a PlatformAccessToken when that header
    /// is present (then it alone decides, whatever bearer token comes with it, as Altinn's
    /// apps send both), otherwise a bearer token with the create scope and the org claim.
    pub fn authorize(&self, headers: &poem::http::HeaderMap) -> Result<Principal, ApiError> {
        if let Some(platform) = platform_header(headers)? {
            let (org, _) = self.decode_platform(platform).map_err(ApiError::unauthorized)?;
            return Ok(Principal { org, credential: Credential::Platform });
        }
        let Some(token) = bearer_header(headers)? else {
            return Err(ApiError::unauthorized(
                "A bearer token (Authorization: Bearer …) or a PlatformAccessToken header is required.",
            ));
        };
        self.bearer_creator(token, CREATE_SCOPE)
    }

    /// Authorises `POST /future/orders/composed-email`: only a bearer token with the
    /// composed-email scope and the org claim (Altinn takes no PlatformAccessToken there).
    pub fn authorize_composed(
        &self,
        headers: &poem::http::HeaderMap,
    ) -> Result<Principal, ApiError> {
        let Some(token) = bearer_header(headers)? else {
            return Err(ApiError::unauthorized(format!(
                "A bearer token (Authorization: Bearer …) with the scope {COMPOSED_EMAIL_SCOPE} is required."
            )));
        };
        self.bearer_creator(token, COMPOSED_EMAIL_SCOPE)
    }

    /// The creator of a valid bearer token with `scope`, named by its org claim.
    fn bearer_creator(&self, token: &str, scope: &str) -> Result<Principal, ApiError> {
        let claims = self.bearer_claims(token)?;
        if !has_scope(&claims, scope)? {
            return Err(ApiError::forbidden(format!("The token lacks the scope {scope}.")));
        }
        match claims.get(ORG_CLAIM) {
            Some(Value::String(org)) if !org.trim().is_empty() => {
                Ok(Principal { org: org.trim().to_owned(), credential: Credential::Bearer })
            }
            None | Some(Value::Null) => Err(ApiError::forbidden(format!(
                "The token has no {ORG_CLAIM} claim naming the creator."
            ))),
            Some(Value::String(_)) => {
                Err(ApiError::forbidden(format!("The token's {ORG_CLAIM} claim is empty.")))
            }
            Some(other) => Err(ApiError::forbidden(format!(
                "The token's {ORG_CLAIM} claim must be a string naming the organisation, not {}.",
                json_kind(other)
            ))),
        }
    }

    /// Authorises an operator endpoint: a valid bearer token with the operator scope. The
    /// operator as the token names them (its `sub`, else its `client_id`, else its org), for the
    /// record of what they do.
    pub fn authorize_operator(&self, headers: &poem::http::HeaderMap) -> Result<String, ApiError> {
        let Some(token) = bearer_header(headers)? else {
            return Err(ApiError::unauthorized(
                "A bearer token with the scope varsel:operator is required.",
            ));
        };
        let claims = self.bearer_claims(token)?;
        if has_scope(&claims, OPERATOR_SCOPE)? {
            let named = ["sub", "client_id", ORG_CLAIM]
                .iter()
                .find_map(|c| claims.get(*c).and_then(Value::as_str).filter(|v| !v.is_empty()));
            Ok(format!("operator {}", named.unwrap_or("(unnamed)")))
        } else {
            Err(ApiError::forbidden(format!("The token lacks the scope {OPERATOR_SCOPE}.")))
        }
    }

    /// Whether the headers carry a valid operator token (an operator may read any org's order).
    pub fn is_operator(&self, headers: &poem::http::HeaderMap) -> bool {
        platform_header(headers).is_ok_and(|p| p.is_none())
            && self.authorize_operator(headers).is_ok()
    }

    fn bearer_claims(&self, token: &str) -> Result<Map<String, Value>, ApiError> {
        let claims = self.decode_bearer(token).ok_or_else(|| {
            ApiError::unauthorized("The token is invalid, expired or not signed by a trusted key.")
        })?;
        if claims.contains_key(APP_CLAIM) {
            return Err(ApiError::unauthorized(
                "A PlatformAccessToken belongs in the PlatformAccessToken header, not in Authorization.",
            ));
        }
        Ok(claims)
    }
}

fn validation(alg: Algorithm) -> Validation {
    let mut v = Validation::new(alg);
    v.leeway = LEEWAY_SECS;
    v.validate_nbf = true;
    v.validate_aud = false;
    v
}

/// The `iss` of a token before its signature is checked: only to pick the issuer's keys, which
/// then verify the token with that issuer required.
fn unverified_issuer(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Map<String, Value> = serde_json::from_slice(&raw).ok()?;
    match claims.get("iss") {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
        _ => None,
    }
}

fn has_scope(claims: &Map<String, Value>, wanted: &str) -> Result<bool, ApiError> {
    match claims.get("scope") {
        None | Some(Value::Null) => Ok(false),
        Some(Value::String(s)) => Ok(s.split_whitespace().any(|s| s == wanted)),
        Some(other) => Err(ApiError::forbidden(format!(
            "The token's scope claim must be a space-separated string, not {}.",
            json_kind(other)
        ))),
    }
}

/// The one value of a header, refusing repeats and values that are not visible ASCII.
fn single_header<'a>(
    headers: &'a poem::http::HeaderMap,
    name: &str,
) -> Result<Option<&'a str>, ApiError> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else { return Ok(None) };
    if values.next().is_some() {
        return Err(ApiError::unauthorized(format!("Send one {name} header, not several.")));
    }
    let text = first
        .to_str()
        .map_err(|_| ApiError::unauthorized(format!("The {name} header is not visible ASCII.")))?;
    Ok(Some(text.trim()).filter(|t| !t.is_empty()))
}

/// The credentials of an `Authorization` header of `scheme` (matched regardless of case, as
/// RFC 9110 §11.1 says); a header with another scheme, or a bare token, is refused.
pub fn authorization<'a>(
    headers: &'a poem::http::HeaderMap,
    scheme: &str,
) -> Result<Option<&'a str>, ApiError> {
    let Some(value) = single_header(headers, "Authorization")? else { return Ok(None) };
    let refuse = || {
        ApiError::unauthorized(format!(
            "The Authorization header must use the {scheme} scheme: `Authorization: {scheme} <credentials>`."
        ))
    };
    let (given, credentials) = value.split_once([' ', '\t']).ok_or_else(refuse)?;
    if !given.eq_ignore_ascii_case(scheme) {
        return Err(refuse());
    }
    let credentials = credentials.trim();
    if credentials.is_empty() || credentials.contains([' ', '\t']) {
        return Err(ApiError::unauthorized(format!(
            "The {scheme} credentials are missing or malformed."
        )));
    }
    Ok(Some(credentials))
}

fn bearer_header(headers: &poem::http::HeaderMap) -> Result<Option<&str>, ApiError> {
    authorization(headers, "Bearer")
}

fn platform_header(headers: &poem::http::HeaderMap) -> Result<Option<&str>, ApiError> {
    single_header(headers, PLATFORM_HEADER)
}

/// Reads the secret that authenticates delivery reports, creating it on first use.
pub fn load_or_create_report_secret(cfg: &crate::config::Config) -> anyhow::Result<String> {
    if !cfg.reports.secret.is_empty() {
        return Ok(cfg.reports.secret.expose().to_owned());
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

/// Which token to mint.
#[derive(Debug, Clone)]
pub enum TokenKind {
    /// A Maskinporten-style service owner token (issuer `varsel-dev`).
    Bearer {
        /// Creator org.
        org: String,
        /// Scopes, space-separated.
        scope: String,
    },
    /// A PlatformAccessToken issued by `org` to `app`.
    Platform {
        /// Creator org (issuer).
        org: String,
        /// The app claim (`urn:altinn:app`).
        app: String,
    },
}

/// Mints an HS256 token with `key`, valid for `ttl_secs`. For a platform token `key` is the
/// issuer's own key ([`derived_platform_key`] in the dev key set).
pub fn mint(key: &[u8], kind: TokenKind, ttl_secs: i64) -> anyhow::Result<String> {
    let now = chrono::Utc::now().timestamp();
    let claims = match kind {
        TokenKind::Bearer { org, scope } => json!({
            "iss": DEV_ISSUER, "sub": format!("org:{org}"), "scope": scope, ORG_CLAIM: org,
            "exp": now + ttl_secs, "nbf": now, "iat": now,
        }),
        TokenKind::Platform { org, app } => json!({
            "iss": org, APP_CLAIM: app, "exp": now + ttl_secs, "nbf": now, "iat": now,
        }),
    };
    Ok(jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(key),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use poem::http::{HeaderMap, HeaderValue};

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn authorization_schemes_are_case_insensitive_and_bare_tokens_refused() {
        for v in ["Bearer abc", "bearer abc", "BEARER abc", "BeArEr   abc "] {
            assert_eq!(
                authorization(&headers(&[("authorization", v)]), "Bearer").unwrap(),
                Some("abc"),
                "{v}"
            );
        }
        for v in ["abc", "Basic abc", "Bearer", "Bearer a b", "Bearerabc"] {
            assert!(authorization(&headers(&[("authorization", v)]), "Bearer").is_err(), "{v}");
        }
        assert!(
            authorization(
                &headers(&[("authorization", "Bearer a"), ("authorization", "Bearer b")]),
                "Bearer"
            )
            .is_err()
        );
        assert_eq!(authorization(&HeaderMap::new(), "Bearer").unwrap(), None);
    }

    #[test]
    fn each_issuer_has_its_own_derived_key() {
        let secret = b"0123456789abcdef0123456789abcdef";
        assert_ne!(derived_platform_key(secret, "ttd"), derived_platform_key(secret, "nav"));
        assert_eq!(derived_platform_key(secret, "ttd"), derived_platform_key(secret, "ttd"));
    }
}
