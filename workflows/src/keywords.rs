//! Keyword replacement (Altinn `KeywordsService`): `$recipientName$` and `$recipientNumber$`.

/// The recipient name placeholder (case-sensitive).
pub const RECIPIENT_NAME: &str = "$recipientName$";
/// The recipient number placeholder (case-sensitive).
pub const RECIPIENT_NUMBER: &str = "$recipientNumber$";

/// Whether `text` contains a keyword, so per-recipient text has to be rendered.
pub fn has_keywords(text: &str) -> bool {
    text.contains(RECIPIENT_NAME) || text.contains(RECIPIENT_NUMBER)
}

/// Who a text is rendered for.
#[derive(Debug, Clone, Copy)]
pub enum KeywordParty<'a> {
    /// A person from the register: name known, number stays empty (Altinn never exposes a NIN).
    Person {
        /// Full name, if the register has one.
        name: Option<&'a str>,
    },
    /// An organisation from the register.
    Organization {
        /// Registered name, if any.
        name: Option<&'a str>,
        /// The organisation number.
        number: &'a str,
    },
    /// A bare address: keywords stay literally in the text, as in Altinn.
    Unknown,
}

/// Replaces the keywords for `party`; texts without keywords come back unchanged.
pub fn render(text: &str, party: KeywordParty<'_>) -> String {
    match party {
        KeywordParty::Unknown => text.to_owned(),
        KeywordParty::Person { name } => {
            text.replace(RECIPIENT_NAME, name.unwrap_or("")).replace(RECIPIENT_NUMBER, "")
        }
        KeywordParty::Organization { name, number } => {
            text.replace(RECIPIENT_NAME, name.unwrap_or("")).replace(RECIPIENT_NUMBER, number)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_for_organisations_and_persons() {
        let t = "Dear $recipientName$ ($recipientNumber$)";
        assert_eq!(
            render(t, KeywordParty::Organization { name: Some("Digdir"), number: "311000179" }),
            "Dear Digdir (311000179)"
        );
        assert_eq!(
            render(t, KeywordParty::Person { name: Some("Ola Nordmann") }),
            "Dear Ola Nordmann ()"
        );
        assert_eq!(render(t, KeywordParty::Unknown), t);
        assert_eq!(
            render("$RecipientName$", KeywordParty::Person { name: Some("x") }),
            "$RecipientName$"
        );
    }
}
