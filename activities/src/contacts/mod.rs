//! Contact lookup in the configured sources (`sources`: the embedded register, KRR for persons,
//! Altinn Profile for persons, organisations and self-identified users, Altinn Register for
//! names), shared by order registration (the `recipientLookup` answer) and notification
//! generation, so both see the same addresses; and loading the embedded register: validated
//! entries (`records`), their file formats (`lines`), streaming import and paged export.

pub mod altinn_register;
pub mod cache;
pub mod calls;
pub mod export;
pub mod import;
pub mod krr;
pub mod lines;
pub mod profile;
pub mod records;
pub mod sources;

use crate::store::PersonContact;
pub use sources::{ContactSources, LookupError};
use std::collections::{HashMap, HashSet};
use varsel_workflows::domain::MobileNumber;
use varsel_workflows::keywords::KeywordParty;
use varsel_workflows::order::Recipient;
use varsel_workflows::plan::ContactPoints;

/// Who a recipient turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Party {
    /// A person from the register.
    Person {
        /// Full name.
        name: Option<String>,
    },
    /// An organisation from the register.
    Organization {
        /// Registered name.
        name: Option<String>,
        /// Organisation number.
        number: String,
    },
    /// A bare address, or an identifier the register does not know.
    Unknown,
}

impl Party {
    /// The keyword view of this party.
    pub fn keywords(&self) -> KeywordParty<'_> {
        match self {
            Party::Person { name } => KeywordParty::Person { name: name.as_deref() },
            Party::Organization { name, number } => {
                KeywordParty::Organization { name: name.as_deref(), number }
            }
            Party::Unknown => KeywordParty::Unknown,
        }
    }
}

/// A recipient after lookup.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// Usable addresses.
    pub contact: ContactPoints,
    /// Who it is, for keywords.
    pub party: Party,
    /// Whether the recipient was given by identifier (so a lookup was needed).
    pub looked_up: bool,
}

fn push_unique(list: &mut Vec<String>, value: String) {
    if !list.iter().any(|v| v.eq_ignore_ascii_case(&value)) {
        list.push(value);
    }
}

/// A person's email and mobile (normalised as register numbers are) added to `contact`; the
/// party they are.
fn add_person(contact: &mut ContactPoints, p: &PersonContact) -> Party {
    if let Some(e) = p.email.as_deref().filter(|e| !e.trim().is_empty()) {
        push_unique(&mut contact.emails, e.trim().to_owned());
    }
    if let Some(m) = p.mobile.as_deref().and_then(MobileNumber::from_register) {
        push_unique(&mut contact.mobiles, m.as_str().to_owned());
    }
    Party::Person { name: p.name.clone() }
}

/// Distinct values of `key` among `recipients`.
fn distinct(recipients: &[Recipient], key: impl Fn(&Recipient) -> Option<&String>) -> Vec<String> {
    let set: HashSet<&String> = recipients.iter().filter_map(key).collect();
    set.into_iter().cloned().collect()
}

/// Looks up every recipient given by national identity number, organisation number or
/// external identity in `sources`: persons in one lookup for those who allow stale contact
/// details and one for the rest, organisations and self-identified users in one each, all at
/// once. With `want_names`, the names the contact sources did not give are asked of the name
/// source (for `$recipientName$`). A source that cannot answer fails the whole lookup (retry
/// it): nobody is "not identified" because a source was down.
pub async fn resolve(
    sources: &ContactSources,
    recipients: &[Recipient],
    want_names: bool,
) -> Result<Vec<Resolved>, LookupError> {
    let fresh = distinct(recipients, |r| r.nin.as_ref().filter(|_| !r.allow_stale));
    let stale = distinct(recipients, |r| r.nin.as_ref().filter(|_| r.allow_stale));
    let orgs = distinct(recipients, |r| r.org_no.as_ref());
    let externals = distinct(recipients, |r| r.external_identity.as_ref());
    let persons_of = |nins: Vec<String>, allow_stale: bool| async move {
        if nins.is_empty() {
            return Ok(HashMap::new());
        }
        sources.persons.persons(&nins, allow_stale).await
    };
    let organizations = async {
        if orgs.is_empty() {
            return Ok(HashMap::new());
        }
        sources.organizations.organizations(&orgs).await
    };
    let external = async {
        match &sources.external {
            Some(source) if !externals.is_empty() => source.external_identities(&externals).await,
            _ => Ok(HashMap::new()),
        }
    };
    let (mut fresh, mut stale, mut organizations, external) = tokio::try_join!(
        persons_of(fresh, false),
        persons_of(stale, true),
        organizations,
        external
    )?;
    if want_names {
        let unnamed_persons: Vec<String> = fresh
            .iter()
            .chain(stale.iter())
            .filter(|(_, p)| p.name.is_none())
            .map(|(k, _)| k.clone())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let unnamed_orgs: Vec<String> = organizations
            .iter()
            .filter(|(_, o)| o.name.is_none())
            .map(|(k, _)| k.clone())
            .collect();
        if !unnamed_persons.is_empty() || !unnamed_orgs.is_empty() {
            let names = sources.names.names(&unnamed_persons, &unnamed_orgs).await?;
            for (nin, p) in fresh.iter_mut().chain(stale.iter_mut()) {
                if p.name.is_none() {
                    p.name = names.persons.get(nin).cloned();
                }
            }
            for (org_no, o) in organizations.iter_mut() {
                if o.name.is_none() {
                    o.name = names.organizations.get(org_no).cloned();
                }
            }
        }
    }

    Ok(recipients
        .iter()
        .map(|r| {
            let mut contact = ContactPoints::default();
            let mut party = Party::Unknown;
            if let Some(e) = &r.email {
                push_unique(&mut contact.emails, e.clone());
            }
            if let Some(m) = &r.mobile {
                push_unique(&mut contact.mobiles, m.clone());
            }
            let persons = if r.allow_stale { &stale } else { &fresh };
            if let Some(nin) = &r.nin
                && let Some(p) = persons.get(nin)
            {
                contact.reserved = p.reserved;
                party = add_person(&mut contact, p);
            }
            if let Some(id) = &r.external_identity
                && let Some(p) = external.get(id)
            {
                party = add_person(&mut contact, p);
            }
            if let Some(org_no) = &r.org_no
                && let Some(o) = organizations.get(org_no)
            {
                for e in o.emails.iter().filter(|e| !e.trim().is_empty()) {
                    push_unique(&mut contact.emails, e.trim().to_owned());
                }
                for m in o.mobiles.iter().filter_map(|m| MobileNumber::from_register(m)) {
                    push_unique(&mut contact.mobiles, m.as_str().to_owned());
                }
                party = Party::Organization { name: o.name.clone(), number: org_no.clone() };
            }
            let looked_up = r.nin.is_some() || r.org_no.is_some() || r.external_identity.is_some();
            Resolved { contact, party, looked_up }
        })
        .collect())
}
