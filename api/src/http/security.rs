//! Who may call an operation, as typed extractors: each handler names the credential it needs as
//! its first argument, so the credential is checked before the request body is read (poem-openapi
//! extracts arguments in order), and the OpenAPI document lists the security schemes (the
//! "Authorize" button of `/docs`).

use crate::auth::{Principal, Verifier};
use crate::error::ApiError;
use poem::{Request, RequestBody};
use poem_openapi::registry::{MetaSecurityScheme, Registry};
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// Security scheme: a bearer token (Maskinporten-style service-owner token, or an operator's).
pub const BEARER: &str = "bearerToken";
/// Security scheme: the `PlatformAccessToken` header.
pub const PLATFORM: &str = "platformAccessToken";
/// Security scheme: HTTP Basic of the email report endpoint.
pub const REPORT_BASIC: &str = "reportBasic";
/// Security scheme: the key of an Azure Event Grid subscription, in its endpoint's query.
pub const EVENTGRID_KEY: &str = "eventGridKey";

fn register_bearer(registry: &mut Registry) {
    registry.create_security_scheme(BEARER, MetaSecurityScheme {
        ty: "http",
        description: Some(
            "A JWT with the scope `altinn:serviceowner/notifications.create` and the creator org in `urn:altinn:org` \
             (composed email: the scope `altinn:serviceowner/notifications.composedemail.create`; operator endpoints: \
             the scope `varsel:operator`). `varsel token --org ttd` prints one for `varsel dev`.",
        ),
        name: None,
        key_in: None,
        scheme: Some("bearer"),
        bearer_format: Some("JWT"),
        flows: None,
        openid_connect_url: None,
    });
}

fn register_platform(registry: &mut Registry) {
    registry.create_security_scheme(PLATFORM, MetaSecurityScheme {
        ty: "apiKey",
        description: Some(
            "An Altinn PlatformAccessToken (the raw JWT): verified with its issuer's own keys and carrying `urn:altinn:app`; \
             the issuer is the creator. When present it alone authorises the call. `varsel token --platform --org ttd` \
             prints one for `varsel dev`.",
        ),
        name: Some(crate::auth::PLATFORM_HEADER),
        key_in: Some("header"),
        scheme: None,
        bearer_format: None,
        flows: None,
        openid_connect_url: None,
    });
}

fn verifier(req: &Request) -> poem::Result<&Arc<Verifier>> {
    req.data::<Arc<Verifier>>().ok_or_else(|| {
        poem::Error::from_string(
            "the token verifier is not configured",
            poem::http::StatusCode::INTERNAL_SERVER_ERROR,
        )
    })
}

fn refuse(e: ApiError) -> poem::Error {
    use poem::IntoResponse;
    poem::Error::from_response(e.into_response())
}

/// Implements `ApiExtractor` for a credential: the security schemes it is documented under,
/// their registration, and the check that makes it from a request's headers.
macro_rules! credential {
    ($ty:ty, schemes: [$($scheme:expr),+], register: $register:expr, check: $check:expr) => {
        impl<'a> ApiExtractor<'a> for $ty {
            const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];
            type ParamType = ();
            type ParamRawType = ();

            fn register(registry: &mut Registry) {
                let register: fn(&mut Registry) = $register;
                register(registry)
            }

            fn security_schemes() -> Vec<&'static str> {
                vec![$($scheme),+]
            }

            async fn from_request(req: &'a Request, _body: &mut RequestBody, _opts: ExtractParamOptions<()>) -> poem::Result<Self> {
                let check: fn(&Request) -> poem::Result<$ty> = $check;
                check(req)
            }
        }
    };
}

fn register_owner(registry: &mut Registry) {
    register_bearer(registry);
    register_platform(registry);
}

/// A service owner: a bearer token with the create scope, or a PlatformAccessToken.
pub struct ServiceOwner(pub Principal);

credential!(ServiceOwner, schemes: [BEARER, PLATFORM], register: register_owner, check: |req| {
    verifier(req)?.authorize(req.headers()).map(ServiceOwner).map_err(refuse)
});

/// A creator of composed emails: a bearer token with the scope
/// `altinn:serviceowner/notifications.composedemail.create` (no PlatformAccessToken, as Altinn).
pub struct ComposedEmailCreator(pub Principal);

credential!(ComposedEmailCreator, schemes: [BEARER], register: register_bearer, check: |req| {
    verifier(req)?.authorize_composed(req.headers()).map(ComposedEmailCreator).map_err(refuse)
});

/// An operator: a bearer token with the scope `varsel:operator`; who it names (for the record).
pub struct Operator(pub String);

credential!(Operator, schemes: [BEARER], register: register_bearer, check: |req| {
    verifier(req)?.authorize_operator(req.headers()).map(Operator).map_err(refuse)
});

/// A service owner, reading its own orders, or an operator, reading any.
pub enum OwnerOrOperator {
    /// An operator token.
    Operator,
    /// A service owner.
    Owner(Principal),
}

credential!(OwnerOrOperator, schemes: [BEARER, PLATFORM], register: register_owner, check: |req| {
    let v = verifier(req)?;
    if v.is_operator(req.headers()) {
        return Ok(OwnerOrOperator::Operator);
    }
    v.authorize(req.headers()).map(OwnerOrOperator::Owner).map_err(refuse)
});

/// The user name and secret of the email report endpoint.
#[derive(Clone)]
pub struct ReportCredentials {
    /// User name.
    pub username: String,
    /// Password (the report secret).
    pub secret: String,
    /// The Event Grid subscription's key (`VARSEL_EVENTGRID_KEY`); empty: none accepted.
    pub eventgrid_key: String,
}

/// An email provider posting delivery reports: HTTP Basic with the report credentials.
pub struct ReportSender;

fn register_report_basic(registry: &mut Registry) {
    registry.create_security_scheme(
        REPORT_BASIC,
        MetaSecurityScheme {
            ty: "http",
            description: Some("HTTP Basic: `VARSEL_REPORT_USERNAME` and the report secret."),
            name: None,
            key_in: None,
            scheme: Some("basic"),
            bearer_format: None,
            flows: None,
            openid_connect_url: None,
        },
    );
}

fn report_credentials(req: &Request) -> poem::Result<&ReportCredentials> {
    req.data::<ReportCredentials>().ok_or_else(|| {
        poem::Error::from_string(
            "report credentials are not configured",
            poem::http::StatusCode::INTERNAL_SERVER_ERROR,
        )
    })
}

fn report_sender(req: &Request) -> poem::Result<ReportSender> {
    use base64::Engine;
    let creds = report_credentials(req)?;
    let unauthorized =
        || refuse(ApiError::unauthorized("Delivery reports need HTTP Basic credentials."));
    let given = crate::auth::authorization(req.headers(), "Basic")
        .map_err(refuse)?
        .ok_or_else(unauthorized)?;
    let decoded =
        base64::engine::general_purpose::STANDARD.decode(given).map_err(|_| unauthorized())?;
    let expected = format!("{}:{}", creds.username, creds.secret);
    if !creds.secret.is_empty() && bool::from(decoded.as_slice().ct_eq(expected.as_bytes())) {
        Ok(ReportSender)
    } else {
        Err(unauthorized())
    }
}

credential!(ReportSender, schemes: [REPORT_BASIC], register: register_report_basic, check: report_sender);

/// Azure Event Grid delivering events: the subscription's endpoint URL carries the key as its
/// `key` query parameter ("client secret as a query parameter", one of the two ways Event Grid
/// authenticates to a webhook; Event Grid sends it on the validation handshake too).
pub struct EventGridSender;

fn register_eventgrid_key(registry: &mut Registry) {
    registry.create_security_scheme(
        EVENTGRID_KEY,
        MetaSecurityScheme {
            ty: "apiKey",
            description: Some(
                "The Event Grid subscription's key (`VARSEL_EVENTGRID_KEY`) as the `key` query \
                 parameter of its endpoint URL.",
            ),
            name: Some("key"),
            key_in: Some("query"),
            scheme: None,
            bearer_format: None,
            flows: None,
            openid_connect_url: None,
        },
    );
}

fn eventgrid_sender(req: &Request) -> poem::Result<EventGridSender> {
    let creds = report_credentials(req)?;
    let given = req
        .uri()
        .query()
        .into_iter()
        .flat_map(|q| url::form_urlencoded::parse(q.as_bytes()))
        .find(|(name, _)| name == "key")
        .map(|(_, value)| value.into_owned());
    match given {
        Some(key)
            if !creds.eventgrid_key.is_empty()
                && bool::from(key.as_bytes().ct_eq(creds.eventgrid_key.as_bytes())) =>
        {
            Ok(EventGridSender)
        }
        _ => Err(refuse(ApiError::unauthorized(
            "Event Grid deliveries need the subscription's key as the `key` query parameter.",
        ))),
    }
}

credential!(EventGridSender, schemes: [EVENTGRID_KEY], register: register_eventgrid_key, check: eventgrid_sender);
