//! The embedded contact register: persons by national identity number and organisations by
//! organisation number. Lookups, upserts many rows a statement (imports), single entries
//! (the operator API) and pages in key order (exports).

use super::Store;
use super::entities::{contact_organization, contact_person};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait,
};
use std::collections::HashMap;

/// Rows a multi-row upsert statement writes (7 parameters a person: well under SQLite's and
/// PostgreSQL's parameter limits).
const UPSERT_CHUNK: usize = 500;

/// A person's contact points as the register has them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonContact {
    /// Full name.
    pub name: Option<String>,
    /// Email address.
    pub email: Option<String>,
    /// Mobile number (as stored; normalise before use).
    pub mobile: Option<String>,
    /// Reserved against digital notifications.
    pub reserved: bool,
    /// When the contact details were last confirmed or changed at their source, if known.
    pub updated_at: Option<DateTime<Utc>>,
}

impl From<contact_person::Model> for PersonContact {
    fn from(p: contact_person::Model) -> Self {
        Self {
            name: p.name,
            email: p.email,
            mobile: p.mobile,
            reserved: p.reserved,
            updated_at: p.updated_at,
        }
    }
}

impl From<contact_organization::Model> for OrgContact {
    fn from(o: contact_organization::Model) -> Self {
        let list =
            |v: serde_json::Value| -> Vec<String> { serde_json::from_value(v).unwrap_or_default() };
        Self { name: o.name, emails: list(o.emails), mobiles: list(o.mobiles) }
    }
}

fn person_row(nin: &str, c: &PersonContact) -> contact_person::ActiveModel {
    contact_person::ActiveModel {
        nin: Set(nin.to_owned()),
        name: Set(c.name.clone()),
        email: Set(c.email.clone()),
        mobile: Set(c.mobile.clone()),
        reserved: Set(c.reserved),
        updated_at: Set(c.updated_at),
    }
}

fn organization_row(org_no: &str, c: &OrgContact) -> contact_organization::ActiveModel {
    contact_organization::ActiveModel {
        org_no: Set(org_no.to_owned()),
        name: Set(c.name.clone()),
        emails: Set(serde_json::json!(c.emails)),
        mobiles: Set(serde_json::json!(c.mobiles)),
    }
}

/// An organisation's notification addresses as the register has them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgContact {
    /// Registered name.
    pub name: Option<String>,
    /// Email addresses.
    pub emails: Vec<String>,
    /// Mobile numbers (as stored; normalise before use).
    pub mobiles: Vec<String>,
}

impl Store {
    /// Persons of the contact register, by national identity number.
    pub async fn lookup_persons(
        &self,
        nins: &[String],
    ) -> Result<HashMap<String, PersonContact>, DbErr> {
        if nins.is_empty() {
            return Ok(HashMap::new());
        }
        let mut out = HashMap::new();
        for chunk in nins.chunks(500) {
            for p in contact_person::Entity::find()
                .filter(contact_person::Column::Nin.is_in(chunk.iter().cloned()))
                .all(&*self.db)
                .await?
            {
                out.insert(p.nin.clone(), p.into());
            }
        }
        Ok(out)
    }

    /// Organisations of the contact register, by organisation number.
    pub async fn lookup_organizations(
        &self,
        orgs: &[String],
    ) -> Result<HashMap<String, OrgContact>, DbErr> {
        if orgs.is_empty() {
            return Ok(HashMap::new());
        }
        let mut out = HashMap::new();
        for chunk in orgs.chunks(500) {
            for o in contact_organization::Entity::find()
                .filter(contact_organization::Column::OrgNo.is_in(chunk.iter().cloned()))
                .all(&*self.db)
                .await?
            {
                out.insert(o.org_no.clone(), o.into());
            }
        }
        Ok(out)
    }

    /// Adds or replaces a person in the contact register.
    pub async fn upsert_person(&self, nin: &str, c: &PersonContact) -> Result<(), DbErr> {
        self.upsert_persons(&[(nin.to_owned(), c.clone())]).await
    }

    /// Adds or replaces many persons in one transaction, a few hundred rows a statement. A
    /// number may appear only once in `persons` (PostgreSQL refuses to update one row twice in
    /// a statement).
    pub async fn upsert_persons(&self, persons: &[(String, PersonContact)]) -> Result<(), DbErr> {
        let txn = self.db.begin().await?;
        for chunk in persons.chunks(UPSERT_CHUNK) {
            contact_person::Entity::insert_many(chunk.iter().map(|(nin, c)| person_row(nin, c)))
                .on_conflict(
                    OnConflict::column(contact_person::Column::Nin)
                        .update_columns([
                            contact_person::Column::Name,
                            contact_person::Column::Email,
                            contact_person::Column::Mobile,
                            contact_person::Column::Reserved,
                            contact_person::Column::UpdatedAt,
                        ])
                        .to_owned(),
                )
                .exec_without_returning(&txn)
                .await?;
        }
        txn.commit().await
    }

    /// Adds or replaces an organisation in the contact register.
    pub async fn upsert_organization(&self, org_no: &str, c: &OrgContact) -> Result<(), DbErr> {
        self.upsert_organizations(&[(org_no.to_owned(), c.clone())]).await
    }

    /// Adds or replaces many organisations in one transaction, as `upsert_persons`.
    pub async fn upsert_organizations(
        &self,
        organizations: &[(String, OrgContact)],
    ) -> Result<(), DbErr> {
        let txn = self.db.begin().await?;
        for chunk in organizations.chunks(UPSERT_CHUNK) {
            contact_organization::Entity::insert_many(
                chunk.iter().map(|(org_no, c)| organization_row(org_no, c)),
            )
            .on_conflict(
                OnConflict::column(contact_organization::Column::OrgNo)
                    .update_columns([
                        contact_organization::Column::Name,
                        contact_organization::Column::Emails,
                        contact_organization::Column::Mobiles,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
        }
        txn.commit().await
    }

    /// One person of the register.
    pub async fn person(&self, nin: &str) -> Result<Option<PersonContact>, DbErr> {
        Ok(contact_person::Entity::find_by_id(nin.to_owned()).one(&*self.db).await?.map(Into::into))
    }

    /// One organisation of the register.
    pub async fn organization(&self, org_no: &str) -> Result<Option<OrgContact>, DbErr> {
        Ok(contact_organization::Entity::find_by_id(org_no.to_owned())
            .one(&*self.db)
            .await?
            .map(Into::into))
    }

    /// Removes a person; whether there was one.
    pub async fn delete_person(&self, nin: &str) -> Result<bool, DbErr> {
        let r = contact_person::Entity::delete_by_id(nin.to_owned()).exec(&*self.db).await?;
        Ok(r.rows_affected > 0)
    }

    /// Removes an organisation; whether there was one.
    pub async fn delete_organization(&self, org_no: &str) -> Result<bool, DbErr> {
        let r =
            contact_organization::Entity::delete_by_id(org_no.to_owned()).exec(&*self.db).await?;
        Ok(r.rows_affected > 0)
    }

    /// Up to `limit` persons with numbers after `after`, in number order (an export's page;
    /// the primary key serves it, so each page costs the same however far in).
    pub async fn persons_after(
        &self,
        after: Option<&str>,
        limit: u64,
    ) -> Result<Vec<(String, PersonContact)>, DbErr> {
        let mut q = contact_person::Entity::find().order_by_asc(contact_person::Column::Nin);
        if let Some(after) = after {
            q = q.filter(contact_person::Column::Nin.gt(after));
        }
        Ok(q.limit(limit)
            .all(&*self.db)
            .await?
            .into_iter()
            .map(|p| (p.nin.clone(), p.into()))
            .collect())
    }

    /// Up to `limit` organisations with numbers after `after`, in number order.
    pub async fn organizations_after(
        &self,
        after: Option<&str>,
        limit: u64,
    ) -> Result<Vec<(String, OrgContact)>, DbErr> {
        let mut q =
            contact_organization::Entity::find().order_by_asc(contact_organization::Column::OrgNo);
        if let Some(after) = after {
            q = q.filter(contact_organization::Column::OrgNo.gt(after));
        }
        Ok(q.limit(limit)
            .all(&*self.db)
            .await?
            .into_iter()
            .map(|o| (o.org_no.clone(), o.into()))
            .collect())
    }
}
