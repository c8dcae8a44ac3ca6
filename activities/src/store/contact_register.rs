//! The embedded contact register: persons by national identity number and organisations by
//! organisation number.

use super::Store;
use super::entities::{contact_organization, contact_person};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, DbErr, EntityTrait, QueryFilter, TransactionTrait};
use std::collections::HashMap;

/// A person's contact points as the register has them.
#[derive(Debug, Clone)]
pub struct PersonContact {
    /// Full name.
    pub name: Option<String>,
    /// Email address.
    pub email: Option<String>,
    /// Mobile number (as stored; normalise before use).
    pub mobile: Option<String>,
    /// Reserved against digital notifications.
    pub reserved: bool,
}

/// An organisation's notification addresses as the register has them.
#[derive(Debug, Clone)]
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
                out.insert(
                    p.nin,
                    PersonContact {
                        name: p.name,
                        email: p.email,
                        mobile: p.mobile,
                        reserved: p.reserved,
                    },
                );
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
                let list = |v: &serde_json::Value| -> Vec<String> {
                    serde_json::from_value(v.clone()).unwrap_or_default()
                };
                out.insert(
                    o.org_no,
                    OrgContact { name: o.name, emails: list(&o.emails), mobiles: list(&o.mobiles) },
                );
            }
        }
        Ok(out)
    }

    /// Adds or replaces a person in the contact register.
    pub async fn upsert_person(&self, nin: &str, c: &PersonContact) -> Result<(), DbErr> {
        self.upsert_persons(&[(nin.to_owned(), c.clone())]).await
    }

    /// Adds or replaces many persons in the contact register, a few hundred rows a statement.
    pub async fn upsert_persons(&self, persons: &[(String, PersonContact)]) -> Result<(), DbErr> {
        let txn = self.db.begin().await?;
        for chunk in persons.chunks(500) {
            contact_person::Entity::insert_many(chunk.iter().map(|(nin, c)| {
                contact_person::ActiveModel {
                    nin: Set(nin.clone()),
                    name: Set(c.name.clone()),
                    email: Set(c.email.clone()),
                    mobile: Set(c.mobile.clone()),
                    reserved: Set(c.reserved),
                }
            }))
            .on_conflict(
                OnConflict::column(contact_person::Column::Nin)
                    .update_columns([
                        contact_person::Column::Name,
                        contact_person::Column::Email,
                        contact_person::Column::Mobile,
                        contact_person::Column::Reserved,
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
        contact_organization::Entity::insert(contact_organization::ActiveModel {
            org_no: Set(org_no.to_owned()),
            name: Set(c.name.clone()),
            emails: Set(serde_json::json!(c.emails)),
            mobiles: Set(serde_json::json!(c.mobiles)),
        })
        .on_conflict(
            OnConflict::column(contact_organization::Column::OrgNo)
                .update_columns([
                    contact_organization::Column::Name,
                    contact_organization::Column::Emails,
                    contact_organization::Column::Mobiles,
                ])
                .to_owned(),
        )
        .exec_without_returning(&*self.db)
        .await?;
        Ok(())
    }
}
