//! `JsonBody<T>`: a JSON request body that names the field of every mistake.
//!
//! poem-openapi's `Json<T>` answers a wrongly typed field with one message about the whole
//! body (`Expected input type "optional_string", found 12345`). This payload first walks the
//! parsed JSON along `T`'s own OpenAPI schema and reports each mismatch under its JSON path, as
//! ASP.NET does for Altinn (`$.emailTemplate.subject`), in the same validation envelope. It
//! also refuses text no database can store (the NUL character: PostgreSQL cannot, and SQLite
//! would store what PostgreSQL refuses), so both databases answer alike.

use crate::error::{ApiError, json_kind};
use poem::{IntoResponse, Request, RequestBody};
use poem_openapi::impl_apirequest_for_payload;
use poem_openapi::payload::{ParsePayload, Payload};
use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::{ParseFromJSON, Type};
use serde_json::Value;
use std::any::TypeId;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock, Mutex};

/// A JSON request body of type `T`.
#[derive(Debug, Clone)]
pub struct JsonBody<T>(pub T);

impl<T> std::ops::Deref for JsonBody<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: Type> Payload for JsonBody<T> {
    const CONTENT_TYPE: &'static str = "application/json; charset=utf-8";

    fn check_content_type(content_type: &str) -> bool {
        matches!(content_type.parse::<mime::Mime>(), Ok(m) if m.type_() == "application"
            && (m.subtype() == "json" || m.suffix().is_some_and(|s| s == "json")))
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: ParseFromJSON + Send + 'static> ParsePayload for JsonBody<T> {
    const IS_REQUIRED: bool = true;

    async fn from_request(_request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        let data = body.take()?.into_vec().await.map_err(|e| {
            poem::Error::from_string(e.to_string(), poem::http::StatusCode::BAD_REQUEST)
        })?;
        parse::<T>(&data).map(Self).map_err(|e| poem::Error::from_response(e.into_response()))
    }
}

impl_apirequest_for_payload!(JsonBody<T>, T: ParseFromJSON + Send + 'static);

/// Parses a body as `T`, answering every mistake with the JSON path of the field it is in.
pub fn parse<T: ParseFromJSON + 'static>(data: &[u8]) -> Result<T, ApiError> {
    if data.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid("$", "A JSON request body is required."));
    }
    let value: Value = serde_json::from_slice(data)
        .map_err(|e| ApiError::invalid("$", format!("The request body is not valid JSON: {e}.")))?;
    let shape = shape_of::<T>();
    let mut errors = BTreeMap::new();
    check(&value, &shape, "$", &mut errors, 0);
    if !errors.is_empty() {
        if errors.len() >= MAX_ERRORS {
            errors
                .entry("$".to_owned())
                .or_default()
                .push(format!("More fields are wrong; only the first {MAX_ERRORS} are listed."));
        }
        return Err(ApiError::validation(errors));
    }
    T::parse_from_json(Some(value)).map_err(|e| ApiError::invalid("$", e.into_message()))
}

/// What a value must look like: `T`'s OpenAPI schema, resolved once per type.
#[derive(Debug, Clone)]
enum Shape {
    Any,
    String,
    Integer {
        min: f64,
        max: f64,
    },
    Number,
    Boolean,
    /// Names matched regardless of case.
    Enum {
        name: String,
        names: Vec<String>,
    },
    Array(Box<Shape>),
    Object {
        properties: Vec<(String, Shape)>,
        required: Vec<String>,
    },
    /// Any one of these (poem-openapi's `oneOf`; an enum by name or by number).
    OneOf {
        name: String,
        options: Vec<Shape>,
    },
    Nullable(Box<Shape>),
}

impl Shape {
    /// Whether it admits anything (an annotation without a type, nullable or not).
    fn is_any(&self) -> bool {
        match self {
            Shape::Any => true,
            Shape::Nullable(inner) => inner.is_any(),
            _ => false,
        }
    }
}

fn shape_of<T: Type + 'static>() -> Arc<Shape> {
    static CACHE: LazyLock<Mutex<HashMap<TypeId, Arc<Shape>>>> = LazyLock::new(Default::default);
    if let Some(s) = CACHE.lock().expect("shape cache").get(&TypeId::of::<T>()) {
        return s.clone();
    }
    let mut registry = Registry::new();
    T::register(&mut registry);
    let shape = Arc::new(resolve(&T::schema_ref(), &registry, 0));
    CACHE.lock().expect("shape cache").insert(TypeId::of::<T>(), shape.clone());
    shape
}

fn resolve(r: &MetaSchemaRef, registry: &Registry, depth: usize) -> Shape {
    if depth > 32 {
        return Shape::Any;
    }
    match r {
        MetaSchemaRef::Inline(s) => from_schema(s, None, registry, depth),
        MetaSchemaRef::Reference(name) => match registry.schemas.get(name) {
            Some(s) => from_schema(s, Some(name), registry, depth),
            None => Shape::Any,
        },
    }
}

fn from_schema(s: &MetaSchema, name: Option<&str>, registry: &Registry, depth: usize) -> Shape {
    let name =
        name.map(str::to_owned).or_else(|| s.title.clone()).unwrap_or_else(|| s.ty.to_owned());
    let shape = if !s.one_of.is_empty() || !s.any_of.is_empty() {
        let options =
            s.one_of.iter().chain(&s.any_of).map(|o| resolve(o, registry, depth + 1)).collect();
        Shape::OneOf { name, options }
    } else if !s.all_of.is_empty() {
        // poem-openapi writes a described field as `allOf` of its type and an annotation (no
        // type), and a flattened object as `allOf` of objects: merge the objects; a single
        // typed part stands for itself; anything else is not judged here.
        let parts: Vec<Shape> = s
            .all_of
            .iter()
            .map(|p| resolve(p, registry, depth + 1))
            .filter(|p| !p.is_any())
            .collect();
        let mut properties = Vec::new();
        let mut required = Vec::new();
        let objects = parts.iter().all(|p| matches!(p, Shape::Object { .. }));
        match parts.len() {
            0 => Shape::Any,
            1 if !objects => parts.into_iter().next().expect("one part"),
            _ if objects => {
                for part in parts {
                    if let Shape::Object { properties: p, required: r } = part {
                        properties.extend(p);
                        required.extend(r);
                    }
                }
                Shape::Object { properties, required }
            }
            _ => Shape::Any,
        }
    } else {
        match s.ty {
            "string" if !s.enum_items.is_empty() => Shape::Enum {
                name,
                names: s.enum_items.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
            },
            "string" => Shape::String,
            "integer" => {
                let (lo, hi) = match s.format {
                    Some("int8") => (i8::MIN as f64, i8::MAX as f64),
                    Some("int16") => (i16::MIN as f64, i16::MAX as f64),
                    Some("int32") => (i32::MIN as f64, i32::MAX as f64),
                    Some("uint8") => (0.0, u8::MAX as f64),
                    Some("uint16") => (0.0, u16::MAX as f64),
                    Some("uint32") => (0.0, u32::MAX as f64),
                    Some("uint64") => (0.0, u64::MAX as f64),
                    _ => (i64::MIN as f64, i64::MAX as f64),
                };
                Shape::Integer {
                    min: s.minimum.unwrap_or(lo).max(lo),
                    max: s.maximum.unwrap_or(hi).min(hi),
                }
            }
            "number" => Shape::Number,
            "boolean" => Shape::Boolean,
            "array" => Shape::Array(Box::new(
                s.items.as_deref().map(|i| resolve(i, registry, depth + 1)).unwrap_or(Shape::Any),
            )),
            "object" if !s.properties.is_empty() => Shape::Object {
                properties: s
                    .properties
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), resolve(v, registry, depth + 1)))
                    .collect(),
                required: s.required.iter().map(|r| (*r).to_owned()).collect(),
            },
            _ => Shape::Any,
        }
    };
    if s.nullable { Shape::Nullable(Box::new(shape)) } else { shape }
}

/// Most mistakes listed in one answer (as ASP.NET's `MaxModelValidationErrors`): a body of
/// millions of wrong values gets a short answer, made with bounded work.
const MAX_ERRORS: usize = 200;

fn push(errors: &mut BTreeMap<String, Vec<String>>, path: &str, msg: String) {
    if errors.len() >= MAX_ERRORS && !errors.contains_key(path) {
        return;
    }
    let list = errors.entry(path.to_owned()).or_default();
    if !list.contains(&msg) {
        list.push(msg);
    }
}

const NUL_MESSAGE: &str = "The value must not contain the NUL character (\\u0000).";

/// Whether `v` fits `shape`; mismatches are added under their JSON path. Unknown properties
/// are ignored (as Altinn does), but their text is still checked for NUL.
fn check(
    v: &Value,
    shape: &Shape,
    path: &str,
    errors: &mut BTreeMap<String, Vec<String>>,
    depth: usize,
) -> bool {
    if depth > 64 || errors.len() >= MAX_ERRORS {
        return errors.len() < MAX_ERRORS;
    }
    let before = errors.len();
    let mismatch = |expected: &str| {
        format!("The JSON value could not be converted to {expected}: it is {}.", json_kind(v))
    };
    match (shape, v) {
        (Shape::Nullable(_), Value::Null) => {}
        (Shape::Nullable(inner), _) => {
            check(v, inner, path, errors, depth);
        }
        (Shape::Any, _) => nul_anywhere(v, path, errors, depth),
        (Shape::String, Value::String(s)) if s.contains('\0') => {
            push(errors, path, NUL_MESSAGE.into())
        }
        (Shape::String, Value::String(_)) => {}
        (Shape::String, _) => push(errors, path, mismatch("a string")),
        (Shape::Boolean, Value::Bool(_)) => {}
        (Shape::Boolean, _) => push(errors, path, mismatch("a boolean (true or false)")),
        (Shape::Number, Value::Number(_)) => {}
        (Shape::Number, _) => push(errors, path, mismatch("a number")),
        (Shape::Integer { min, max }, Value::Number(n)) => {
            let whole = n.as_i64().map(|i| i as f64).or_else(|| n.as_u64().map(|u| u as f64));
            match whole {
                Some(i) if i >= *min && i <= *max => {}
                Some(_) => push(
                    errors,
                    path,
                    format!("The number {n} is out of range: it must be between {min} and {max}."),
                ),
                None => push(
                    errors,
                    path,
                    format!(
                        "The JSON value could not be converted to a whole number: {n} is not one."
                    ),
                ),
            }
        }
        (Shape::Integer { .. }, _) => push(errors, path, mismatch("a whole number")),
        (Shape::Enum { names, .. }, Value::String(s))
            if names.iter().any(|n| n.eq_ignore_ascii_case(s.trim())) => {}
        (Shape::Enum { name, names }, _) => push(
            errors,
            path,
            format!(
                "The JSON value could not be converted to {name}: expected one of {} (any letter case).",
                names.join(", ")
            ),
        ),
        (Shape::OneOf { name, options }, _) => {
            let fits = options.iter().any(|o| {
                let mut scratch = BTreeMap::new();
                check(v, o, path, &mut scratch, depth + 1)
            });
            if !fits {
                let names: Vec<String> = options
                    .iter()
                    .flat_map(|o| match o {
                        Shape::Enum { names, .. } => names.clone(),
                        Shape::Integer { min, max } => {
                            vec![format!("a number from {min} to {max}")]
                        }
                        _ => vec![],
                    })
                    .collect();
                let detail = if names.is_empty() {
                    String::new()
                } else {
                    format!(": expected one of {} (names in any letter case)", names.join(", "))
                };
                push(
                    errors,
                    path,
                    format!("The JSON value could not be converted to {name}{detail}."),
                );
            }
        }
        (Shape::Array(item), Value::Array(items)) => {
            for (i, x) in items.iter().enumerate() {
                if errors.len() >= MAX_ERRORS {
                    break;
                }
                check(x, item, &format!("{path}[{i}]"), errors, depth + 1);
            }
        }
        (Shape::Array(_), _) => push(errors, path, mismatch("an array")),
        (Shape::Object { properties, required }, Value::Object(map)) => {
            for r in required {
                if !map.contains_key(r) {
                    push(errors, &format!("{path}.{r}"), format!("The {r} field is required."));
                }
            }
            for (key, value) in map {
                let child = format!("{path}.{key}");
                match properties.iter().find(|(k, _)| k == key) {
                    // An optional property may be null (it is then absent), whatever its schema.
                    Some(_) if value.is_null() && !required.contains(key) => {}
                    Some((_, s)) => {
                        check(value, s, &child, errors, depth + 1);
                    }
                    None => nul_anywhere(value, &child, errors, depth + 1),
                }
            }
        }
        (Shape::Object { .. }, _) => push(errors, path, mismatch("an object")),
    }
    errors.len() == before
}

fn nul_anywhere(v: &Value, path: &str, errors: &mut BTreeMap<String, Vec<String>>, depth: usize) {
    if depth > 64 {
        return;
    }
    match v {
        Value::String(s) if s.contains('\0') => push(errors, path, NUL_MESSAGE.into()),
        Value::Array(items) => {
            for (i, x) in items.iter().enumerate() {
                if errors.len() >= MAX_ERRORS {
                    break;
                }
                nul_anywhere(x, &format!("{path}[{i}]"), errors, depth + 1);
            }
        }
        Value::Object(map) => {
            map.iter().for_each(|(k, x)| nul_anywhere(x, &format!("{path}.{k}"), errors, depth + 1))
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::dto::OrderRequestDto;

    fn errors(body: &str) -> BTreeMap<String, Vec<String>> {
        match parse::<OrderRequestDto>(body.as_bytes()) {
            Ok(_) => BTreeMap::new(),
            Err(ApiError::BadRequest(p)) => p.0.errors.clone().unwrap_or_default(),
            Err(other) => panic!("{other:?}"),
        }
    }

    #[test]
    fn each_mismatch_is_named_by_its_path() {
        let e = errors(
            r#"{"emailTemplate":{"subject":12345},"recipients":[{"emailAddress":true}],"ignoreReservation":"yes"}"#,
        );
        assert!(e["$.emailTemplate.subject"][0].contains("a string: it is a number"), "{e:?}");
        assert!(
            e["$.recipients[0].emailAddress"][0].contains("a string: it is a boolean"),
            "{e:?}"
        );
        assert!(e["$.ignoreReservation"][0].contains("a boolean"), "{e:?}");
        let e = errors(r#"{"notificationChannel":"Pigeon"}"#);
        assert!(e["$.notificationChannel"][0].contains("EmailPreferred"), "{e:?}");
        assert!(
            errors(r#"{"notificationChannel":"emailpreferred","unknown":{"x":[1]}}"#).is_empty()
        );
    }

    #[test]
    fn null_is_absent_and_a_flood_of_mistakes_gets_a_short_answer() {
        assert!(errors(r#"{"emailTemplate":null,"recipients":[{"emailAddress":null}],"ignoreReservation":null}"#).is_empty());
        let flood = format!(r#"{{"recipients":[{}1]}}"#, "1,".repeat(100_000));
        let e = errors(&flood);
        assert!(e.len() <= MAX_ERRORS + 1, "{}", e.len());
        assert!(e["$"][0].contains("only the first 200"), "{:?}", e.get("$"));
    }

    #[test]
    fn nul_is_refused_wherever_it_is() {
        let e = errors(
            r#"{"emailTemplate":{"subject":"a\u0000b"},"sendersReference":"\u0000","other":["\u0000"]}"#,
        );
        assert_eq!(
            e.keys().collect::<Vec<_>>(),
            ["$.emailTemplate.subject", "$.other[0]", "$.sendersReference"]
        );
    }
}
