//! What the validators demand, and what the answers always hold, written into the OpenAPI
//! document.
//!
//! poem-openapi derives each request schema from its DTO, whose fields are optional so that the
//! validators, not the JSON parser, answer a missing or wrong value, with Altinn's message and
//! key (`IdempotencyId cannot be null or empty.`). Left alone, the document would then promise
//! less than the service demands. These rules state in the document what the validators enforce
//! (required fields, non-blank strings, lengths and ranges, from the same configured limits), so
//! that a request the schema allows is refused only for what a schema cannot say (a send time in
//! the past, a `resourceAction` without a `resourceId`, …). They change the document only: what
//! refuses a request is still the validator, with Altinn's words. Answers are plain strings in
//! the DTOs too; the document says what they always are (GUIDs, times, Altinn's status names).

use super::validate::{Limits, MAX_URL_CHARS};
use serde_json::{Value, json};
use varsel_workflows::domain::{NotificationChannel, NotificationStatus, OrderStatus};

/// One thing a validator demands of a value, or an answer always holds.
#[derive(Debug, Clone)]
enum Rule {
    /// Present and not null.
    Required,
    /// A string with a character other than white space.
    NotBlank,
    /// At most this many characters.
    MaxLength(usize),
    /// A list of at least this many items.
    MinItems(usize),
    /// A list of at most this many items.
    MaxItems(usize),
    /// A number at least this.
    Minimum(i64),
    /// A number at most this.
    Maximum(i64),
    /// One of these names (in a request, the validator takes them in any letter case).
    OneOf(Vec<String>),
    /// A string of this format (`uuid`, `date-time`).
    Format(&'static str),
    /// A string matching this (ECMA-262) regular expression.
    Pattern(&'static str),
}

use Rule::*;

/// A property of a component schema and what it must be.
struct PropertyRules {
    schema: &'static str,
    property: &'static str,
    rules: Vec<Rule>,
}

/// A query parameter of an operation and what it must be.
struct ParameterRules {
    method: &'static str,
    path: &'static str,
    parameter: &'static str,
    rules: Vec<Rule>,
}

fn property(schema: &'static str, property: &'static str, rules: &[Rule]) -> PropertyRules {
    PropertyRules { schema, property, rules: rules.to_vec() }
}

/// The rules the validators (`validate.rs`, `validate_v2.rs`, `validate_composed.rs`) apply, as
/// the configured `limits` set them.
fn property_rules(limits: &Limits) -> Vec<PropertyRules> {
    let reference = [MaxLength(limits.max_reference_chars)];
    let id = [Required, NotBlank, MaxLength(limits.max_reference_chars)];
    let subject = [Required, NotBlank, MaxLength(limits.max_subject_chars)];
    let url = [MaxLength(MAX_URL_CHARS)];
    let recipients = [Required, MinItems(1), MaxItems(limits.max_recipients)];
    let text = [Required, NotBlank];
    let object = [Required];
    let mut rules = Vec::new();
    // The order API (v1).
    for schema in [
        "NotificationOrderRequestExt",
        "EmailNotificationOrderRequestExt",
        "SmsNotificationOrderRequestExt",
    ] {
        rules.push(property(schema, "recipients", &recipients));
        rules.push(property(schema, "sendersReference", &reference));
        rules.push(property(schema, "conditionEndpoint", &url));
        rules.push(property(schema, "resourceId", &reference));
        rules.push(property(schema, "resourceAction", &reference));
    }
    for schema in ["EmailNotificationOrderRequestExt", "SmsNotificationOrderRequestExt"] {
        rules.push(property(schema, "body", &text));
    }
    rules.push(property("EmailNotificationOrderRequestExt", "subject", &subject));
    // Chains, instant messages and composed emails (`/future`).
    for schema in [
        "NotificationOrderChainRequestExt",
        "InstantSmsNotificationOrderRequestExt",
        "InstantEmailNotificationOrderRequestExt",
        "InstantNotificationOrderRequestExt",
        "ComposedEmailRequestExt",
    ] {
        rules.push(property(schema, "idempotencyId", &id));
        rules.push(property(schema, "sendersReference", &reference));
    }
    for schema in
        ["NotificationOrderChainRequestExt", "NotificationReminderExt", "ComposedEmailRequestExt"]
    {
        rules.push(property(schema, "recipient", &object));
        rules.push(property(schema, "conditionEndpoint", &url));
    }
    rules.push(property("NotificationReminderExt", "sendersReference", &reference));
    rules.push(property("InstantNotificationOrderRequestExt", "recipient", &object));
    rules.push(property("InstantNotificationRecipientExt", "recipientSms", &object));
    rules.push(property("InstantSmsNotificationOrderRequestExt", "recipientSms", &object));
    rules.push(property("InstantEmailNotificationOrderRequestExt", "recipientEmail", &object));
    for schema in ["RecipientEmailExt", "InstantEmailDetailsExt", "RecipientComposedEmailExt"] {
        rules.push(property(schema, "emailAddress", &text));
        rules.push(property(schema, "emailSettings", &object));
    }
    for schema in
        ["EmailSendingOptionsExt", "InstantEmailContentExt", "ComposedEmailSendingOptionsExt"]
    {
        rules.push(property(schema, "subject", &subject));
        rules.push(property(schema, "body", &text));
    }
    for schema in ["RecipientSmsExt", "ShortMessageDeliveryDetailsExt"] {
        rules.push(property(schema, "phoneNumber", &text));
        rules.push(property(schema, "smsSettings", &object));
    }
    for schema in ["SmsSendingOptionsExt", "ShortMessageContentExt"] {
        rules.push(property(schema, "body", &text));
    }
    rules.push(property(
        "ShortMessageDeliveryDetailsExt",
        "timeToLiveInSeconds",
        &[Required, Minimum(60), Maximum(172_800)],
    ));
    // Identity numbers are digits (white space around them is trimmed).
    rules.push(property(
        "RecipientPersonExt",
        "nationalIdentityNumber",
        &[Required, Pattern(r"^\s*[0-9]{11}\s*$")],
    ));
    rules.push(property(
        "RecipientOrganizationExt",
        "orgNumber",
        &[Required, Pattern(r"^\s*[0-9]{9}\s*$")],
    ));
    rules.push(property("RecipientExternalIdentityExt", "externalIdentity", &text));
    // A person's channel defaults to EmailPreferred; the others must name theirs.
    for schema in ["RecipientOrganizationExt", "RecipientExternalIdentityExt"] {
        rules.push(property(schema, "channelSchema", &object));
    }
    // An empty resourceId is none; any other names an Altinn resource.
    let resource =
        [MaxLength(limits.max_reference_chars), Pattern(r"^\s*(urn:altinn:resource:\S[\s\S]*)?$")];
    for schema in ["RecipientPersonExt", "RecipientOrganizationExt", "RecipientExternalIdentityExt"]
    {
        rules.push(property(schema, "resourceId", &resource));
        rules.push(property(schema, "resourceAction", &reference));
    }
    for name in ["dialogId", "transmissionId"] {
        rules.push(property("DialogportenIdentifiersExt", name, &reference));
    }
    for name in ["filename", "mimeType", "sasUrl"] {
        rules.push(property("SasFileReferenceExt", name, &text));
    }
    rules
}

/// What varsel's answers always hold, as Altinn's document says of its own: ids are GUIDs, times
/// RFC 3339 date-times, statuses Altinn's names (one list for orders and notifications, as
/// Altinn's `ProcessingLifecycle`). schemathesis checks every answer it gets against these.
fn answer_rules() -> Vec<PropertyRules> {
    let uuid = [Format("uuid")];
    let time = [Format("date-time")];
    let statuses: Vec<String> = OrderStatus::ALL
        .iter()
        .map(|s| format!("Order_{}", s.as_str()))
        .chain(NotificationStatus::ALL.iter().map(|s| s.as_str().to_owned()))
        .collect();
    let status = [OneOf(statuses)];
    let mut rules = vec![
        property("NotificationOrderRequestResponseExt", "orderId", &uuid),
        property("NotificationOrderChainResponseExt", "notificationOrderId", &uuid),
        property("NotificationOrderChainReceiptExt", "shipmentId", &uuid),
        property("NotificationOrderChainShipmentExt", "shipmentId", &uuid),
        property(
            "DeliveryManifestRecipientExt",
            "type",
            &[OneOf(vec!["SMS".into(), "Email".into()])],
        ),
    ];
    for schema in ["EmailNotificationSummaryExt", "SmsNotificationSummaryExt"] {
        rules.push(property(schema, "orderId", &uuid));
    }
    for schema in ["EmailNotificationWithResultExt", "SmsNotificationWithResultExt"] {
        rules.push(property(schema, "id", &uuid));
    }
    for schema in ["NotificationOrderExt", "NotificationOrderWithStatusExt"] {
        rules.push(property(schema, "created", &time));
        rules.push(property(schema, "requestedSendTime", &time));
    }
    for schema in ["NotificationDeliveryManifestExt", "StatusFeedExt"] {
        rules.push(property(schema, "shipmentId", &uuid));
        rules.push(property(schema, "status", &status));
    }
    for schema in [
        "OrderStatusExt",
        "StatusExt",
        "NotificationDeliveryManifestExt",
        "DeliveryManifestRecipientExt",
        "StatusFeedExt",
        "StatusFeedRecipientExt",
    ] {
        rules.push(property(schema, "lastUpdate", &time));
    }
    for schema in ["DeliveryManifestRecipientExt", "StatusFeedRecipientExt"] {
        rules.push(property(schema, "status", &status));
    }
    rules
}

fn parameter_rules() -> Vec<ParameterRules> {
    let feed = "/notifications/api/v1/future/shipment/feed";
    let find = "/notifications/api/v1/operator/orders";
    vec![
        ParameterRules {
            method: "get",
            path: find,
            parameter: "status",
            rules: vec![OneOf(OrderStatus::ALL.iter().map(|s| s.as_str().to_owned()).collect())],
        },
        ParameterRules {
            method: "get",
            path: find,
            parameter: "channel",
            rules: vec![OneOf(
                NotificationChannel::ALL.iter().map(|c| c.as_str().to_owned()).collect(),
            )],
        },
        ParameterRules {
            method: "get",
            path: find,
            parameter: "createdFrom",
            rules: vec![Format("date-time")],
        },
        ParameterRules {
            method: "get",
            path: find,
            parameter: "createdTo",
            rules: vec![Format("date-time")],
        },
        ParameterRules { method: "get", path: find, parameter: "id", rules: vec![Format("uuid")] },
        ParameterRules {
            method: "get",
            path: find,
            parameter: "limit",
            rules: vec![Minimum(1), Maximum(500)],
        },
        ParameterRules { method: "get", path: feed, parameter: "seq", rules: vec![Minimum(0)] },
        ParameterRules {
            method: "get",
            path: feed,
            parameter: "pageSize",
            rules: vec![Minimum(1), Maximum(500)],
        },
        ParameterRules {
            method: "get",
            path: feed,
            parameter: "orderBy",
            rules: vec![OneOf(vec!["Asc".into(), "Desc".into()])],
        },
        ParameterRules {
            method: "get",
            path: "/notifications/api/v1/orders",
            parameter: "sendersReference",
            rules: vec![Required, NotBlank],
        },
    ]
}

/// Writes `rule` into a property's or parameter's schema.
fn apply_rule(schema: &mut Value, rule: &Rule) {
    let Some(map) = schema.as_object_mut() else { return };
    match rule {
        // Required is also not null: the validators refuse null as they refuse absence.
        Required => {
            map.remove("nullable");
            if let Some(parts) = map.get_mut("allOf").and_then(Value::as_array_mut) {
                for part in parts.iter_mut().filter_map(Value::as_object_mut) {
                    part.remove("nullable");
                }
            }
        }
        NotBlank => {
            map.insert("minLength".into(), json!(1));
            map.insert("pattern".into(), json!("\\S"));
        }
        MaxLength(n) => {
            map.insert("maxLength".into(), json!(n));
        }
        MinItems(n) => {
            map.insert("minItems".into(), json!(n));
        }
        MaxItems(n) => {
            map.insert("maxItems".into(), json!(n));
        }
        Minimum(n) => {
            map.insert("minimum".into(), json!(n));
        }
        Maximum(n) => {
            map.insert("maximum".into(), json!(n));
        }
        OneOf(names) => {
            map.insert("enum".into(), json!(names));
        }
        Format(format) => {
            map.insert("format".into(), json!(format));
        }
        Pattern(pattern) => {
            map.insert("pattern".into(), json!(pattern));
        }
    }
}

/// States the validators' rules in `doc`, a generated OpenAPI document. A rule for a schema,
/// property or parameter the document lacks is a mistake in this table: it panics, and the
/// fast tests, which build the document, find it.
pub fn apply(doc: &mut Value, limits: &Limits) {
    for PropertyRules { schema, property, rules } in
        property_rules(limits).into_iter().chain(answer_rules())
    {
        let component = doc["components"]["schemas"]
            .get_mut(schema)
            .unwrap_or_else(|| panic!("schema rules: no schema {schema}"));
        let target = component["properties"]
            .get_mut(property)
            .unwrap_or_else(|| panic!("schema rules: no property {schema}.{property}"));
        for rule in &rules {
            apply_rule(target, rule);
        }
        if rules.iter().any(|r| matches!(r, Required)) {
            let required = component
                .as_object_mut()
                .expect("a schema object")
                .entry("required")
                .or_insert_with(|| json!([]));
            if let Some(names) = required.as_array_mut()
                && !names.iter().any(|n| n == property)
            {
                names.push(json!(property));
            }
        }
    }
    for ParameterRules { method, path, parameter, rules } in parameter_rules() {
        let parameters = doc["paths"][path][method]["parameters"]
            .as_array_mut()
            .unwrap_or_else(|| panic!("schema rules: no parameters of {method} {path}"));
        let target = parameters
            .iter_mut()
            .find(|p| p["name"] == parameter)
            .unwrap_or_else(|| panic!("schema rules: no parameter {parameter} of {method} {path}"));
        for rule in &rules {
            if matches!(rule, Required) {
                target["required"] = json!(true);
            }
            apply_rule(&mut target["schema"], rule);
        }
    }
}

/// The document as served: `spec` with the validators' rules stated.
pub fn stated(spec: &str, limits: &Limits) -> String {
    let mut doc: Value = serde_json::from_str(spec).expect("poem-openapi writes JSON");
    apply(&mut doc, limits);
    serde_json::to_string_pretty(&doc).expect("JSON")
}
