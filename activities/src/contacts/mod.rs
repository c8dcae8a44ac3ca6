//! Contact lookup in the configured sources (`sources`: the embedded register, or KRR for
//! persons), shared by order registration (the `recipientLookup` answer) and notification
//! generation, so both see the same addresses; and loading the embedded register: validated
//! entries (`records`), their file formats (`lines`), streaming import and paged export.

pub mod export;
pub mod import;
pub mod krr;
pub mod lines;
pub mod records;
pub mod sources;

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

/// Looks up every recipient given by national identity number or organisation number in
/// `sources`: persons in one call for those who allow stale contact details and one for the
/// rest, organisations in one. A source that cannot answer fails the whole lookup (retry it).
pub async fn resolve(
    sources: &ContactSources,
    recipients: &[Recipient],
) -> Result<Vec<Resolved>, LookupError> {
    let distinct = |allow_stale: bool| -> Vec<String> {
        recipients
            .iter()
            .filter(|r| r.allow_stale == allow_stale)
            .filter_map(|r| r.nin.clone())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect()
    };
    let (fresh, stale) = (distinct(false), distinct(true));
    let orgs: Vec<String> = recipients
        .iter()
        .filter_map(|r| r.org_no.clone())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
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
    let (fresh, stale, organizations) =
        tokio::try_join!(persons_of(fresh, false), persons_of(stale, true), organizations)?;

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
                if let Some(e) = p.email.as_deref().filter(|e| !e.trim().is_empty()) {
                    push_unique(&mut contact.emails, e.trim().to_owned());
                }
                if let Some(m) = p.mobile.as_deref().and_then(MobileNumber::from_register) {
                    push_unique(&mut contact.mobiles, m.as_str().to_owned());
                }
                party = Party::Person { name: p.name.clone() };
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
            Resolved { contact, party, looked_up: r.nin.is_some() || r.org_no.is_some() }
        })
        .collect())
}
