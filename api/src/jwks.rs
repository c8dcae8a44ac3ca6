//! Bearer-token keys published as a JWK set (Maskinporten's `https://maskinporten.no/jwk`, an
//! identity provider's): fetched at start and every `VARSEL_AUTH_JWKS_REFRESH_SECS`, and again
//! (at most every [`MIN_INTERVAL`]) when a token names a key id the set lacks, so a rotation is
//! picked up by its first tokens. RSA keys verify RS256 and P-256 keys ES256 only; symmetric
//! (`oct`) keys, encryption keys and keys that name another algorithm are ignored: a published
//! secret verifies nothing.

use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// The shortest time between two fetches, however many unknown key ids arrive.
pub const MIN_INTERVAL: Duration = Duration::from_secs(5);

/// One usable key of the set.
#[derive(Clone)]
pub struct JwksKey {
    /// Its `kid`.
    pub kid: Option<String>,
    /// The key.
    pub key: DecodingKey,
    /// The one algorithm it verifies.
    pub alg: Algorithm,
}

/// The keys of the configured JWK sets, kept fresh by a task of their own.
pub struct Jwks {
    urls: Vec<String>,
    every: Duration,
    keys: RwLock<Arc<Vec<JwksKey>>>,
    wanted: tokio::sync::Notify,
    http: reqwest::Client,
}

impl Jwks {
    /// The sets at `urls`, refreshed `every`; empty until [`Jwks::start`]'s first fetch.
    pub fn new(urls: Vec<String>, every: Duration) -> Arc<Self> {
        Arc::new(Self {
            urls,
            every: every.max(MIN_INTERVAL),
            keys: Default::default(),
            wanted: Default::default(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("an HTTP client"),
        })
    }

    /// The keys as last fetched.
    pub fn keys(&self) -> Arc<Vec<JwksKey>> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// A token named a key id the set lacks: fetch again soon (a rotation).
    pub fn unknown_key(&self, kid: &str) {
        if !self.keys().iter().any(|k| k.kid.as_deref() == Some(kid)) {
            self.wanted.notify_one();
        }
    }

    /// Fetches every set once; the keys found.
    pub async fn refresh(&self) -> anyhow::Result<usize> {
        let mut keys = Vec::new();
        for url in &self.urls {
            let set: JwkSet = self
                .http
                .get(url)
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .map_err(|e| anyhow::anyhow!("JWKS {url}: {e}"))?
                .json()
                .await
                .map_err(|e| anyhow::anyhow!("JWKS {url}: not a JWK set: {e}"))?;
            keys.extend(set.keys.iter().filter_map(usable));
        }
        let n = keys.len();
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
        Ok(n)
    }

    /// Fetches now and then keeps the keys fresh, on the current runtime.
    pub fn start(self: &Arc<Self>) {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                match this.refresh().await {
                    Ok(n) => tracing::info!(keys = n, urls = ?this.urls, "token keys fetched"),
                    Err(e) => {
                        tracing::warn!(error = %e, "token keys could not be fetched; kept the last ones")
                    }
                }
                tokio::time::sleep(MIN_INTERVAL).await;
                tokio::select! {
                    () = tokio::time::sleep(this.every.saturating_sub(MIN_INTERVAL)) => {}
                    () = this.wanted.notified() => {}
                }
            }
        });
    }
}

/// A key of the set, if it is one varsel verifies bearer tokens with.
fn usable(jwk: &Jwk) -> Option<JwksKey> {
    let (alg, named) = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => (Algorithm::RS256, KeyAlgorithm::RS256),
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
            (Algorithm::ES256, KeyAlgorithm::ES256)
        }
        _ => return None,
    };
    if jwk.common.public_key_use.as_ref().is_some_and(|u| *u != PublicKeyUse::Signature) {
        return None;
    }
    // A key that names its algorithm must name this one.
    if jwk.common.key_algorithm.is_some_and(|a| a != named) {
        return None;
    }
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(JwksKey { kid: jwk.common.key_id.clone(), key, alg })
}
