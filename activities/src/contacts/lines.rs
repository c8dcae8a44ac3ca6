//! The register's file formats: one entry a line of NDJSON, or a CSV row with a header, with
//! the field names of Altinn Profile's contact points (`nationalIdentityNumber`, `email`,
//! `mobileNumber`, `isReserved`; `organizationNumber`, `emailList`, `mobileNumberList`) plus
//! `name` and `lastUpdated`. An export writes the NDJSON an import reads.

use super::records::{OrganizationRecord, PersonFields, PersonRecord};
use crate::store::{OrgContact, PersonContact};
use serde::{Deserialize, Serialize};

/// A person as a line of NDJSON or a CSV row.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PersonLine {
    /// 11 digits.
    pub national_identity_number: String,
    /// Full name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Email address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Mobile number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mobile_number: Option<String>,
    /// Reserved against digital notifications (absent or empty: not reserved).
    #[serde(default)]
    pub is_reserved: Option<bool>,
    /// RFC 3339 or YYYY-MM-DD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated: Option<String>,
}

/// An organisation as a line of NDJSON.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrganizationLine {
    /// 9 digits.
    pub organization_number: String,
    /// Registered name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Notification email addresses.
    #[serde(default)]
    pub email_list: Vec<String>,
    /// Notification mobile numbers.
    #[serde(default)]
    pub mobile_number_list: Vec<String>,
}

/// An organisation as a CSV row: each list in one field, its entries separated by `;`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrganizationCsvLine {
    organization_number: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    email_list: Option<String>,
    #[serde(default)]
    mobile_number_list: Option<String>,
}

impl PersonLine {
    /// The validated entry.
    pub fn record(&self) -> Result<PersonRecord, String> {
        PersonRecord::new(PersonFields {
            nin: &self.national_identity_number,
            name: self.name.as_deref(),
            email: self.email.as_deref(),
            mobile: self.mobile_number.as_deref(),
            reserved: self.is_reserved.unwrap_or(false),
            last_updated: self.last_updated.as_deref(),
        })
    }
}

impl PersonLine {
    /// The line of a register entry.
    pub fn of(nin: &str, c: &PersonContact) -> Self {
        Self {
            national_identity_number: nin.to_owned(),
            name: c.name.clone(),
            email: c.email.clone(),
            mobile_number: c.mobile.clone(),
            is_reserved: Some(c.reserved),
            last_updated: c.updated_at.map(|t| t.to_rfc3339()),
        }
    }
}

impl OrganizationLine {
    /// The validated entry.
    pub fn record(&self) -> Result<OrganizationRecord, String> {
        OrganizationRecord::new(
            &self.organization_number,
            self.name.as_deref(),
            &self.email_list,
            &self.mobile_number_list,
        )
    }
}

impl OrganizationLine {
    /// The line of a register entry.
    pub fn of(org_no: &str, c: &OrgContact) -> Self {
        Self {
            organization_number: org_no.to_owned(),
            name: c.name.clone(),
            email_list: c.emails.clone(),
            mobile_number_list: c.mobiles.clone(),
        }
    }
}

impl OrganizationCsvLine {
    /// The validated entry.
    pub fn record(&self) -> Result<OrganizationRecord, String> {
        let split = |s: &Option<String>| -> Vec<String> {
            s.as_deref().unwrap_or("").split(';').map(str::to_owned).collect()
        };
        OrganizationRecord::new(
            &self.organization_number,
            self.name.as_deref(),
            &split(&self.email_list),
            &split(&self.mobile_number_list),
        )
    }
}
