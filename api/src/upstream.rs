//! What varsel uses to call other services, built from configuration once a process: the
//! Maskinporten client (one, with its token cache), the contact sources (`Config::contacts`) and
//! how condition endpoints are called (`Config::conditions`). Shared by the API (the
//! `recipientLookup` answer) and the worker (notification generation, condition checks), so
//! both ask the same source with the same token.

use crate::config::{
    ConditionAuthKind, Config, MaskinportenConfig, NamesSource, OrganizationsSource, PersonsSource,
};
use std::sync::Arc;
use std::time::Duration;
use varsel_activities::Store;
use varsel_activities::contacts::ContactSources;
use varsel_activities::contacts::altinn_register::{AltinnRegister, RegisterSettings};
use varsel_activities::contacts::cache::{
    CachedExternal, CachedNames, CachedOrganizations, CachedPersons,
};
use varsel_activities::contacts::krr::{Krr, KrrSettings};
use varsel_activities::contacts::profile::{Profile, ProfileSettings};
use varsel_activities::providers::condition::ConditionAuth;
use varsel_activities::providers::maskinporten::{Maskinporten, MaskinportenSettings};

/// What a process calls other services with.
#[derive(Clone)]
pub struct Upstream {
    /// Where recipients are looked up.
    pub contacts: ContactSources,
    /// How condition endpoints are called.
    pub condition_auth: ConditionAuth,
}

impl Upstream {
    /// The sources and credentials of `config`, the embedded register of `store` where it
    /// names no other source.
    pub fn from_config(config: &Config, store: &Store) -> anyhow::Result<Self> {
        let maskinporten = maskinporten(&config.maskinporten)?;
        let needs = |what: &str| {
            maskinporten.clone().ok_or_else(|| {
                anyhow::anyhow!(
                    "{what} needs Maskinporten: VARSEL_MASKINPORTEN_TOKEN_URL, _CLIENT_ID, _KEY_FILE and _KID or _CERTIFICATE_FILE"
                )
            })
        };
        let c = &config.conditions;
        let condition_auth = match c.auth {
            ConditionAuthKind::None => ConditionAuth::None,
            ConditionAuthKind::Token if c.token.expose().is_empty() => {
                anyhow::bail!("VARSEL_CONDITION_AUTH=token needs VARSEL_CONDITION_TOKEN")
            }
            ConditionAuthKind::Token => ConditionAuth::Bearer(c.token.expose().to_owned()),
            ConditionAuthKind::Maskinporten => ConditionAuth::Maskinporten {
                client: needs("VARSEL_CONDITION_AUTH=maskinporten")?,
                scope: c.scope.clone(),
            },
        };
        let contacts = contact_sources(config, store, || needs("VARSEL_CONTACTS_PERSONS=krr"))?;
        Ok(Self { contacts, condition_auth })
    }
}

/// The sources of `config`, with the embedded register of `store` where it names no other.
fn contact_sources(
    config: &Config,
    store: &Store,
    maskinporten: impl FnOnce() -> anyhow::Result<Arc<Maskinporten>>,
) -> anyhow::Result<ContactSources> {
    let mut sources = ContactSources::embedded(store);
    let c = &config.contacts;
    let timeout = Duration::from_secs(c.timeout_secs.max(1));
    let profile = if c.profile_url.is_empty() {
        None
    } else {
        Some(Arc::new(Profile::new(ProfileSettings {
            url: c.profile_url.clone(),
            batch: c.batch,
            concurrency: c.concurrency,
            timeout,
        })?))
    };
    let needs_profile = |what: &str| {
        profile.clone().ok_or_else(|| anyhow::anyhow!("{what} needs VARSEL_PROFILE_URL"))
    };
    match c.persons {
        PersonsSource::Register => {}
        PersonsSource::Profile => {
            sources.persons = needs_profile("VARSEL_CONTACTS_PERSONS=profile")?
        }
        PersonsSource::Krr => {
            if c.krr_url.is_empty() {
                anyhow::bail!("VARSEL_CONTACTS_PERSONS=krr needs VARSEL_KRR_URL");
            }
            let settings = KrrSettings {
                url: c.krr_url.clone(),
                scope: c.krr_scope.clone(),
                batch: c.batch,
                concurrency: c.concurrency,
                timeout,
            };
            sources.persons = Arc::new(Krr::new(settings, maskinporten()?)?);
        }
    }
    if c.organizations == OrganizationsSource::Profile {
        sources.organizations = needs_profile("VARSEL_CONTACTS_ORGANIZATIONS=profile")?;
    }
    if let Some(profile) = &profile {
        sources.external = Some(profile.clone());
    }
    if c.names == NamesSource::Altinn {
        if c.altinn_register_url.is_empty() {
            anyhow::bail!("VARSEL_CONTACTS_NAMES=altinn needs VARSEL_ALTINN_REGISTER_URL");
        }
        let path = &c.altinn_access_token_key_file;
        let key_pem = std::fs::read(path).map_err(|e| {
            anyhow::anyhow!("VARSEL_ALTINN_ACCESS_TOKEN_KEY_FILE {}: {e}", path.display())
        })?;
        sources.names = Arc::new(AltinnRegister::new(RegisterSettings {
            url: c.altinn_register_url.clone(),
            key_pem,
            kid: (!c.altinn_access_token_kid.is_empty()).then(|| c.altinn_access_token_kid.clone()),
            issuer: c.altinn_access_token_issuer.clone(),
            app: c.altinn_access_token_app.clone(),
            batch: c.batch,
            concurrency: c.concurrency,
            timeout,
        })?);
    }
    // The remote sources' answers are remembered a while; the embedded register is not cached.
    if let Some(capacity) =
        std::num::NonZeroUsize::new(c.cache_entries).filter(|_| c.cache_secs > 0)
    {
        let ttl = Duration::from_secs(c.cache_secs);
        if c.persons != PersonsSource::Register {
            sources.persons = Arc::new(CachedPersons::new(sources.persons, capacity, ttl));
        }
        if c.organizations != OrganizationsSource::Register {
            sources.organizations =
                Arc::new(CachedOrganizations::new(sources.organizations, capacity, ttl));
        }
        if let Some(external) = sources.external.take() {
            sources.external = Some(Arc::new(CachedExternal::new(external, capacity, ttl)));
        }
        if c.names != NamesSource::Register {
            sources.names = Arc::new(CachedNames::new(sources.names, capacity, ttl));
        }
    }
    Ok(sources)
}

/// The Maskinporten client of `m`, or `None` when no token endpoint is configured.
pub fn maskinporten(m: &MaskinportenConfig) -> anyhow::Result<Option<Arc<Maskinporten>>> {
    if m.maskinporten_token_url.is_empty() {
        return Ok(None);
    }
    if m.maskinporten_client_id.is_empty() {
        anyhow::bail!("VARSEL_MASKINPORTEN_TOKEN_URL needs VARSEL_MASKINPORTEN_CLIENT_ID");
    }
    let read = |what: &str, path: &std::path::Path| {
        std::fs::read(path).map_err(|e| anyhow::anyhow!("{what} {}: {e}", path.display()))
    };
    let key_file = read("VARSEL_MASKINPORTEN_KEY_FILE", &m.maskinporten_key_file)?;
    let (key_pem, p12_chain) = if key_file.starts_with(b"-----") {
        (key_file, vec![])
    } else {
        pkcs12_key(&key_file, m.maskinporten_key_password.expose()).map_err(|e| {
            anyhow::anyhow!(
                "VARSEL_MASKINPORTEN_KEY_FILE {} is neither PEM nor a PKCS#12 file that VARSEL_MASKINPORTEN_KEY_PASSWORD opens: {e}",
                m.maskinporten_key_file.display()
            )
        })?
    };
    let certificate_chain = if m.maskinporten_certificate_file.as_os_str().is_empty() {
        // A PKCS#12 file's own chain names the key when no kid does.
        if m.maskinporten_kid.is_empty() { p12_chain } else { vec![] }
    } else {
        let pem = read("VARSEL_MASKINPORTEN_CERTIFICATE_FILE", &m.maskinporten_certificate_file)?;
        let chain = x5c(&String::from_utf8_lossy(&pem));
        if chain.is_empty() {
            anyhow::bail!("VARSEL_MASKINPORTEN_CERTIFICATE_FILE holds no PEM certificate");
        }
        chain
    };
    let audience = if m.maskinporten_audience.is_empty() {
        let url = url::Url::parse(&m.maskinporten_token_url)
            .map_err(|e| anyhow::anyhow!("VARSEL_MASKINPORTEN_TOKEN_URL: {e}"))?;
        format!("{}/", url.origin().ascii_serialization())
    } else {
        m.maskinporten_audience.clone()
    };
    let settings = MaskinportenSettings {
        token_url: m.maskinporten_token_url.clone(),
        audience,
        client_id: m.maskinporten_client_id.clone(),
        key_pem,
        kid: (!m.maskinporten_kid.is_empty()).then(|| m.maskinporten_kid.clone()),
        certificate_chain,
        renew_before: Duration::from_secs(m.maskinporten_renew_before_secs),
        timeout: Duration::from_secs(10),
    };
    Ok(Some(Arc::new(Maskinporten::new(settings)?)))
}

/// The private key of a PKCS#12 file as PEM (PKCS#8), and its certificate chain as `x5c` wants
/// it (base64 DER, the key's own certificate first).
fn pkcs12_key(data: &[u8], password: &str) -> anyhow::Result<(Vec<u8>, Vec<String>)> {
    use base64::Engine;
    let store =
        p12_keystore::KeyStore::from_pkcs12(data, password).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (_, chain) =
        store.private_key_chain().ok_or_else(|| anyhow::anyhow!("it holds no private key"))?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let body = b64.encode(chain.key());
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    let certificates = chain.chain().iter().map(|c| b64.encode(c.as_der())).collect();
    Ok((pem.into_bytes(), certificates))
}

/// The certificates of a PEM text as `x5c` wants them: each one's base64 DER, in file order.
fn x5c(pem: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in pem.lines().map(str::trim) {
        match line {
            "-----BEGIN CERTIFICATE-----" => current = Some(String::new()),
            "-----END CERTIFICATE-----" => out.extend(current.take()),
            _ => {
                if let Some(c) = current.as_mut() {
                    c.push_str(line);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_pem_chain_becomes_x5c_in_file_order() {
        let pem = "-----BEGIN CERTIFICATE-----\nAAAA\nBBBB\n-----END CERTIFICATE-----\n\
                   junk\n-----BEGIN CERTIFICATE-----\nCCCC\n-----END CERTIFICATE-----\n";
        assert_eq!(super::x5c(pem), ["AAAABBBB", "CCCC"]);
        assert!(
            super::x5c("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----").is_empty()
        );
    }
}
