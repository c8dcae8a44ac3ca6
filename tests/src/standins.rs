//! Stand-ins for the services varsel calls that these machines cannot reach: Maskinporten's
//! token endpoint and KRR's lookup service. Each is a real HTTP server on loopback that speaks
//! the documented wire format and checks what the real service checks: the token endpoint
//! verifies the JWT-bearer grant's RS256 signature against the client's registered key, its
//! audience, issuer, scope and lifetime; KRR accepts only unexpired tokens it issued for its
//! scope, and at most 1,000 numbers a call.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use poem::http::StatusCode;
use poem::listener::{Acceptor, Listener};
use poem::web::{Data, Form, Json};
use poem::{EndpointExt, IntoResponse, Response, Route, handler, post};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// An RSA key pair made with `openssl` in a temporary folder.
pub struct RsaKey {
    /// The private key, PEM (PKCS#8).
    pub private: PathBuf,
    /// The public key, PEM.
    pub public: PathBuf,
    _dir: tempfile::TempDir,
}

impl RsaKey {
    /// A self-signed business certificate for the key (PEM) and both in a PKCS#12 file opened
    /// by `password`, as a business certificate is delivered.
    pub fn pkcs12(&self, password: &str) -> (PathBuf, PathBuf) {
        let dir = self.private.parent().unwrap();
        let (cert, p12) = (dir.join("cert.pem"), dir.join("key.p12"));
        let key = self.private.to_str().unwrap();
        crate::openssl(
            dir,
            &[
                "req",
                "-x509",
                "-key",
                key,
                "-subj",
                "/CN=varsel test business",
                "-days",
                "2",
                "-out",
                cert.to_str().unwrap(),
            ],
        );
        let pass = format!("pass:{password}");
        crate::openssl(
            dir,
            &[
                "pkcs12",
                "-export",
                "-inkey",
                key,
                "-in",
                cert.to_str().unwrap(),
                "-out",
                p12.to_str().unwrap(),
                "-passout",
                &pass,
            ],
        );
        (cert, p12)
    }

    /// A new 2048-bit key.
    pub fn generate() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let private = dir.path().join("key.pem");
        let public = dir.path().join("public.pem");
        let run = |args: &[&str]| crate::openssl(dir.path(), args);
        let (p, q) = (private.to_str().unwrap(), public.to_str().unwrap());
        run(&["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", p]);
        run(&["pkey", "-in", p, "-pubout", "-out", q]);
        Self { private, public, _dir: dir }
    }
}

fn listen_port(acceptor: &impl Acceptor) -> u16 {
    acceptor.local_addr()[0].as_socket_addr().unwrap().port()
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    Json(json!({"error": error, "error_description": description}))
        .with_status(status)
        .into_response()
}

struct Issued {
    scope: String,
    expires: Instant,
}

/// Whether `token` was issued by `state` for `scope` and has not expired.
fn token_valid(state: &TokenState, token: &str, scope: &str) -> bool {
    state
        .issued
        .lock()
        .unwrap()
        .get(token)
        .is_some_and(|i| i.scope.split(' ').any(|s| s == scope) && Instant::now() < i.expires)
}

struct TokenState {
    issuer: String,
    client_id: String,
    kid: String,
    /// The client's business certificate (base64 DER), when it signs with one (`x5c`).
    certificate: Mutex<Option<String>>,
    key: DecodingKey,
    scopes: Vec<String>,
    lifetime: Mutex<Duration>,
    issued: Mutex<HashMap<String, Issued>>,
    count: AtomicU64,
    jtis: Mutex<std::collections::HashSet<String>>,
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: String,
    assertion: String,
}

#[derive(Deserialize)]
struct GrantClaims {
    iss: String,
    scope: String,
    iat: i64,
    exp: i64,
    jti: String,
}

#[handler]
async fn issue_token(Form(form): Form<TokenForm>, state: Data<&Arc<TokenState>>) -> Response {
    let bad = |d: &str| oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", d);
    if form.grant_type != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "jwt-bearer only");
    }
    let Ok(header) = jsonwebtoken::decode_header(&form.assertion) else {
        return bad("the assertion is not a JWT");
    };
    let by_kid = header.kid.as_deref() == Some(state.kid.as_str());
    let certificate = state.certificate.lock().unwrap().clone();
    let by_certificate = certificate.is_some()
        && header.x5c.as_ref().and_then(|c| c.first()) == certificate.as_ref();
    if !by_kid && !by_certificate {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            "unknown kid or certificate",
        );
    }
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[state.issuer.as_str()]);
    validation.set_required_spec_claims(&["aud", "iss", "exp", "iat"]);
    validation.leeway = 0;
    let claims = match jsonwebtoken::decode::<GrantClaims>(&form.assertion, &state.key, &validation)
    {
        Ok(d) => d.claims,
        Err(e) => return bad(&format!("the assertion does not verify: {e}")),
    };
    if claims.iss != state.client_id {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_client", "unknown client");
    }
    if claims.exp - claims.iat > 120 {
        return bad("the assertion lives longer than 120 seconds");
    }
    if !state.jtis.lock().unwrap().insert(claims.jti) {
        return bad("the assertion's jti was used before");
    }
    if claims.scope.split(' ').any(|s| !state.scopes.iter().any(|a| a == s)) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "scope not granted to client",
        );
    }
    let lifetime = *state.lifetime.lock().unwrap();
    let access = uuid::Uuid::new_v4().to_string();
    state.issued.lock().unwrap().insert(
        access.clone(),
        Issued { scope: claims.scope.clone(), expires: Instant::now() + lifetime },
    );
    state.count.fetch_add(1, Ordering::SeqCst);
    Json(json!({
        "access_token": access, "token_type": "Bearer",
        "expires_in": lifetime.as_secs(), "scope": claims.scope
    }))
    .into_response()
}

/// Maskinporten's token endpoint, for one client and its key.
pub struct MaskinportenStandIn {
    /// `http://127.0.0.1:<port>/token`.
    pub token_url: String,
    /// The issuer, and the audience a grant must name: `http://127.0.0.1:<port>/`.
    pub issuer: String,
    state: Arc<TokenState>,
}

impl MaskinportenStandIn {
    /// Registers `client_id` with `public_key` (PEM) as `kid`, allowed `scopes`; tokens live
    /// `lifetime`.
    pub async fn start(
        client_id: &str,
        kid: &str,
        public_key: &Path,
        scopes: &[&str],
        lifetime: Duration,
    ) -> Self {
        let acceptor =
            poem::listener::TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
        let port = listen_port(&acceptor);
        let issuer = format!("http://127.0.0.1:{port}/");
        let state = Arc::new(TokenState {
            issuer: issuer.clone(),
            client_id: client_id.to_owned(),
            kid: kid.to_owned(),
            certificate: Default::default(),
            key: DecodingKey::from_rsa_pem(&std::fs::read(public_key).unwrap()).unwrap(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            lifetime: Mutex::new(lifetime),
            issued: Default::default(),
            count: Default::default(),
            jtis: Default::default(),
        });
        let app = Route::new().at("/token", post(issue_token)).data(state.clone());
        tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(app));
        Self { token_url: format!("http://127.0.0.1:{port}/token"), issuer, state }
    }

    /// Accepts grants that carry this business certificate (PEM) as the first of `x5c`; the
    /// certificate must hold the registered key.
    pub fn register_certificate(&self, pem: &Path) {
        let text = std::fs::read_to_string(pem).unwrap();
        let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
        *self.state.certificate.lock().unwrap() = Some(body);
    }

    /// Tokens issued so far.
    pub fn issued(&self) -> u64 {
        self.state.count.load(Ordering::SeqCst)
    }

    /// Whether `token` was issued here for `scope` and has not expired (what a resource server
    /// that trusts this Maskinporten checks).
    pub fn accepts(&self, token: &str, scope: &str) -> bool {
        token_valid(&self.state, token, scope)
    }
}

struct KrrState {
    persons: Mutex<HashMap<String, Value>>,
    tokens: Arc<TokenState>,
    scope: String,
    down: AtomicBool,
    delay: Mutex<Duration>,
    calls: AtomicUsize,
    numbers: AtomicUsize,
    refused: Mutex<Vec<String>>,
}

#[derive(Deserialize)]
struct KrrRequest {
    personidentifikatorer: Vec<String>,
}

#[handler]
async fn personer(req: &poem::Request, body: poem::Body, state: Data<&Arc<KrrState>>) -> Response {
    let token = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !token_valid(&state.tokens, token, &state.scope) {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "no valid token for the scope",
        );
    }
    state.calls.fetch_add(1, Ordering::SeqCst);
    let delay = *state.delay.lock().unwrap();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if state.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let Ok(request) =
        serde_json::from_slice::<KrrRequest>(&body.into_vec().await.unwrap_or_default())
    else {
        return Json(json!({"message": "not a lookup"}))
            .with_status(StatusCode::BAD_REQUEST)
            .into_response();
    };
    let n = request.personidentifikatorer.len();
    if n == 0 || n > 1000 {
        return Json(json!({"message": "1 to 1000 personidentifikatorer"}))
            .with_status(StatusCode::BAD_REQUEST)
            .into_response();
    }
    let refused = state.refused.lock().unwrap().clone();
    if request.personidentifikatorer.iter().any(|p| refused.contains(p)) {
        return Json(json!({"message": "invalid personidentifikator"}))
            .with_status(StatusCode::BAD_REQUEST)
            .into_response();
    }
    state.numbers.fetch_add(n, Ordering::SeqCst);
    let persons = state.persons.lock().unwrap();
    let personer: Vec<Value> = request
        .personidentifikatorer
        .iter()
        .map(|p| {
            persons
                .get(p)
                .cloned()
                .unwrap_or_else(|| json!({"personidentifikator": p, "status": "IKKE_REGISTRERT"}))
        })
        .collect();
    Json(json!({ "personer": personer })).into_response()
}

/// KRR's lookup service (`POST /rest/v1/personer`).
pub struct KrrStandIn {
    /// The base URL (`VARSEL_KRR_URL`).
    pub url: String,
    state: Arc<KrrState>,
}

/// The KRR scope varsel asks for.
pub const KRR_SCOPE: &str = "krr:global/kontaktinformasjon.read";

impl KrrStandIn {
    /// KRR accepting the tokens `maskinporten` issues for [`KRR_SCOPE`].
    pub async fn start(maskinporten: &MaskinportenStandIn) -> Self {
        let acceptor =
            poem::listener::TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
        let port = listen_port(&acceptor);
        let state = Arc::new(KrrState {
            persons: Default::default(),
            tokens: maskinporten.state.clone(),
            scope: KRR_SCOPE.to_owned(),
            down: Default::default(),
            delay: Default::default(),
            calls: Default::default(),
            numbers: Default::default(),
            refused: Default::default(),
        });
        let app = Route::new().at("/rest/v1/personer", post(personer)).data(state.clone());
        tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(app));
        Self { url: format!("http://127.0.0.1:{port}"), state }
    }

    /// Adds or replaces a person, as KRR writes it (`personidentifikator`, `reservasjon`,
    /// `status`, `varslingsstatus`, `kontaktinformasjon`).
    pub fn put(&self, person: Value) {
        let nin = person["personidentifikator"].as_str().unwrap().to_owned();
        self.state.persons.lock().unwrap().insert(nin, person);
    }

    /// An active, unreserved person with an email and a mobile changed at `updated`.
    pub fn put_active(&self, nin: &str, email: &str, mobile: &str, updated: &str) {
        self.put(json!({
            "personidentifikator": nin, "reservasjon": "NEI", "status": "AKTIV",
            "varslingsstatus": "KAN_VARSLES",
            "kontaktinformasjon": {
                "epostadresse": email, "epostadresse_oppdatert": updated,
                "mobiltelefonnummer": mobile, "mobiltelefonnummer_oppdatert": updated
            }
        }));
    }

    /// Answers 503 while down.
    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    /// Waits this long before each answer.
    pub fn set_delay(&self, delay: Duration) {
        *self.state.delay.lock().unwrap() = delay;
    }

    /// Answers 400 to any call that names `nin`.
    pub fn refuse(&self, nin: &str) {
        self.state.refused.lock().unwrap().push(nin.to_owned());
    }

    /// Calls with a valid token so far.
    pub fn calls(&self) -> usize {
        self.state.calls.load(Ordering::SeqCst)
    }

    /// Numbers answered so far.
    pub fn numbers(&self) -> usize {
        self.state.numbers.load(Ordering::SeqCst)
    }
}

struct ProfileState {
    persons: Mutex<HashMap<String, (Value, bool)>>,
    organizations: Mutex<HashMap<String, Value>>,
    external: Mutex<HashMap<String, Value>>,
    calls: AtomicUsize,
}

fn list(items: Vec<Value>) -> Response {
    Json(json!({ "contactPointsList": items })).into_response()
}

fn strings(body: &Value, key: &str) -> Vec<String> {
    body[key]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

#[handler]
async fn profile_persons(Json(body): Json<Value>, state: Data<&Arc<ProfileState>>) -> Response {
    state.calls.fetch_add(1, Ordering::SeqCst);
    let allow_stale = body["useStaleContactInfo"].as_bool().unwrap_or(false);
    let persons = state.persons.lock().unwrap();
    list(
        strings(&body, "nationalIdentityNumbers")
            .iter()
            .filter_map(|n| persons.get(n))
            .map(|(p, stale)| {
                let mut p = p.clone();
                if *stale && !allow_stale {
                    // Profile leaves KRR details older than 18 months out unless asked.
                    p["email"] = json!("");
                    p["mobileNumber"] = json!("");
                }
                p
            })
            .collect(),
    )
}

#[handler]
async fn profile_organizations(
    Json(body): Json<Value>,
    state: Data<&Arc<ProfileState>>,
) -> Response {
    state.calls.fetch_add(1, Ordering::SeqCst);
    let numbers = strings(&body, "organizationNumbers");
    if numbers.is_empty() {
        return Json(json!({"title": "One or more validation errors occurred.", "status": 400}))
            .with_status(StatusCode::BAD_REQUEST)
            .into_response();
    }
    let orgs = state.organizations.lock().unwrap();
    list(numbers.iter().filter_map(|n| orgs.get(n).cloned()).collect())
}

#[handler]
async fn profile_external(Json(body): Json<Value>, state: Data<&Arc<ProfileState>>) -> Response {
    state.calls.fetch_add(1, Ordering::SeqCst);
    let users = state.external.lock().unwrap();
    list(
        strings(&body, "externalIdentities")
            .iter()
            .filter_map(|id| users.get(&id.to_lowercase()).cloned())
            .collect(),
    )
}

/// Altinn Profile's contact point lookups (`…/profile/api/v1/`), which answer without a token
/// as Profile does for platform-internal callers.
pub struct ProfileStandIn {
    /// The API base (`VARSEL_PROFILE_URL`).
    pub url: String,
    state: Arc<ProfileState>,
}

impl ProfileStandIn {
    /// An empty Profile.
    pub async fn start() -> Self {
        let acceptor =
            poem::listener::TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
        let port = listen_port(&acceptor);
        let state = Arc::new(ProfileState {
            persons: Default::default(),
            organizations: Default::default(),
            external: Default::default(),
            calls: Default::default(),
        });
        let base = "/profile/api/v1";
        let app = Route::new()
            .at(format!("{base}/users/contactpoint/lookup"), post(profile_persons))
            .at(
                format!("{base}/organizations/notificationaddresses/lookup"),
                post(profile_organizations),
            )
            .at(format!("{base}/users/contactpoint/lookupsi"), post(profile_external))
            .data(state.clone());
        tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(app));
        Self { url: format!("http://127.0.0.1:{port}{base}/"), state }
    }

    /// A person as Profile answers it; `stale` details are left out unless the caller allows.
    pub fn put_person(&self, nin: &str, email: &str, mobile: &str, reserved: bool, stale: bool) {
        let p = json!({"userId": 20001, "nationalIdentityNumber": nin, "isReserved": reserved,
            "mobileNumber": mobile, "email": email, "mobileNumberIsOutdated": false, "emailIsOutdated": false});
        self.state.persons.lock().unwrap().insert(nin.to_owned(), (p, stale));
    }

    /// An organisation's notification addresses.
    pub fn put_organization(&self, org_no: &str, emails: &[&str], mobiles: &[&str]) {
        let o = json!({"organizationNumber": org_no, "partyId": 0, "addressOrigin": "Altinn",
            "emailList": emails, "mobileNumberList": mobiles});
        self.state.organizations.lock().unwrap().insert(org_no.to_owned(), o);
    }

    /// A self-identified user.
    pub fn put_external(&self, id: &str, email: &str, mobile: Option<&str>) {
        let u = json!({"externalIdentity": id, "email": email, "mobileNumber": mobile});
        self.state.external.lock().unwrap().insert(id.to_lowercase(), u);
    }

    /// Calls so far.
    pub fn calls(&self) -> usize {
        self.state.calls.load(Ordering::SeqCst)
    }
}

struct RegisterState {
    key: DecodingKey,
    names: Mutex<HashMap<String, String>>,
    calls: AtomicUsize,
    refused: AtomicUsize,
}

#[derive(Deserialize)]
struct AccessClaims {
    iss: String,
    #[serde(rename = "urn:altinn:app")]
    app: String,
}

#[handler]
async fn nameslookup(
    req: &poem::Request,
    Json(body): Json<Value>,
    state: Data<&Arc<RegisterState>>,
) -> Response {
    let token =
        req.headers().get("PlatformAccessToken").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_aud = false;
    validation.set_required_spec_claims(&["exp", "iss"]);
    let ok = jsonwebtoken::decode::<AccessClaims>(token, &state.key, &validation)
        .is_ok_and(|t| t.claims.iss == "platform" && t.claims.app == "notifications");
    if !ok {
        state.refused.fetch_add(1, Ordering::SeqCst);
        return StatusCode::UNAUTHORIZED.into_response();
    }
    state.calls.fetch_add(1, Ordering::SeqCst);
    let names = state.names.lock().unwrap();
    // Register reads `parties` only.
    let party_names: Vec<Value> = body["parties"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            if let Some(org) = p["orgNo"].as_str() {
                return Some(json!({"name": names.get(org)?, "orgNo": org, "ssn": null}));
            }
            let ssn = p["ssn"].as_str()?;
            Some(json!({"name": names.get(ssn)?, "ssn": ssn}))
        })
        .collect();
    Json(json!({ "partyNames": party_names })).into_response()
}

/// Altinn Register's names lookup (`…/register/api/v1/parties/nameslookup`), taking only
/// PlatformAccessTokens issued by `platform` for `notifications` and signed by the platform key.
pub struct RegisterStandIn {
    /// The API base (`VARSEL_ALTINN_REGISTER_URL`).
    pub url: String,
    state: Arc<RegisterState>,
}

impl RegisterStandIn {
    /// Register trusting `public_key` (PEM) for the platform's access tokens.
    pub async fn start(public_key: &Path) -> Self {
        let acceptor =
            poem::listener::TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
        let port = listen_port(&acceptor);
        let state = Arc::new(RegisterState {
            key: DecodingKey::from_rsa_pem(&std::fs::read(public_key).unwrap()).unwrap(),
            names: Default::default(),
            calls: Default::default(),
            refused: Default::default(),
        });
        let base = "/register/api/v1";
        let app = Route::new()
            .at(format!("{base}/parties/nameslookup"), post(nameslookup))
            .data(state.clone());
        tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(app));
        Self { url: format!("http://127.0.0.1:{port}{base}/"), state }
    }

    /// The name of a person (11 digits) or organisation (9 digits).
    pub fn put_name(&self, number: &str, name: &str) {
        self.state.names.lock().unwrap().insert(number.to_owned(), name.to_owned());
    }

    /// Calls with a valid token so far, and calls refused.
    pub fn calls(&self) -> (usize, usize) {
        (self.state.calls.load(Ordering::SeqCst), self.state.refused.load(Ordering::SeqCst))
    }
}
