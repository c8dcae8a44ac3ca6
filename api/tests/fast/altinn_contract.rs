//! The contract test: varsel's generated OpenAPI document against Altinn's contract.
//!
//! Altinn publishes no static OpenAPI document, so its contract is written down as data in
//! `altinn-contract.json` (every operation with its parameters, request and response models and
//! status codes, and every model's properties with their types and required-ness, taken from
//! Altinn's public source at the commit it names). This test walks each Altinn operation and the
//! models it reaches, compares them with varsel's document, and describes every difference in one
//! line. A difference fails the test unless an entry of [`DEPARTURES`] matches it; each entry gives
//! its reason and names the row of the parity table in `docs/api.md` that tells users about it. An
//! entry that matches nothing fails too, so the list never outlives what it excuses.
//!
//! What counts as a difference, per direction:
//! - requests: a property Altinn requires that varsel's schema leaves optional (or the reverse), a
//!   property only one side has, another type, format or set of enum values;
//! - responses: a property Altinn always writes that varsel may leave out, a property only one side
//!   has, another type, format or set of enum values. varsel writing a property always where Altinn
//!   may leave it out is no difference: a client that copes with its absence copes with its presence.
//! - operations: a missing operation, another `deprecated` flag, a status code only one side
//!   documents, a parameter only one side has or with another type or required-ness; and an
//!   operation varsel adds under the Altinn API's prefix.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde_json::Value;
use wildmatch::WildMatch;

const CONTRACT: &str = include_str!("altinn-contract.json");
const PARITY_TABLE: &str = include_str!("../../../docs/api.md");
const PREFIX: &str = "/notifications/api/v1";

/// A difference varsel keeps on purpose.
struct Departure {
    /// Matches difference lines; `*` stands for any text, `?` for one character.
    pattern: &'static str,
    /// Why varsel differs here.
    why: &'static str,
    /// The Altinn column of the row in `docs/api.md`'s parity table that tells users.
    parity: &'static str,
}

const DEPARTURES: &[Departure] = &[
    Departure {
        pattern: "varsel adds GET /future/orders/{id}",
        why: "a new chain's Location header must lead somewhere: it answers the chain",
        parity: "a new chain's `Location` (`/orders/chain/{id}`) is served by no endpoint",
    },
    Departure {
        pattern: "varsel adds GET /orders/{id}/history",
        why: "operators and senders read an order's whole story without Temporal's UI or SQL",
        parity: "an order's history is in Altinn's logs and database only",
    },
    Departure {
        pattern: "varsel adds * /operator/*",
        why: "a self-hosted service needs its operators' actions (redrive, dead reports, contact data) as an API",
        parity: "redrives, dead reports and contact data are handled inside Altinn's platform",
    },
    Departure {
        pattern: "varsel adds * /webhooks*",
        why: "senders may be told of final statuses instead of polling the feed",
        parity: "senders learn final statuses by polling the status feed",
    },
    Departure {
        pattern: "varsel adds * /reports/*",
        why: "providers reach varsel over HTTP: there are no Altinn-internal queues to carry their reports",
        parity: "delivery reports arrive through Altinn's internal queues",
    },
    Departure {
        pattern: "*: response * documented by varsel only",
        why: "every operation documents every coded error its handler and the shared middleware can answer",
        parity: "each operation documents a few of the status codes it can answer",
    },
    Departure {
        pattern: "*: response 499 documented by varsel only",
        why: "any request can be abandoned; the log line and metric are there for each operation",
        parity: "499 `NOT-00002` is documented on the `/future` endpoints",
    },
    Departure {
        pattern: "PUT /orders/{id}/cancel: response 500 missing in varsel",
        why: "varsel answers no request 500: an unreachable database or Temporal is a 503 problem detail",
        parity: "cancel documents 500 for an internal error",
    },
    Departure {
        pattern: "request *: string (date-time) in Altinn, string in varsel",
        why: "an empty send time means now, as an absent one; any other is RFC 3339 with an offset, parsed by the validator with Altinn's messages",
        parity: "send times and URLs have a `format` (`date-time`, `uri`)",
    },
    Departure {
        pattern: "request *: string (uri) in Altinn, string in varsel",
        why: "an empty conditionEndpoint means none, as an absent one; any other must be an absolute http(s) URL the validator takes",
        parity: "send times and URLs have a `format` (`date-time`, `uri`)",
    },
    Departure {
        pattern: "response *.conditionEndpoint: string (uri) in Altinn, string in varsel",
        why: "an order shows its condition endpoint as the client gave it, which the validator took as a URL but need not be RFC 3986",
        parity: "an order shows its `conditionEndpoint` as a `uri`",
    },
    Departure {
        pattern: "*: integer (int32) in Altinn, integer (?int64) in varsel",
        why: "numbers are 64-bit in varsel; the ranges the validators accept include Altinn's",
        parity: "numbers are 32-bit (`int32`)",
    },
    Departure {
        pattern: "*: integer (int32) in Altinn, integer (int64) in varsel",
        why: "numbers are 64-bit in varsel; the ranges the validators accept include Altinn's",
        parity: "numbers are 32-bit (`int32`)",
    },
    Departure {
        pattern: "*.status: enum values missing in varsel: Email_Failed_TransientError",
        why: "a transient failure is retried, never reported as a status; an email that cannot be sent in time ends Email_Failed_TTL",
        parity: "a transient email failure is reported as `Email_Failed_TransientError`",
    },
    Departure {
        pattern: "request RecipientPersonExt.channelSchema: required by Altinn, optional in varsel's schema",
        why: "Altinn declares EmailPreferred as a person's default but its deserializer then refuses a body without it; varsel applies the declared default",
        parity: "a person recipient without `channelSchema` is refused by the JSON deserializer",
    },
    Departure {
        pattern: "response RecipientExt (varsel *).*: missing in varsel",
        why: "the notification lists fill only some of RecipientExt's fields; varsel's model has exactly those",
        parity: "a notification list's `recipient` is a whole `RecipientExt` with some fields filled",
    },
    Departure {
        pattern: "response NotificationOrderRequestResponseExt.duplicateRecipients: in varsel only",
        why: "a repeated recipient is notified once, and the answer says which were repeats",
        parity: "the same recipient listed twice in an order gets two messages",
    },
    Departure {
        pattern: "response SmsNotificationWithResultExt.segments: in varsel only",
        why: "what an SMS costs depends on its segments; the sender sees how many",
        parity: "an SMS notification does not say how many messages it took",
    },
    Departure {
        pattern: "response NotificationOrderChainShipmentExt (varsel NotificationOrderChainReceiptExt).reminders: in varsel only",
        why: "the instant answer shares the chain receipt's model; an instant message has no reminders, so the field is never written",
        parity: "an instant message's `notification` is a shipment without `reminders`",
    },
];

/// The shape of a property or parameter, on either side.
#[derive(Debug, Clone, PartialEq)]
enum Shape {
    /// A model of its own, by name.
    Model(String),
    /// A list of one shape.
    Array(Box<Shape>),
    /// A string from a closed set of values.
    Enum(BTreeSet<String>),
    /// A JSON type with its format, if any.
    Scalar { ty: String, format: Option<String> },
}

impl Shape {
    fn describe(&self) -> String {
        match self {
            Shape::Model(name) => format!("model {name}"),
            Shape::Array(items) => format!("array of {}", items.describe()),
            Shape::Enum(values) => format!("enum of {} values", values.len()),
            Shape::Scalar { ty, format: Some(format) } => format!("{ty} ({format})"),
            Shape::Scalar { ty, format: None } => ty.clone(),
        }
    }
}

/// Which way a model travels: what may be left out means another thing each way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Direction {
    Request,
    Response,
}

impl Direction {
    fn word(self) -> &'static str {
        match self {
            Direction::Request => "request",
            Direction::Response => "response",
        }
    }
}

/// Altinn's contract as written down.
struct Altinn {
    doc: Value,
}

impl Altinn {
    fn shape(property: &Value) -> Shape {
        if let Some(name) = property["ref"].as_str() {
            return Shape::Model(name.to_owned());
        }
        if let Some(values) = property["enum"].as_array() {
            return Shape::Enum(values.iter().map(|v| v.as_str().unwrap().to_owned()).collect());
        }
        let ty = property["type"].as_str().unwrap_or_else(|| panic!("a type in {property}"));
        if ty == "array" {
            return Shape::Array(Box::new(Self::shape(&property["items"])));
        }
        Shape::Scalar { ty: ty.to_owned(), format: property["format"].as_str().map(str::to_owned) }
    }

    /// A schema name from an operation's request or response; `Name[]` is a list of `Name`.
    fn body_shape(name: &str) -> Shape {
        match name.strip_suffix("[]") {
            Some(item) => Shape::Array(Box::new(Shape::Model(item.to_owned()))),
            None => Shape::Model(name.to_owned()),
        }
    }

    fn model(&self, name: &str) -> &serde_json::Map<String, Value> {
        self.doc["schemas"][name]
            .as_object()
            .unwrap_or_else(|| panic!("altinn-contract.json describes {name}"))
    }
}

/// varsel's generated document.
struct Varsel {
    doc: Value,
}

impl Varsel {
    /// The component a `$ref` names.
    fn component<'a>(&'a self, reference: &str) -> (&'a str, &'a Value) {
        let name = reference.strip_prefix("#/components/schemas/").expect("a component reference");
        let (name, schema) = self.doc["components"]["schemas"]
            .as_object()
            .unwrap()
            .get_key_value(name)
            .unwrap_or_else(|| panic!("varsel's document has {name}"));
        (name.as_str(), schema)
    }

    /// poem-openapi wraps a described reference as `allOf: [{$ref}, {description}]`.
    fn unwrap_all_of(schema: &Value) -> &Value {
        match schema["allOf"].as_array() {
            Some(parts) => parts.iter().find(|part| part.get("$ref").is_some()).unwrap_or(schema),
            None => schema,
        }
    }

    fn shape(&self, schema: &Value) -> Shape {
        let schema = Self::unwrap_all_of(schema);
        // An enum input is `oneOf: [names, member number]`, as Altinn's (which takes both).
        if let Some(alternatives) = schema["oneOf"].as_array()
            && let Some(names) = alternatives.iter().find(|a| a.get("$ref").is_some())
        {
            return self.shape(names);
        }
        if let Some(reference) = schema["$ref"].as_str() {
            let (name, component) = self.component(reference);
            if component.get("enum").is_some() {
                return self.shape(component);
            }
            return Shape::Model(name.to_owned());
        }
        if let Some(values) = schema["enum"].as_array() {
            return Shape::Enum(values.iter().map(|v| v.as_str().unwrap().to_owned()).collect());
        }
        let ty = schema["type"].as_str().unwrap_or("object");
        if ty == "array" {
            return Shape::Array(Box::new(self.shape(&schema["items"])));
        }
        Shape::Scalar { ty: ty.to_owned(), format: schema["format"].as_str().map(str::to_owned) }
    }

    /// The JSON body schema of a request body or a response, if it has one.
    fn body(content_holder: &Value) -> Option<&Value> {
        content_holder["content"]
            .as_object()?
            .iter()
            .find(|(media, _)| media.starts_with("application/json"))
            .map(|(_, media)| &media["schema"])
    }
}

/// Compares the contract with varsel's document and returns one line per difference.
fn differences(altinn: &Altinn, varsel: &Varsel) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    // Pairs of models to compare: (direction, Altinn's name, varsel's name).
    let mut models: VecDeque<(Direction, String, String)> = VecDeque::new();
    let mut covered = BTreeSet::new();

    let operations = altinn.doc["operations"].as_array().unwrap();
    for operation in operations {
        let method = operation["method"].as_str().unwrap();
        let path = operation["path"].as_str().unwrap();
        let at = format!("{method} {path}");
        covered.insert(at.clone());
        let Some(ours) = varsel.doc["paths"][format!("{PREFIX}{path}")].get(method.to_lowercase())
        else {
            found.insert(format!("{at}: missing in varsel"));
            continue;
        };

        let altinn_deprecated = operation["deprecated"].as_bool().unwrap_or(false);
        let varsel_deprecated = ours["deprecated"].as_bool().unwrap_or(false);
        if altinn_deprecated != varsel_deprecated {
            found.insert(format!(
                "{at}: deprecated {altinn_deprecated} in Altinn, {varsel_deprecated} in varsel"
            ));
        }

        compare_parameters(&at, operation, ours, varsel, &mut found);

        let request = operation["request"].as_str();
        let our_request = ours.get("requestBody").and_then(Varsel::body);
        match (request, our_request) {
            (Some(name), Some(schema)) => compare_shapes(
                &format!("{at}: request body"),
                Direction::Request,
                &Altinn::body_shape(name),
                &varsel.shape(schema),
                &mut models,
                &mut found,
            ),
            (Some(_), None) => {
                found.insert(format!("{at}: request body missing in varsel"));
            }
            (None, Some(_)) => {
                found.insert(format!("{at}: request body in varsel only"));
            }
            (None, None) => {}
        }

        let responses = operation["responses"].as_object().unwrap();
        let our_responses = ours["responses"].as_object().unwrap();
        for (code, model) in responses {
            let Some(our_response) = our_responses.get(code) else {
                found.insert(format!("{at}: response {code} missing in varsel"));
                continue;
            };
            if let Some(name) = model.as_str() {
                match Varsel::body(our_response) {
                    Some(schema) => compare_shapes(
                        &format!("{at}: response {code} body"),
                        Direction::Response,
                        &Altinn::body_shape(name),
                        &varsel.shape(schema),
                        &mut models,
                        &mut found,
                    ),
                    None => {
                        found.insert(format!("{at}: response {code} body missing in varsel"));
                    }
                }
            }
        }
        for code in our_responses.keys().filter(|code| !responses.contains_key(*code)) {
            found.insert(format!("{at}: response {code} documented by varsel only"));
        }
    }

    // What varsel serves beside Altinn's operations.
    for (path, item) in varsel.doc["paths"].as_object().unwrap() {
        let Some(path) = path.strip_prefix(PREFIX) else { continue };
        for method in item.as_object().unwrap().keys() {
            let at = format!("{} {path}", method.to_uppercase());
            if !covered.contains(&at) {
                found.insert(format!("varsel adds {at}"));
            }
        }
    }

    let mut compared = BTreeSet::new();
    while let Some((direction, name, ours)) = models.pop_front() {
        if !compared.insert((direction, name.clone(), ours.clone())) {
            continue;
        }
        compare_models(altinn, varsel, direction, &name, &ours, &mut models, &mut found);
    }
    found
}

fn compare_parameters(
    at: &str,
    operation: &Value,
    ours: &Value,
    varsel: &Varsel,
    found: &mut BTreeSet<String>,
) {
    let empty = Vec::new();
    let our_parameters = ours["parameters"].as_array().unwrap_or(&empty);
    let theirs = operation["parameters"].as_array().unwrap_or(&empty);
    for parameter in theirs {
        let name = parameter["name"].as_str().unwrap();
        let place = parameter["in"].as_str().unwrap();
        let Some(our) =
            our_parameters.iter().find(|p| p["name"] == name && p["in"].as_str() == Some(place))
        else {
            found.insert(format!("{at}: {place} parameter {name} missing in varsel"));
            continue;
        };
        let their_shape = Altinn::shape(parameter);
        let our_shape = varsel.shape(&our["schema"]);
        if their_shape != our_shape {
            found.insert(format!(
                "{at}: {place} parameter {name}: {} in Altinn, {} in varsel",
                their_shape.describe(),
                our_shape.describe()
            ));
        }
        let their_required = parameter["required"].as_bool().unwrap_or(false);
        let our_required = our["required"].as_bool().unwrap_or(false);
        if their_required != our_required {
            found.insert(format!(
                "{at}: {place} parameter {name} required {their_required} in Altinn, {our_required} in varsel"
            ));
        }
    }
    for our in our_parameters {
        let name = our["name"].as_str().unwrap();
        let place = our["in"].as_str().unwrap();
        // Altinn's contract lists no path parameters: its paths name them.
        if place == "path" {
            continue;
        }
        if !theirs.iter().any(|p| p["name"] == name && p["in"].as_str() == Some(place)) {
            found.insert(format!("{at}: {place} parameter {name} in varsel only"));
        }
    }
}

/// Compares two shapes at `at`; models met on both sides are queued to be compared in turn.
fn compare_shapes(
    at: &str,
    direction: Direction,
    theirs: &Shape,
    ours: &Shape,
    models: &mut VecDeque<(Direction, String, String)>,
    found: &mut BTreeSet<String>,
) {
    match (theirs, ours) {
        (Shape::Model(name), Shape::Model(our_name)) => {
            models.push_back((direction, name.clone(), our_name.clone()));
        }
        (Shape::Array(items), Shape::Array(our_items)) => {
            compare_shapes(&format!("{at}[]"), direction, items, our_items, models, found);
        }
        (Shape::Enum(values), Shape::Enum(our_values)) => {
            let missing: Vec<_> = values.difference(our_values).map(String::as_str).collect();
            let extra: Vec<_> = our_values.difference(values).map(String::as_str).collect();
            if !missing.is_empty() {
                found
                    .insert(format!("{at}: enum values missing in varsel: {}", missing.join(", ")));
            }
            if !extra.is_empty() {
                found.insert(format!("{at}: enum values in varsel only: {}", extra.join(", ")));
            }
        }
        (theirs, ours) if theirs != ours => {
            found.insert(format!(
                "{at}: {} in Altinn, {} in varsel",
                theirs.describe(),
                ours.describe()
            ));
        }
        _ => {}
    }
}

fn compare_models(
    altinn: &Altinn,
    varsel: &Varsel,
    direction: Direction,
    name: &str,
    ours: &str,
    models: &mut VecDeque<(Direction, String, String)>,
    found: &mut BTreeSet<String>,
) {
    let theirs = altinn.model(name);
    let (_, our_model) = varsel.component(&format!("#/components/schemas/{ours}"));
    let empty = serde_json::Map::new();
    let our_properties = our_model["properties"].as_object().unwrap_or(&empty);
    let our_required: BTreeSet<&str> = our_model["required"]
        .as_array()
        .map(|names| names.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let word = direction.word();

    // varsel's model may be another, narrower one (only the fields Altinn fills there).
    let model = if name == ours { name.to_owned() } else { format!("{name} (varsel {ours})") };
    for (property, spec) in theirs {
        let at = format!("{word} {model}.{property}");
        let Some(our) = our_properties.get(property) else {
            found.insert(format!("{at}: missing in varsel"));
            continue;
        };
        compare_shapes(&at, direction, &Altinn::shape(spec), &varsel.shape(our), models, found);
        let their_required = spec["required"].as_bool().unwrap_or(false);
        let our_required = our_required.contains(property.as_str());
        match (direction, their_required, our_required) {
            (Direction::Request, true, false) => {
                found.insert(format!("{at}: required by Altinn, optional in varsel's schema"));
            }
            (Direction::Request, false, true) => {
                found.insert(format!("{at}: optional in Altinn, required by varsel"));
            }
            (Direction::Response, true, false) => {
                found.insert(format!("{at}: always written by Altinn, optional in varsel"));
            }
            _ => {}
        }
    }
    for property in our_properties.keys().filter(|p| !theirs.contains_key(*p)) {
        found.insert(format!("{word} {model}.{property}: in varsel only"));
    }
}

#[test]
fn varsel_speaks_altinns_contract_apart_from_the_listed_departures() {
    let altinn = Altinn { doc: serde_json::from_str(CONTRACT).expect("the contract is JSON") };
    let varsel = Varsel {
        doc: serde_json::from_str(&varsel_api::startup::openapi_json())
            .expect("the document is JSON"),
    };
    let found = differences(&altinn, &varsel);

    let patterns: Vec<WildMatch> = DEPARTURES.iter().map(|d| WildMatch::new(d.pattern)).collect();
    let mut used = vec![false; DEPARTURES.len()];
    let mut unexplained = Vec::new();
    for line in &found {
        let mut explained = false;
        for (index, pattern) in patterns.iter().enumerate() {
            if pattern.matches(line) {
                used[index] = true;
                explained = true;
            }
        }
        if !explained {
            unexplained.push(line.as_str());
        }
    }
    let stale: Vec<&str> = DEPARTURES
        .iter()
        .zip(&used)
        .filter(|(_, used)| !**used)
        .map(|(departure, _)| departure.pattern)
        .collect();
    assert!(
        unexplained.is_empty() && stale.is_empty(),
        "{} difference(s) from Altinn's contract that no departure explains:\n  {}\n\
         departure(s) that match no difference any more:\n  {}",
        unexplained.len(),
        unexplained.join("\n  "),
        stale.join("\n  ")
    );
}

#[test]
fn every_departure_has_a_reason_and_a_row_in_the_parity_table() {
    // The Altinn column of each row of the table, as written between `| ` and ` |`.
    let table = PARITY_TABLE
        .split("## Where varsel departs from Altinn, on purpose")
        .nth(1)
        .expect("docs/api.md has the parity table");
    let rows: BTreeMap<&str, &str> = table
        .lines()
        .skip_while(|line| !line.starts_with('|'))
        .take_while(|line| line.starts_with('|'))
        .filter_map(|line| {
            let mut cells = line.trim_matches('|').split(" | ");
            Some((cells.next()?.trim(), cells.next()?.trim()))
        })
        .collect();
    for departure in DEPARTURES {
        assert!(departure.why.len() > 20, "{}: say why", departure.pattern);
        assert!(
            rows.contains_key(departure.parity),
            "{}: its parity row \"{}\" is not in docs/api.md's table",
            departure.pattern,
            departure.parity
        );
    }
}

#[test]
fn the_contract_names_every_model_it_uses() {
    let altinn = Altinn { doc: serde_json::from_str(CONTRACT).expect("the contract is JSON") };
    let mut names = Vec::new();
    for operation in altinn.doc["operations"].as_array().unwrap() {
        names.extend(operation["request"].as_str().map(str::to_owned));
        for model in operation["responses"].as_object().unwrap().values() {
            names.extend(model.as_str().map(|name| name.trim_end_matches("[]").to_owned()));
        }
    }
    for model in altinn.doc["schemas"].as_object().unwrap().values() {
        for property in model.as_object().unwrap().values() {
            let mut shape = Altinn::shape(property);
            while let Shape::Array(items) = shape {
                shape = *items;
            }
            if let Shape::Model(name) = shape {
                names.push(name);
            }
        }
    }
    for name in names {
        altinn.model(&name);
    }
}
