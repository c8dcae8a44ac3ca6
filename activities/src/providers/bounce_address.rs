//! Bounce addresses (VERP): every email's envelope sender names its notification, signed, under
//! the configured bounce domain. A delivery status notification comes back to the envelope
//! sender, so the address it is sent to says which notification it is about; the signature means
//! nobody but varsel can make such an address, so a forged or guessed one is refused at `RCPT`.
//!
//! The local part is `b-<notification id, 32 hex digits>-<tag, 16 hex digits>`: 51 characters
//! (RFC 5321 allows 64), lowercase hex only, so relays that fold the case of local parts keep
//! it valid. The tag is the first 8 bytes of HMAC-SHA256 over the id, keyed with a key derived
//! from the report secret (which every host of a deployment shares).

use hmac::{Hmac, Mac};
use sha2::Sha256;

const PREFIX: &str = "b-";
const TAG_BYTES: usize = 8;

type HmacSha256 = Hmac<Sha256>;

/// Makes and checks bounce addresses under one domain.
#[derive(Clone)]
pub struct BounceAddresses {
    domain: String,
    key: [u8; 32],
}

impl std::fmt::Debug for BounceAddresses {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BounceAddresses").field("domain", &self.domain).finish_non_exhaustive()
    }
}

impl BounceAddresses {
    /// Addresses under `domain`, signed with a key derived from `secret` (the report secret: a
    /// key of its own, so that a bounce tag is never a valid signature of anything else).
    pub fn new(domain: &str, secret: &[u8]) -> Self {
        let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
        mac.update(b"varsel bounce addresses v1");
        Self {
            domain: domain.trim().trim_end_matches('.').to_ascii_lowercase(),
            key: mac.finalize().into_bytes().into(),
        }
    }

    /// The bounce domain.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.key).expect("HMAC takes keys of any length")
    }

    /// The envelope sender of `notification_id`'s email; `None` when the id is not a UUID
    /// (every notification id varsel makes is one).
    pub fn address_for(&self, notification_id: &str) -> Option<String> {
        let id = uuid::Uuid::parse_str(notification_id).ok()?.simple().to_string();
        let mut mac = self.mac();
        mac.update(id.as_bytes());
        let tag = hex::encode(&mac.finalize().into_bytes()[..TAG_BYTES]);
        Some(format!("{PREFIX}{id}-{tag}@{}", self.domain))
    }

    /// The notification `address` names, when it is a bounce address of this domain with a
    /// valid tag (compared in constant time); `None` for anything else.
    pub fn notification_of(&self, address: &str) -> Option<String> {
        let address = address.trim().trim_start_matches('<').trim_end_matches('>');
        let (local, domain) = address.rsplit_once('@')?;
        if !domain.trim_end_matches('.').eq_ignore_ascii_case(&self.domain) {
            return None;
        }
        let local = local.to_ascii_lowercase();
        let (id, tag) = local.strip_prefix(PREFIX)?.split_once('-')?;
        if id.len() != 32 || tag.len() != 2 * TAG_BYTES {
            return None;
        }
        let id = uuid::Uuid::try_parse(id).ok()?;
        let tag = hex::decode(tag).ok()?;
        let mut mac = self.mac();
        mac.update(id.simple().to_string().as_bytes());
        mac.verify_truncated_left(&tag).ok()?;
        Some(id.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::BounceAddresses;

    const ID: &str = "8c1f2e0a-57d4-4b7e-9a51-0f3c2d1e4b6a";

    #[test]
    fn an_address_names_its_notification_and_nothing_else_verifies() {
        let b = BounceAddresses::new("Bounces.Example.org.", b"secret");
        let a = b.address_for(ID).unwrap();
        assert!(a.ends_with("@bounces.example.org"), "{a}");
        let (local, _) = a.split_once('@').unwrap();
        assert!(local.len() <= 64, "{local}");
        assert_eq!(b.notification_of(&a).as_deref(), Some(ID));
        // Relays may change the case of the whole address, and bracket it.
        assert_eq!(b.notification_of(&format!("<{}>", a.to_uppercase())).as_deref(), Some(ID));

        // Another notification's id with this tag, a changed tag, a short tag, another domain,
        // another key: refused.
        let other = a.replacen("8c1f", "8c1e", 1);
        assert_eq!(b.notification_of(&other), None);
        let last = a.find('@').unwrap() - 1;
        let mut flipped = a.clone();
        flipped.replace_range(last..=last, if &a[last..=last] == "0" { "1" } else { "0" });
        assert_eq!(b.notification_of(&flipped), None);
        let short = format!("{}@bounces.example.org", &local[..local.len() - 2]);
        assert_eq!(b.notification_of(&short), None);
        assert_eq!(b.notification_of(&a.replace("example.org", "example.com")), None);
        assert_eq!(BounceAddresses::new("bounces.example.org", b"other").notification_of(&a), None);
        for junk in ["", "@", "b-@bounces.example.org", "postmaster@bounces.example.org", "x"] {
            assert_eq!(b.notification_of(junk), None, "{junk}");
        }
        assert_eq!(b.address_for("not-a-uuid"), None);
    }
}
