//! Altinn Profile's contact point lookups, as Altinn Notifications itself calls them (relative
//! to Profile's `…/profile/api/v1/`), so that a varsel beside an Altinn platform finds
//! recipients where Altinn does:
//! - persons: `POST users/contactpoint/lookup` `{"nationalIdentityNumbers":[…],
//!   "useStaleContactInfo":bool}` → `{"contactPointsList":[{"nationalIdentityNumber",
//!   "isReserved","mobileNumber","email",…}]}` (Profile applies the 18-month rule itself);
//! - organisations: `POST organizations/notificationaddresses/lookup`
//!   `{"organizationNumbers":[…]}` → `{"contactPointsList":[{"organizationNumber",
//!   "emailList","mobileNumberList",…}]}`;
//! - self-identified users: `POST users/contactpoint/lookupsi` `{"externalIdentities":[…]}` →
//!   `{"contactPointsList":[{"externalIdentity","email","mobileNumber"}]}`.
//!
//! Profile answers these without a token (they are platform-internal). A number Profile does
//! not return is not identified; batching, concurrency and outages as in `calls`.

use super::calls::{in_batches, post_json};
use super::sources::{
    ExternalIdentitySource, LookupError, OrganizationSource, PersonSource, present,
};
use crate::store::{OrgContact, PersonContact};
use serde::Deserialize;
use std::collections::HashMap;
use std::time::Duration;

const PROFILE: &str = "Altinn Profile";

/// Where Profile is and how varsel calls it.
#[derive(Debug, Clone)]
pub struct ProfileSettings {
    /// Profile's API base, e.g. `https://platform.altinn.no/profile/api/v1/`.
    pub url: String,
    /// Keys a call.
    pub batch: usize,
    /// Calls at once.
    pub concurrency: usize,
    /// Timeout of one call.
    pub timeout: Duration,
}

/// Altinn Profile as a source of persons, organisations and self-identified users.
pub struct Profile {
    settings: ProfileSettings,
    http: reqwest::Client,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct List<T> {
    #[serde(default = "Vec::new")]
    contact_points_list: Vec<T>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserContactPoints {
    national_identity_number: String,
    #[serde(default)]
    is_reserved: bool,
    #[serde(default)]
    mobile_number: Option<String>,
    #[serde(default)]
    email: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OrganizationContactPoints {
    organization_number: String,
    #[serde(default)]
    mobile_number_list: Vec<String>,
    #[serde(default)]
    email_list: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExternalIdentityContactPoints {
    external_identity: String,
    #[serde(default)]
    mobile_number: Option<String>,
    #[serde(default)]
    email: Option<String>,
}

impl Profile {
    /// Profile at `settings.url`.
    pub fn new(settings: ProfileSettings) -> anyhow::Result<Self> {
        let http = crate::providers::service_client(settings.timeout)?;
        let url = format!("{}/", settings.url.trim_end_matches('/'));
        Ok(Self { settings: ProfileSettings { url, ..settings }, http })
    }

    async fn lookup<T: serde::de::DeserializeOwned + Send>(
        &self,
        path: &str,
        keys: &[String],
        body: impl Fn(Vec<String>) -> serde_json::Value + Sync,
    ) -> Result<Vec<T>, LookupError> {
        let url = format!("{}{path}", self.settings.url);
        let (url, body) = (&url, &body);
        in_batches(
            PROFILE,
            keys,
            self.settings.batch,
            self.settings.concurrency,
            |chunk| async move {
                post_json::<List<T>>(&self.http, url, &body(chunk), None, &[])
                    .await
                    .map(|l| l.contact_points_list)
                    .map_err(|(e, _)| e)
            },
        )
        .await
    }

    /// Self-identified users by external identity (`urn:altinn:person:idporten-email:…`,
    /// `urn:altinn:party:username:…`), matched back without regard to case.
    async fn external(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, PersonContact>, LookupError> {
        let found: Vec<ExternalIdentityContactPoints> = self
            .lookup(
                "users/contactpoint/lookupsi",
                ids,
                |c| serde_json::json!({ "externalIdentities": c }),
            )
            .await?;
        let by_lower: HashMap<String, &String> =
            ids.iter().map(|i| (i.to_lowercase(), i)).collect();
        Ok(found
            .into_iter()
            .filter_map(|p| {
                let asked = by_lower.get(&p.external_identity.to_lowercase())?;
                let contact = PersonContact {
                    name: None,
                    email: present(p.email),
                    mobile: present(p.mobile_number),
                    reserved: false,
                    updated_at: None,
                };
                Some(((*asked).clone(), contact))
            })
            .collect())
    }
}

#[async_trait::async_trait]
impl PersonSource for Profile {
    async fn persons(
        &self,
        nins: &[String],
        allow_stale: bool,
    ) -> Result<HashMap<String, PersonContact>, LookupError> {
        let found: Vec<UserContactPoints> = self
            .lookup("users/contactpoint/lookup", nins, |c| {
                serde_json::json!({ "nationalIdentityNumbers": c, "useStaleContactInfo": allow_stale })
            })
            .await?;
        Ok(found
            .into_iter()
            .map(|p| {
                let contact = PersonContact {
                    name: None,
                    email: present(p.email),
                    mobile: present(p.mobile_number),
                    reserved: p.is_reserved,
                    updated_at: None,
                };
                (p.national_identity_number, contact)
            })
            .collect())
    }
}

#[async_trait::async_trait]
impl OrganizationSource for Profile {
    async fn organizations(
        &self,
        orgs: &[String],
    ) -> Result<HashMap<String, OrgContact>, LookupError> {
        let found: Vec<OrganizationContactPoints> = self
            .lookup(
                "organizations/notificationaddresses/lookup",
                orgs,
                |c| serde_json::json!({ "organizationNumbers": c }),
            )
            .await?;
        Ok(found
            .into_iter()
            .map(|o| {
                let contact =
                    OrgContact { name: None, emails: o.email_list, mobiles: o.mobile_number_list };
                (o.organization_number, contact)
            })
            .collect())
    }
}

#[async_trait::async_trait]
impl ExternalIdentitySource for Profile {
    async fn external_identities(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, PersonContact>, LookupError> {
        self.external(ids).await
    }
}
