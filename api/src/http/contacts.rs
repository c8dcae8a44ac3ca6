//! The embedded contact register for operators (scope `varsel:operator`): put, read and delete
//! single persons and organisations, upload NDJSON in bulk, and export it.

use super::security::Operator;
use crate::error::ApiError;
use crate::state::AppState;
use poem::Body;
use poem_openapi::payload::{Binary, Json};
use poem_openapi::{ApiRequest, ApiResponse, Object, OpenApi, param::Path};
use std::sync::Arc;
use varsel_activities::contacts::export::export;
use varsel_activities::contacts::import::{ContactKind, FileFormat, ImportError, import};
use varsel_activities::contacts::records::{OrganizationRecord, PersonFields, PersonRecord};
use varsel_activities::store::{OrgContact, PersonContact};

/// The contact register endpoints.
pub struct ContactsApi {
    /// Shared state.
    pub state: Arc<AppState>,
}

#[derive(poem_openapi::Tags)]
enum Tag {
    /// The embedded contact register (scope `varsel:operator`).
    ContactRegister,
}

/// A person of the register.
#[derive(Debug, Clone, Object)]
#[oai(rename = "ContactPerson", rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct PersonDto {
    /// National identity number, 11 digits.
    pub national_identity_number: String,
    /// Full name (for `$recipientName$`).
    pub name: Option<String>,
    /// Email address.
    pub email: Option<String>,
    /// Mobile number, normalised to `+<country code><number>`.
    pub mobile_number: Option<String>,
    /// Reserved against digital notifications (KRR).
    pub is_reserved: bool,
    /// When the contact details were last confirmed or changed at their source (RFC 3339).
    pub last_updated: Option<String>,
}

/// A person to store under the number of the path.
#[derive(Debug, Clone, Object)]
#[oai(rename = "ContactPersonInput", rename_all = "camelCase", deny_unknown_fields)]
pub struct PersonInput {
    /// Full name.
    pub name: Option<String>,
    /// Email address (Altinn's address rules).
    pub email: Option<String>,
    /// Mobile number: 8 digits starting with 4 or 9 (Norwegian), or `+`/`00` and a country code.
    pub mobile_number: Option<String>,
    /// Reserved against digital notifications; false when absent.
    pub is_reserved: Option<bool>,
    /// RFC 3339 or YYYY-MM-DD.
    pub last_updated: Option<String>,
}

/// An organisation of the register.
#[derive(Debug, Clone, Object)]
#[oai(rename = "ContactOrganization", rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct OrganizationDto {
    /// Organisation number, 9 digits.
    pub organization_number: String,
    /// Registered name (for `$recipientName$`).
    pub name: Option<String>,
    /// Notification email addresses.
    pub email_list: Vec<String>,
    /// Notification mobile numbers, normalised.
    pub mobile_number_list: Vec<String>,
}

/// An organisation to store under the number of the path.
#[derive(Debug, Clone, Object)]
#[oai(rename = "ContactOrganizationInput", rename_all = "camelCase", deny_unknown_fields)]
pub struct OrganizationInput {
    /// Registered name.
    pub name: Option<String>,
    /// Notification email addresses.
    #[oai(default)]
    pub email_list: Vec<String>,
    /// Notification mobile numbers.
    #[oai(default)]
    pub mobile_number_list: Vec<String>,
}

/// A line of an upload that was not imported.
#[derive(Debug, Clone, Object)]
#[oai(rename = "ContactImportError")]
pub struct LineErrorDto {
    /// 1-based line number.
    pub line: u64,
    /// What is wrong with it.
    pub message: String,
}

/// What an upload did.
#[derive(Debug, Clone, Object)]
#[oai(rename = "ContactImport")]
pub struct ImportDto {
    /// Entries written.
    pub imported: u64,
    /// Lines refused.
    pub rejected: u64,
    /// The first 1,000 refused lines.
    pub errors: Vec<LineErrorDto>,
}

/// NDJSON, one entry a line.
#[derive(ApiRequest)]
pub enum NdjsonUpload {
    /// Persons (`ContactPerson` with its number) or organisations (`ContactOrganization`).
    #[oai(content_type = "application/x-ndjson")]
    Ndjson(Binary<Body>),
}

/// A person.
#[derive(ApiResponse)]
pub enum PersonResponse {
    /// The person as stored.
    #[oai(status = 200)]
    Ok(Json<PersonDto>),
}

/// An organisation.
#[derive(ApiResponse)]
pub enum OrganizationResponse {
    /// The organisation as stored.
    #[oai(status = 200)]
    Ok(Json<OrganizationDto>),
}

/// A removal.
#[derive(ApiResponse)]
pub enum DeletedResponse {
    /// Removed.
    #[oai(status = 204)]
    Deleted,
}

/// An upload's outcome.
#[derive(ApiResponse)]
pub enum ImportResponse {
    /// Every line was read; refused ones are listed.
    #[oai(status = 200)]
    Ok(Json<ImportDto>),
}

/// An export.
#[derive(ApiResponse)]
pub enum ExportResponse {
    /// Every entry as NDJSON, in number order (what the upload reads).
    #[oai(status = 200, content_type = "application/x-ndjson")]
    Ok(Binary<Body>),
}

fn person_dto(nin: &str, c: PersonContact) -> PersonDto {
    PersonDto {
        national_identity_number: nin.to_owned(),
        name: c.name,
        email: c.email,
        mobile_number: c.mobile,
        is_reserved: c.reserved,
        last_updated: c.updated_at.map(|t| t.to_rfc3339()),
    }
}

fn organization_dto(org_no: &str, c: OrgContact) -> OrganizationDto {
    OrganizationDto {
        organization_number: org_no.to_owned(),
        name: c.name,
        email_list: c.emails,
        mobile_number_list: c.mobiles,
    }
}

/// A validation message `field: reason` as Altinn's envelope, under the field.
fn invalid(message: String) -> ApiError {
    match message.split_once(": ") {
        Some((field, reason)) => ApiError::invalid(field, reason),
        None => ApiError::invalid("body", message),
    }
}

impl ContactsApi {
    async fn upload(
        &self,
        kind: ContactKind,
        body: NdjsonUpload,
    ) -> Result<ImportResponse, ApiError> {
        let NdjsonUpload::Ndjson(Binary(body)) = body;
        let reader = tokio_util::io::SyncIoBridge::new(body.into_async_read());
        let summary = import(&self.state.store, kind, FileFormat::Ndjson, reader, |_| {})
            .await
            .map_err(|e| match e {
                ImportError::Database { .. } => ApiError::storage(e),
                // The body stopped arriving (the edge's size or time limit, or the client).
                ImportError::File(m) => {
                    ApiError::invalid("body", format!("The upload could not be read: {m}"))
                }
            })?;
        Ok(ImportResponse::Ok(Json(ImportDto {
            imported: summary.imported,
            rejected: summary.rejected,
            errors: summary
                .errors
                .into_iter()
                .map(|e| LineErrorDto { line: e.line, message: e.message })
                .collect(),
        })))
    }

    fn export(&self, kind: ContactKind) -> Result<ExportResponse, ApiError> {
        use futures::TryStreamExt;
        let pages = export(self.state.store.clone(), kind).map_err(std::io::Error::other);
        Ok(ExportResponse::Ok(Binary(Body::from_bytes_stream(pages))))
    }
}

#[OpenApi(prefix_path = "/notifications/api/v1/operator/contacts")]
impl ContactsApi {
    /// Put a person
    ///
    /// Stores a person of the embedded register under the number of the path, replacing what
    /// was there. The fields are checked as an import checks them; a bad one answers 400.
    #[oai(
        path = "/persons/:nin",
        method = "put",
        tag = "Tag::ContactRegister",
        operation_id = "putContactPerson"
    )]
    async fn put_person(
        &self,
        _operator: Operator,
        nin: Path<String>,
        body: Json<PersonInput>,
    ) -> Result<PersonResponse, ApiError> {
        let b = body.0;
        let record = PersonRecord::new(PersonFields {
            nin: &nin.0,
            name: b.name.as_deref(),
            email: b.email.as_deref(),
            mobile: b.mobile_number.as_deref(),
            reserved: b.is_reserved.unwrap_or(false),
            last_updated: b.last_updated.as_deref(),
        })
        .map_err(invalid)?;
        self.state
            .store
            .upsert_person(&record.nin, &record.contact)
            .await
            .map_err(ApiError::storage)?;
        Ok(PersonResponse::Ok(Json(person_dto(&record.nin, record.contact))))
    }

    /// Get a person
    #[oai(
        path = "/persons/:nin",
        method = "get",
        tag = "Tag::ContactRegister",
        operation_id = "getContactPerson"
    )]
    async fn get_person(
        &self,
        _operator: Operator,
        nin: Path<String>,
    ) -> Result<PersonResponse, ApiError> {
        let found = self.state.store.person(&nin.0).await.map_err(ApiError::storage)?;
        let c =
            found.ok_or_else(|| ApiError::not_found("No such person in the contact register."))?;
        Ok(PersonResponse::Ok(Json(person_dto(&nin.0, c))))
    }

    /// Delete a person
    #[oai(
        path = "/persons/:nin",
        method = "delete",
        tag = "Tag::ContactRegister",
        operation_id = "deleteContactPerson"
    )]
    async fn delete_person(
        &self,
        _operator: Operator,
        nin: Path<String>,
    ) -> Result<DeletedResponse, ApiError> {
        if self.state.store.delete_person(&nin.0).await.map_err(ApiError::storage)? {
            Ok(DeletedResponse::Deleted)
        } else {
            Err(ApiError::not_found("No such person in the contact register."))
        }
    }

    /// Upload persons
    ///
    /// NDJSON, one `ContactPerson` a line (`nationalIdentityNumber` required), upserted by
    /// number in batches; a number given twice takes its later line. Bad lines are refused by
    /// number and the rest is imported. Bodies are limited by `VARSEL_MAX_BODY_BYTES`; for
    /// larger files use `varsel contacts import`.
    #[oai(
        path = "/persons",
        method = "post",
        tag = "Tag::ContactRegister",
        operation_id = "uploadContactPersons"
    )]
    async fn upload_persons(
        &self,
        _operator: Operator,
        body: NdjsonUpload,
    ) -> Result<ImportResponse, ApiError> {
        self.upload(ContactKind::Persons, body).await
    }

    /// Export persons
    ///
    /// Every person as NDJSON in number order, streamed a page at a time.
    #[oai(
        path = "/persons",
        method = "get",
        tag = "Tag::ContactRegister",
        operation_id = "exportContactPersons"
    )]
    async fn export_persons(&self, _operator: Operator) -> Result<ExportResponse, ApiError> {
        self.export(ContactKind::Persons)
    }

    /// Put an organisation
    ///
    /// Stores an organisation's notification addresses under the number of the path, replacing
    /// what was there. Lists are de-duplicated; a bad entry answers 400.
    #[oai(
        path = "/organizations/:org_no",
        method = "put",
        tag = "Tag::ContactRegister",
        operation_id = "putContactOrganization"
    )]
    async fn put_organization(
        &self,
        _operator: Operator,
        org_no: Path<String>,
        body: Json<OrganizationInput>,
    ) -> Result<OrganizationResponse, ApiError> {
        let b = body.0;
        let record = OrganizationRecord::new(
            &org_no.0,
            b.name.as_deref(),
            &b.email_list,
            &b.mobile_number_list,
        )
        .map_err(invalid)?;
        self.state
            .store
            .upsert_organization(&record.org_no, &record.contact)
            .await
            .map_err(ApiError::storage)?;
        Ok(OrganizationResponse::Ok(Json(organization_dto(&record.org_no, record.contact))))
    }

    /// Get an organisation
    #[oai(
        path = "/organizations/:org_no",
        method = "get",
        tag = "Tag::ContactRegister",
        operation_id = "getContactOrganization"
    )]
    async fn get_organization(
        &self,
        _operator: Operator,
        org_no: Path<String>,
    ) -> Result<OrganizationResponse, ApiError> {
        let found = self.state.store.organization(&org_no.0).await.map_err(ApiError::storage)?;
        let c = found
            .ok_or_else(|| ApiError::not_found("No such organization in the contact register."))?;
        Ok(OrganizationResponse::Ok(Json(organization_dto(&org_no.0, c))))
    }

    /// Delete an organisation
    #[oai(
        path = "/organizations/:org_no",
        method = "delete",
        tag = "Tag::ContactRegister",
        operation_id = "deleteContactOrganization"
    )]
    async fn delete_organization(
        &self,
        _operator: Operator,
        org_no: Path<String>,
    ) -> Result<DeletedResponse, ApiError> {
        if self.state.store.delete_organization(&org_no.0).await.map_err(ApiError::storage)? {
            Ok(DeletedResponse::Deleted)
        } else {
            Err(ApiError::not_found("No such organization in the contact register."))
        }
    }

    /// Upload organisations
    ///
    /// NDJSON, one `ContactOrganization` a line (`organizationNumber` required), as the person
    /// upload.
    #[oai(
        path = "/organizations",
        method = "post",
        tag = "Tag::ContactRegister",
        operation_id = "uploadContactOrganizations"
    )]
    async fn upload_organizations(
        &self,
        _operator: Operator,
        body: NdjsonUpload,
    ) -> Result<ImportResponse, ApiError> {
        self.upload(ContactKind::Organizations, body).await
    }

    /// Export organisations
    ///
    /// Every organisation as NDJSON in number order, streamed a page at a time.
    #[oai(
        path = "/organizations",
        method = "get",
        tag = "Tag::ContactRegister",
        operation_id = "exportContactOrganizations"
    )]
    async fn export_organizations(&self, _operator: Operator) -> Result<ExportResponse, ApiError> {
        self.export(ContactKind::Organizations)
    }
}
