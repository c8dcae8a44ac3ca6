//! Tokens signed with public-key algorithms, as Maskinporten and Altinn issue them: RS256 and
//! ES256 bearer tokens verified with the configured public keys, a PlatformAccessToken verified
//! with its own issuer's EC key, and the algorithm confusions a verifier must refuse (an HMAC
//! token keyed with the public key, a header naming another algorithm, another private key).

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use varsel_api::auth::{APP_CLAIM, CREATE_SCOPE, DEV_ISSUER, ORG_CLAIM, PLATFORM_HEADER};
use varsel_api::config::IssuerKeys;
use varsel_tests::{Db, TestApp, TestAppOptions};

/// A key pair written by `openssl`: (private key PEM, public key file).
fn key_pair(dir: &Path, name: &str, algorithm: &[&str]) -> (Vec<u8>, PathBuf) {
    let private = dir.join(format!("{name}.key"));
    let public = dir.join(format!("{name}.pub.pem"));
    let run = |args: &[&str]| {
        let out = Command::new("openssl").args(args).output().expect("openssl (Debian's openssl)");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let mut generate = vec!["genpkey"];
    generate.extend_from_slice(algorithm);
    generate.extend_from_slice(&["-out", private.to_str().unwrap()]);
    run(&generate);
    run(&["pkey", "-in", private.to_str().unwrap(), "-pubout", "-out", public.to_str().unwrap()]);
    (std::fs::read(&private).unwrap(), public)
}

const RSA: &[&str] = &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"];
const EC: &[&str] = &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"];

fn bearer_claims() -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({"iss": DEV_ISSUER, "scope": CREATE_SCOPE, ORG_CLAIM: "ttd", "exp": now + 600})
}

fn sign(alg: Algorithm, key: &EncodingKey, claims: &Value) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, key).expect("sign")
}

/// A token whose header says `alg` but which carries the signature `other` made.
fn with_header(alg: &str, other: &str) -> String {
    use base64::Engine;
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(json!({"alg": alg, "typ": "JWT"}).to_string());
    let mut parts = other.split('.');
    let (_, payload, signature) = (parts.next(), parts.next().unwrap(), parts.next().unwrap());
    format!("{header}.{payload}.{signature}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_key_tokens_are_verified_and_algorithm_confusion_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (rsa_private, rsa_public) = key_pair(dir.path(), "rsa", RSA);
    let (ec_private, ec_public) = key_pair(dir.path(), "ec", EC);
    let (other_private, _) = key_pair(dir.path(), "other", RSA);
    let (platform_private, platform_public) = key_pair(dir.path(), "platform", EC);
    let mut opts = TestAppOptions::new(Db::Sqlite, "");
    let keys = vec![rsa_public.clone(), ec_public];
    opts.tweak = Box::new(move |c| {
        c.auth.public_key_files = keys;
        c.auth.platform_issuers.insert(
            "digdir".into(),
            IssuerKeys { hmac_secrets: vec![], public_key_files: vec![platform_public] },
        );
    });
    let app = TestApp::spawn(opts).await;
    let order =
        json!({"subject": "s", "body": "b", "recipients": [{"emailAddress": "k@example.no"}]});
    let url = format!("{}/notifications/api/v1/orders/email", app.base_url);
    let bearer = |token: String| {
        let req = app.http.post(&url).bearer_auth(token).json(&order);
        async move { req.send().await.unwrap().status().as_u16() }
    };

    let rsa = EncodingKey::from_rsa_pem(&rsa_private).unwrap();
    let ec = EncodingKey::from_ec_pem(&ec_private).unwrap();
    let claims = bearer_claims();
    let rs256 = sign(Algorithm::RS256, &rsa, &claims);
    assert_eq!(bearer(rs256.clone()).await, 202, "an RS256 token of a configured key");
    assert_eq!(bearer(sign(Algorithm::ES256, &ec, &claims)).await, 202, "an ES256 token");
    // The HMAC key of the test app still works beside the public keys.
    assert_eq!(bearer(app.token("ttd")).await, 202, "an HS256 token of the configured secret");

    // Algorithm confusion: the public key (which anyone may have) used as an HMAC secret.
    let public_pem = std::fs::read(&rsa_public).unwrap();
    let confused = sign(Algorithm::HS256, &EncodingKey::from_secret(&public_pem), &claims);
    assert_eq!(bearer(confused).await, 401, "HS256 keyed with the RSA public key");
    // A header that names another algorithm than the one the key is for.
    assert_eq!(bearer(with_header("ES256", &rs256)).await, 401, "RS256 signature, ES256 header");
    assert_eq!(bearer(with_header("HS256", &rs256)).await, 401, "RS256 signature, HS256 header");
    assert_eq!(bearer(with_header("none", &rs256)).await, 401, "alg none");
    // A well-formed RS256 token of a key nobody configured.
    let stranger = EncodingKey::from_rsa_pem(&other_private).unwrap();
    assert_eq!(bearer(sign(Algorithm::RS256, &stranger, &claims)).await, 401, "unknown key");
    // A valid signature over claims changed afterwards.
    let tampered = {
        use base64::Engine;
        let mut parts: Vec<String> = rs256.split('.').map(str::to_owned).collect();
        let mut changed = claims.clone();
        changed[ORG_CLAIM] = json!("nav");
        parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(changed.to_string());
        parts.join(".")
    };
    assert_eq!(bearer(tampered).await, 401, "claims changed after signing");

    // A PlatformAccessToken of an issuer with an EC key: its own key only.
    let now = chrono::Utc::now().timestamp();
    let platform_claims =
        json!({"iss": "digdir", APP_CLAIM: "digdir/app", "exp": now + 600, "nbf": now, "iat": now});
    let platform = |token: String| {
        let req = app.http.post(&url).header(PLATFORM_HEADER, token).json(&order);
        async move { req.send().await.unwrap() }
    };
    let platform_key = EncodingKey::from_ec_pem(&platform_private).unwrap();
    let resp = platform(sign(Algorithm::ES256, &platform_key, &platform_claims)).await;
    assert_eq!(resp.status(), 202, "a platform token of the issuer's EC key");
    let id = resp.json::<Value>().await.unwrap()["orderId"].as_str().unwrap().to_owned();
    assert_eq!(app.order_row(&id).await.order.creator, "digdir", "the issuer is the creator");
    // The bearer keys do not verify platform tokens, nor the issuer's key bearer tokens.
    let by_bearer_key = sign(Algorithm::ES256, &ec, &platform_claims);
    assert_eq!(platform(by_bearer_key).await.status(), 401, "platform token of a bearer key");
    assert_eq!(
        bearer(sign(Algorithm::ES256, &platform_key, &claims)).await,
        401,
        "bearer token of a platform issuer's key"
    );
    app.stop().await;
}

/// The public RSA key of `public` as a JWK (`n` from openssl's modulus; `e` is 65537).
fn rsa_jwk(public: &Path, kid: &str) -> Value {
    use base64::Engine;
    let out = Command::new("openssl")
        .args(["rsa", "-pubin", "-in", public.to_str().unwrap(), "-noout", "-modulus"])
        .output()
        .expect("openssl");
    let text = String::from_utf8(out.stdout).unwrap();
    let hex = text.trim().trim_start_matches("Modulus=");
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    let n = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": n, "e": "AQAB"})
}

/// Bearer keys from a JWK set, as Maskinporten publishes its own: a token of a key in the set
/// is accepted; after the provider rotates to a new key, the first tokens naming it make varsel
/// fetch the set again and are accepted within seconds, and the retired key's are refused. A
/// symmetric key published in the set verifies nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_keys_come_from_a_jwk_set_and_follow_its_rotation() {
    use poem::listener::{Acceptor, Listener};
    let dir = tempfile::tempdir().unwrap();
    let (first_private, first_public) = key_pair(dir.path(), "first", RSA);
    let (next_private, next_public) = key_pair(dir.path(), "next", RSA);
    let secret = b"a published secret that must verify nothing at all";
    let oct = {
        use base64::Engine;
        let k = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret);
        json!({"kty": "oct", "kid": "oct-1", "k": k})
    };
    let set = std::sync::Arc::new(std::sync::Mutex::new(
        json!({"keys": [rsa_jwk(&first_public, "first"), oct]}),
    ));
    let served = set.clone();
    let jwk_endpoint =
        poem::endpoint::make_sync(move |_| poem::web::Json(served.lock().unwrap().clone()));
    let acceptor = poem::listener::TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
    let port = acceptor.local_addr()[0].as_socket_addr().unwrap().port();
    tokio::spawn(
        poem::Server::new_with_acceptor(acceptor).run(poem::Route::new().at("/jwk", jwk_endpoint)),
    );

    let mut opts = TestAppOptions::new(Db::Sqlite, "");
    opts.tweak = Box::new(move |c| {
        c.auth.hmac_secrets.clear();
        c.auth.jwks_urls = vec![format!("http://127.0.0.1:{port}/jwk")];
    });
    let app = TestApp::spawn(opts).await;
    let order =
        json!({"subject": "s", "body": "b", "recipients": [{"emailAddress": "j@example.no"}]});
    let url = format!("{}/notifications/api/v1/orders/email", app.base_url);
    let bearer = |token: String| {
        let req = app.http.post(&url).bearer_auth(token).json(&order);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    let signed = |private: &[u8], kid: &str| {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.to_owned());
        let key = EncodingKey::from_rsa_pem(private).unwrap();
        jsonwebtoken::encode(&header, &bearer_claims(), &key).unwrap()
    };

    let first = signed(&first_private, "first");
    let bearer_ref = &bearer;
    varsel_tests::eventually(
        "the set is fetched at start",
        std::time::Duration::from_secs(10),
        || {
            let token = first.clone();
            async move { (bearer_ref(token).await == 202).then_some(()) }
        },
    )
    .await;
    let mut oct_header = Header::new(Algorithm::HS256);
    oct_header.kid = Some("oct-1".into());
    let by_oct =
        jsonwebtoken::encode(&oct_header, &bearer_claims(), &EncodingKey::from_secret(secret))
            .unwrap();
    assert_eq!(bearer(by_oct).await, 401, "a symmetric key of the set verifies nothing");
    assert_eq!(bearer(app.token("ttd")).await, 401, "no HMAC secret is configured");

    // The provider rotates: the set now holds only the next key.
    *set.lock().unwrap() = json!({"keys": [rsa_jwk(&next_public, "next")]});
    let next = signed(&next_private, "next");
    let took = std::time::Instant::now();
    varsel_tests::eventually(
        "the next key is accepted",
        std::time::Duration::from_secs(20),
        || {
            let token = next.clone();
            async move { (bearer_ref(token).await == 202).then_some(()) }
        },
    )
    .await;
    eprintln!("JWKS rotation picked up {:?} after the first token of the new key", took.elapsed());
    assert_eq!(bearer(first).await, 401, "the retired key is refused");
    app.stop().await;
}
