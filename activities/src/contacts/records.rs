//! Entries of the embedded contact register as they are loaded: validated and normalised the way
//! lookups use them, so a bad entry is refused when it is loaded, with the reason, instead of
//! being silently useless when an order needs it.

use crate::store::{OrgContact, PersonContact};
use chrono::{DateTime, NaiveDate, Utc};
use varsel_workflows::domain::{
    EmailAddress, MobileNumber, NationalIdentityNumber, OrganizationNumber,
};

/// A person, keyed by national identity number.
#[derive(Debug, Clone, PartialEq)]
pub struct PersonRecord {
    /// 11 digits.
    pub nin: String,
    /// What the register holds.
    pub contact: PersonContact,
}

/// An organisation, keyed by organisation number.
#[derive(Debug, Clone, PartialEq)]
pub struct OrganizationRecord {
    /// 9 digits.
    pub org_no: String,
    /// What the register holds.
    pub contact: OrgContact,
}

/// A person's fields as given, before validation.
#[derive(Debug, Default, Clone)]
pub struct PersonFields<'a> {
    /// `nationalIdentityNumber`.
    pub nin: &'a str,
    /// `name`.
    pub name: Option<&'a str>,
    /// `email`.
    pub email: Option<&'a str>,
    /// `mobileNumber`.
    pub mobile: Option<&'a str>,
    /// `isReserved`.
    pub reserved: bool,
    /// `lastUpdated`: RFC 3339, or a date (midnight UTC).
    pub last_updated: Option<&'a str>,
}

const MOBILE: &str = "mobileNumber: not a mobile number (8 digits starting with 4 or 9, or + or 00 \
                      and a country code)";

/// Trimmed, and `None` when empty.
fn present(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

fn email(s: &str, field: &str) -> Result<String, String> {
    EmailAddress::parse(s).map(|e| e.as_str().to_owned()).map_err(|e| format!("{field}: {e}"))
}

fn mobile(s: &str) -> Result<String, String> {
    MobileNumber::from_register(s).map(|m| m.as_str().to_owned()).ok_or_else(|| MOBILE.to_owned())
}

/// `lastUpdated` as RFC 3339 or `YYYY-MM-DD`.
pub fn parse_last_updated(s: &str) -> Result<DateTime<Utc>, String> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc())
        .map_err(|_| format!("lastUpdated: '{s}' is neither RFC 3339 nor YYYY-MM-DD"))
}

impl PersonRecord {
    /// Validates and normalises: the number is 11 digits, the email follows Altinn's address
    /// rules, the mobile number is normalised as lookups normalise it (`+47` for 8 Norwegian
    /// digits, `00` to `+`); empty fields are absent.
    pub fn new(f: PersonFields<'_>) -> Result<Self, String> {
        let nin = NationalIdentityNumber::parse(f.nin.trim())
            .map_err(|e| format!("nationalIdentityNumber: {e}"))?;
        Ok(Self {
            nin: nin.as_str().to_owned(),
            contact: PersonContact {
                name: present(f.name).map(str::to_owned),
                email: present(f.email).map(|e| email(e, "email")).transpose()?,
                mobile: present(f.mobile).map(mobile).transpose()?,
                reserved: f.reserved,
                updated_at: present(f.last_updated).map(parse_last_updated).transpose()?,
            },
        })
    }
}

impl OrganizationRecord {
    /// Validates and normalises as `PersonRecord::new`; each list is de-duplicated
    /// (case-insensitively for emails), empty entries dropped.
    pub fn new(
        org_no: &str,
        name: Option<&str>,
        emails: &[String],
        mobiles: &[String],
    ) -> Result<Self, String> {
        let org_no = OrganizationNumber::parse(org_no.trim())
            .map_err(|e| format!("organizationNumber: {e}"))?;
        let mut contact =
            OrgContact { name: present(name).map(str::to_owned), emails: vec![], mobiles: vec![] };
        for e in emails.iter().filter_map(|e| present(Some(e))) {
            let e = email(e, "emailList")?;
            if !contact.emails.iter().any(|x| x.eq_ignore_ascii_case(&e)) {
                contact.emails.push(e);
            }
        }
        for m in mobiles.iter().filter_map(|m| present(Some(m))) {
            let m = mobile(m).map_err(|e| e.replacen("mobileNumber", "mobileNumberList", 1))?;
            if !contact.mobiles.contains(&m) {
                contact.mobiles.push(m);
            }
        }
        Ok(Self { org_no: org_no.as_str().to_owned(), contact })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_person_is_normalised_as_lookups_use_it() {
        let p = PersonRecord::new(PersonFields {
            nin: " 01017012345 ",
            name: Some("  "),
            email: Some(" ola@example.no "),
            mobile: Some("99999999"),
            reserved: true,
            last_updated: Some("2025-03-01"),
        })
        .unwrap();
        assert_eq!(p.nin, "01017012345");
        assert_eq!(p.contact.name, None);
        assert_eq!(p.contact.email.as_deref(), Some("ola@example.no"));
        assert_eq!(p.contact.mobile.as_deref(), Some("+4799999999"));
        assert!(p.contact.reserved);
        assert_eq!(p.contact.updated_at.unwrap().to_rfc3339(), "2025-03-01T00:00:00+00:00");
        let p = PersonRecord::new(PersonFields {
            nin: "01017012345",
            mobile: Some("004740000001"),
            last_updated: Some("2025-03-01T12:00:00+01:00"),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(p.contact.mobile.as_deref(), Some("+4740000001"));
        assert_eq!(p.contact.updated_at.unwrap().to_rfc3339(), "2025-03-01T11:00:00+00:00");
    }

    #[test]
    fn a_bad_field_is_named_with_the_reason() {
        let bad = |f: PersonFields<'_>| PersonRecord::new(f).unwrap_err();
        let nin = "01017012345";
        assert_eq!(
            bad(PersonFields { nin: "0101701234", ..Default::default() }),
            "nationalIdentityNumber: National identity number must be 11 digits long."
        );
        assert_eq!(
            bad(PersonFields { nin, email: Some("a;b@example.no"), ..Default::default() }),
            "email: Invalid email address format."
        );
        assert_eq!(
            bad(PersonFields { nin, mobile: Some("12345678"), ..Default::default() }),
            MOBILE
        );
        assert_eq!(
            bad(PersonFields { nin, last_updated: Some("yesterday"), ..Default::default() }),
            "lastUpdated: 'yesterday' is neither RFC 3339 nor YYYY-MM-DD"
        );
        assert_eq!(
            OrganizationRecord::new("91000000", None, &[], &[]).unwrap_err(),
            "organizationNumber: Organization number must be 9 digits long."
        );
        assert!(
            OrganizationRecord::new("910000000", None, &[], &["+47123".into()])
                .unwrap_err()
                .starts_with("mobileNumberList: not a mobile number")
        );
    }

    #[test]
    fn organisation_lists_are_deduplicated() {
        let o = OrganizationRecord::new(
            "910000000",
            Some("Bedrift AS"),
            &["post@bedrift.no".into(), "POST@bedrift.no".into(), " ".into()],
            &["40000001".into(), "+4740000001".into()],
        )
        .unwrap();
        assert_eq!(o.contact.emails, ["post@bedrift.no"]);
        assert_eq!(o.contact.mobiles, ["+4740000001"]);
        assert_eq!(o.contact.name.as_deref(), Some("Bedrift AS"));
    }
}
