//! One-time sign-in links: `varsel dev` mints an operator token and prints a link that carries a
//! code instead of the token; the console trades the code for the token once, so the token never
//! sits in a URL, a browser history or a terminal's scrollback.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a link may wait before it is used.
pub const LINK_TTL: Duration = Duration::from_secs(15 * 60);

/// Codes not yet used, each with its token and when it stops working.
#[derive(Default)]
pub struct SignInLinks {
    codes: Mutex<HashMap<String, (String, Instant)>>,
}

impl SignInLinks {
    /// A new code for `token`, good once within [`LINK_TTL`].
    pub fn issue(&self, token: String) -> String {
        let code = hex::encode(rand::random::<[u8; 24]>());
        let mut codes = self.codes.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        codes.retain(|_, (_, until)| *until > now);
        codes.insert(code.clone(), (token, now + LINK_TTL));
        code
    }

    /// The token of `code`, once: the code is gone afterwards, used or expired.
    pub fn redeem(&self, code: &str) -> Option<String> {
        let mut codes = self.codes.lock().unwrap_or_else(|e| e.into_inner());
        let (token, until) = codes.remove(code)?;
        (until > Instant::now()).then_some(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_gives_its_token_once() {
        let links = SignInLinks::default();
        let code = links.issue("t".into());
        assert_eq!(links.issue("u".into()).len(), code.len());
        assert_eq!(links.redeem("nope"), None);
        assert_eq!(links.redeem(&code).as_deref(), Some("t"));
        assert_eq!(links.redeem(&code), None);
    }
}
