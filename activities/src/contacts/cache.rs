//! Lookups remembered for a while (`VARSEL_CONTACTS_CACHE_SECS`), in front of the remote
//! sources (KRR, Profile, Register): an order's acceptance and its generation moments later ask
//! once, and a campaign that names the same people in many orders asks once a period. A number
//! the source did not know is remembered too. At most `capacity` entries, least recently used
//! first out; the embedded register is not cached (an operator's change applies at once).

use super::sources::{
    ExternalIdentitySource, LookupError, NameSource, Names, OrganizationSource, PersonSource,
};
use crate::store::{OrgContact, PersonContact};
use lru::LruCache;
use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Answers by key, each kept for `ttl`.
struct Cache<K: Hash + Eq, V> {
    entries: Mutex<LruCache<K, (Instant, Option<V>)>>,
    ttl: Duration,
}

impl<K: Hash + Eq + Clone, V: Clone> Cache<K, V> {
    fn new(capacity: NonZeroUsize, ttl: Duration) -> Self {
        Self { entries: Mutex::new(LruCache::new(capacity)), ttl }
    }

    /// What is remembered of `keys`, and the keys to ask for.
    fn get(&self, keys: impl Iterator<Item = K>) -> (HashMap<K, Option<V>>, Vec<K>) {
        self.get_at(keys, Instant::now())
    }

    fn get_at(
        &self,
        keys: impl Iterator<Item = K>,
        now: Instant,
    ) -> (HashMap<K, Option<V>>, Vec<K>) {
        let mut entries = self.entries.lock().expect("cache lock");
        let (mut hits, mut misses) = (HashMap::new(), Vec::new());
        for k in keys {
            match entries.get(&k) {
                Some((at, v)) if now.duration_since(*at) < self.ttl => {
                    hits.insert(k, v.clone());
                }
                _ => misses.push(k),
            }
        }
        (hits, misses)
    }

    /// Remembers the answer for `asked`: what was found, and `None` for the rest.
    fn put(&self, asked: &[K], found: &HashMap<K, V>) {
        self.put_at(asked, found, Instant::now())
    }

    fn put_at(&self, asked: &[K], found: &HashMap<K, V>, now: Instant) {
        let mut entries = self.entries.lock().expect("cache lock");
        for k in asked {
            entries.put(k.clone(), (now, found.get(k).cloned()));
        }
    }

    /// What `keys` come to: the remembered answers, and `fetch` asked for the rest (whose
    /// answer, found or not, is remembered).
    async fn through<F, Fut>(&self, keys: Vec<K>, fetch: F) -> Result<HashMap<K, V>, LookupError>
    where
        F: FnOnce(Vec<K>) -> Fut,
        Fut: Future<Output = Result<HashMap<K, V>, LookupError>>,
    {
        let (hits, misses) = self.get(keys.into_iter());
        let mut out = found(hits);
        if !misses.is_empty() {
            let fresh = fetch(misses.clone()).await?;
            self.put(&misses, &fresh);
            out.extend(fresh);
        }
        Ok(out)
    }
}

fn found<K: Hash + Eq, V>(hits: HashMap<K, Option<V>>) -> HashMap<K, V> {
    hits.into_iter().filter_map(|(k, v)| Some((k, v?))).collect()
}

/// A person source behind a cache (keyed by number and whether stale details were allowed).
pub struct CachedPersons {
    inner: Arc<dyn PersonSource>,
    cache: Cache<(String, bool), PersonContact>,
}

/// An organisation source behind a cache.
pub struct CachedOrganizations {
    inner: Arc<dyn OrganizationSource>,
    cache: Cache<String, OrgContact>,
}

/// A self-identified user source behind a cache.
pub struct CachedExternal {
    inner: Arc<dyn ExternalIdentitySource>,
    cache: Cache<String, PersonContact>,
}

/// A name source behind a cache (keyed `p:<nin>` and `o:<orgNo>`).
pub struct CachedNames {
    inner: Arc<dyn NameSource>,
    cache: Cache<String, String>,
}

impl CachedPersons {
    /// `inner` remembered for `ttl`, at most `capacity` entries.
    pub fn new(inner: Arc<dyn PersonSource>, capacity: NonZeroUsize, ttl: Duration) -> Self {
        Self { inner, cache: Cache::new(capacity, ttl) }
    }
}

impl CachedOrganizations {
    /// `inner` remembered for `ttl`, at most `capacity` entries.
    pub fn new(inner: Arc<dyn OrganizationSource>, capacity: NonZeroUsize, ttl: Duration) -> Self {
        Self { inner, cache: Cache::new(capacity, ttl) }
    }
}

impl CachedExternal {
    /// `inner` remembered for `ttl`, at most `capacity` entries.
    pub fn new(
        inner: Arc<dyn ExternalIdentitySource>,
        capacity: NonZeroUsize,
        ttl: Duration,
    ) -> Self {
        Self { inner, cache: Cache::new(capacity, ttl) }
    }
}

impl CachedNames {
    /// `inner` remembered for `ttl`, at most `capacity` entries.
    pub fn new(inner: Arc<dyn NameSource>, capacity: NonZeroUsize, ttl: Duration) -> Self {
        Self { inner, cache: Cache::new(capacity, ttl) }
    }
}

#[async_trait::async_trait]
impl PersonSource for CachedPersons {
    async fn persons(
        &self,
        nins: &[String],
        allow_stale: bool,
    ) -> Result<HashMap<String, PersonContact>, LookupError> {
        let keys = nins.iter().map(|n| (n.clone(), allow_stale)).collect();
        let found = self
            .cache
            .through(keys, |misses| async move {
                let asked: Vec<String> = misses.into_iter().map(|(n, _)| n).collect();
                let fresh = self.inner.persons(&asked, allow_stale).await?;
                Ok(fresh.into_iter().map(|(n, p)| ((n, allow_stale), p)).collect())
            })
            .await?;
        Ok(found.into_iter().map(|((n, _), p)| (n, p)).collect())
    }
}

#[async_trait::async_trait]
impl OrganizationSource for CachedOrganizations {
    async fn organizations(
        &self,
        orgs: &[String],
    ) -> Result<HashMap<String, OrgContact>, LookupError> {
        self.cache
            .through(orgs.to_vec(), |m| async move { self.inner.organizations(&m).await })
            .await
    }
}

#[async_trait::async_trait]
impl ExternalIdentitySource for CachedExternal {
    async fn external_identities(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, PersonContact>, LookupError> {
        self.cache
            .through(ids.to_vec(), |m| async move { self.inner.external_identities(&m).await })
            .await
    }
}

#[async_trait::async_trait]
impl NameSource for CachedNames {
    async fn names(&self, nins: &[String], orgs: &[String]) -> Result<Names, LookupError> {
        let keys =
            nins.iter().map(|n| format!("p:{n}")).chain(orgs.iter().map(|o| format!("o:{o}")));
        let named = self
            .cache
            .through(keys.collect(), |misses| async move {
                let pick = |prefix: &str| -> Vec<String> {
                    misses
                        .iter()
                        .filter_map(|k| k.strip_prefix(prefix).map(str::to_owned))
                        .collect()
                };
                let fresh = self.inner.names(&pick("p:"), &pick("o:")).await?;
                let persons = fresh.persons.into_iter().map(|(n, v)| (format!("p:{n}"), v));
                let orgs = fresh.organizations.into_iter().map(|(o, v)| (format!("o:{o}"), v));
                Ok(persons.chain(orgs).collect())
            })
            .await?;
        let mut names = Names::default();
        for (key, name) in named {
            match key.split_once(':') {
                Some(("o", org)) => names.organizations.insert(org.to_owned(), name),
                Some((_, nin)) => names.persons.insert(nin.to_owned(), name),
                None => None,
            };
        }
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A source that knows one person and counts the numbers it is asked.
    struct Counting(AtomicUsize);

    #[async_trait::async_trait]
    impl PersonSource for Counting {
        async fn persons(
            &self,
            nins: &[String],
            _allow_stale: bool,
        ) -> Result<HashMap<String, PersonContact>, LookupError> {
            self.0.fetch_add(nins.len(), Ordering::SeqCst);
            Ok(nins
                .iter()
                .filter(|n| n.as_str() == "01010000001")
                .map(|n| {
                    let p = PersonContact {
                        name: None,
                        email: Some("a@example.no".into()),
                        mobile: None,
                        reserved: false,
                        updated_at: None,
                    };
                    (n.clone(), p)
                })
                .collect())
        }
    }

    #[tokio::test]
    async fn answers_and_unknown_numbers_are_remembered() {
        let inner = Arc::new(Counting(AtomicUsize::new(0)));
        let cached = CachedPersons::new(
            inner.clone(),
            NonZeroUsize::new(10).unwrap(),
            Duration::from_secs(60),
        );
        let ask = ["01010000001".to_owned(), "01010000002".to_owned()];
        for _ in 0..3 {
            let found = cached.persons(&ask, false).await.unwrap();
            assert_eq!(found.keys().collect::<Vec<_>>(), ["01010000001"]);
        }
        assert_eq!(inner.0.load(Ordering::SeqCst), 2, "asked once, the unknown one included");
        cached.persons(&ask, true).await.unwrap();
        assert_eq!(inner.0.load(Ordering::SeqCst), 4, "allowing stale details is another question");
    }

    #[test]
    fn an_answer_is_kept_for_its_time_and_the_least_recently_used_goes_first() {
        let cache: Cache<String, u32> =
            Cache::new(NonZeroUsize::new(2).unwrap(), Duration::from_secs(60));
        let t0 = Instant::now();
        let keys = |ks: &[&str]| ks.iter().map(|k| (*k).to_owned()).collect::<Vec<_>>();
        cache.put_at(&keys(&["a", "b"]), &HashMap::from([("a".to_owned(), 1)]), t0);
        let (hits, misses) =
            cache.get_at(keys(&["a", "b", "c"]).into_iter(), t0 + Duration::from_secs(59));
        assert_eq!(hits, HashMap::from([("a".to_owned(), Some(1)), ("b".to_owned(), None)]));
        assert_eq!(misses, ["c"]);
        let (_, misses) = cache.get_at(keys(&["a"]).into_iter(), t0 + Duration::from_secs(60));
        assert_eq!(misses, ["a"], "expired");
        cache.put_at(&keys(&["c"]), &HashMap::new(), t0);
        let (_, misses) = cache.get_at(keys(&["a", "b", "c"]).into_iter(), t0);
        assert_eq!(misses, ["b"], "the least recently used of two went to make room");
    }
}
