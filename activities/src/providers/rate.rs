//! Per-provider send-rate limits (messages per second) that hold across every worker: the
//! one-second slots are counted in the shared database, and each worker takes a few sends at a
//! time from the current slot, so the database sees one write per handful of messages, not one
//! per message. Sends taken for a slot are only used within it, so no second carries more than
//! the limit, however many workers there are.

use crate::store::Store;
use chrono::Utc;
use sea_orm::DbErr;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

/// The configured limits and this worker's share of the current slot.
pub struct SendRateLimits {
    limits: BTreeMap<String, u32>,
    store: Store,
    /// provider → (slot, sends left in it).
    local: Mutex<HashMap<String, (i64, u32)>>,
}

impl SendRateLimits {
    /// Limits in messages per second by provider name (`smtp`, `outbox`, `kannel`, `simulator`);
    /// a provider not named, or named with 0, is not limited.
    pub fn new(store: Store, limits: BTreeMap<String, u32>) -> Self {
        let limits = limits.into_iter().filter(|(_, v)| *v > 0).collect();
        Self { limits, store, local: Mutex::new(HashMap::new()) }
    }

    /// Waits until one more send of `provider` fits its limit.
    pub async fn acquire(&self, provider: &str) -> Result<(), DbErr> {
        let Some(&limit) = self.limits.get(provider) else { return Ok(()) };
        loop {
            let now_ms = Utc::now().timestamp_millis();
            let slot = now_ms.div_euclid(1000);
            if self.take_local(provider, slot) {
                return Ok(());
            }
            // A tenth of the limit at a time (at least one, at most 50): few writes, and
            // workers share a slot fairly.
            let chunk = (limit / 10).clamp(1, 50);
            let granted = self.store.take_send_tokens(provider, slot, chunk, limit).await?;
            if granted > 0 {
                let mut local = self.local.lock().unwrap_or_else(|e| e.into_inner());
                let entry = local.entry(provider.to_owned()).or_insert((slot, 0));
                if entry.0 != slot {
                    *entry = (slot, 0);
                }
                entry.1 += granted - 1;
                return Ok(());
            }
            let next_slot_ms = (slot + 1) * 1000;
            tokio::time::sleep(Duration::from_millis(
                (next_slot_ms - Utc::now().timestamp_millis()).clamp(1, 1000) as u64,
            ))
            .await;
        }
    }

    fn take_local(&self, provider: &str, slot: i64) -> bool {
        let mut local = self.local.lock().unwrap_or_else(|e| e.into_inner());
        match local.get_mut(provider) {
            Some((s, left)) if *s == slot && *left > 0 => {
                *left -= 1;
                true
            }
            _ => false,
        }
    }
}

/// Pauses a provider asked for (`Retry-After`): while one lasts, this worker sends nothing to
/// that provider, whichever order or batch the send belongs to.
#[derive(Default)]
pub struct ProviderPauses {
    until: Mutex<HashMap<&'static str, std::time::Instant>>,
}

impl ProviderPauses {
    /// Starts (or extends) a pause of `provider` for `wait`.
    pub fn pause(&self, provider: &'static str, wait: Duration) {
        let end = std::time::Instant::now() + wait;
        let mut until = self.until.lock().expect("pauses lock");
        let entry = until.entry(provider).or_insert(end);
        *entry = (*entry).max(end);
    }

    /// How much of a pause of `provider` is left, if any.
    pub fn remaining(&self, provider: &'static str) -> Option<Duration> {
        let now = std::time::Instant::now();
        let until = self.until.lock().expect("pauses lock");
        until.get(provider).filter(|end| **end > now).map(|end| *end - now)
    }
}
