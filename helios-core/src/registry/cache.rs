//! A short TTL cache of tag resolutions with single-flight: concurrent resolutions of one tag
//! make one registry round trip, and every waiter gets its answer (success or failure).
//!
//! Only successes are kept past the flight; a failure is shared with the callers that were
//! waiting on it and then forgotten, so a registry that recovers is asked again at once.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::client::Resolved;
use crate::error::{Error, Result};

/// What one slot last learned, and when.
enum Outcome {
    Hit(Resolved),
    Failed(Error),
}

struct Slot {
    /// Held while a resolution is in flight; callers queue on it.
    state: tokio::sync::Mutex<Option<(Outcome, Instant)>>,
}

/// Cached resolutions by key (registry, repository, tag, platform).
pub(crate) struct ResolveCache {
    ttl: Duration,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
}

/// Slots kept before expired ones are swept.
const SWEEP_ABOVE: usize = 1024;

impl ResolveCache {
    pub(crate) fn new(ttl: Duration) -> Self {
        ResolveCache {
            ttl,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// The cached resolution of `key` if younger than the TTL, else `fetch`'s, shared with
    /// concurrent callers of the same key. Returns whether it came from the cache.
    pub(crate) async fn get_or_fetch<F, Fut>(&self, key: &str, fetch: F) -> (Result<Resolved>, bool)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Resolved>>,
    {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            if slots.len() > SWEEP_ABOVE {
                let ttl = self.ttl;
                slots.retain(|_, s| match s.state.try_lock() {
                    Ok(state) => state
                        .as_ref()
                        .is_some_and(|(o, at)| matches!(o, Outcome::Hit(_)) && at.elapsed() < ttl),
                    // In flight: keep it.
                    Err(_) => true,
                });
            }
            Arc::clone(slots.entry(key.to_string()).or_insert_with(|| {
                Arc::new(Slot {
                    state: tokio::sync::Mutex::new(None),
                })
            }))
        };
        let asked = Instant::now();
        let mut state = slot.state.lock().await;
        if let Some((outcome, at)) = state.as_ref() {
            // Answered while this caller waited: that flight was for this caller too.
            let shared = *at >= asked;
            match outcome {
                Outcome::Hit(r) if shared || at.elapsed() < self.ttl => {
                    return (Ok(r.clone()), !shared);
                }
                Outcome::Failed(e) if shared => return (Err(e.duplicate()), false),
                _ => {}
            }
        }
        let result = fetch().await;
        let outcome = match &result {
            Ok(r) => Outcome::Hit(r.clone()),
            Err(e) => Outcome::Failed(e.duplicate()),
        };
        *state = Some((outcome, Instant::now()));
        (result, false)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn resolved(d: &str) -> Resolved {
        Resolved {
            digest: d.into(),
            media_type: "m".into(),
            platform_digest: None,
        }
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_fetch() {
        let cache = Arc::new(ResolveCache::new(Duration::from_secs(30)));
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (cache, calls) = (Arc::clone(&cache), Arc::clone(&calls));
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_fetch("k", || async {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok(resolved("sha256:a"))
                    })
                    .await
                    .0
                    .map(|r| r.digest)
                    .ok()
            }));
        }
        for t in tasks {
            assert_eq!(t.await.ok().flatten().as_deref(), Some("sha256:a"));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn entries_expire_and_failures_are_not_kept() {
        let cache = ResolveCache::new(Duration::from_millis(50));
        let (r, cached) = cache
            .get_or_fetch("k", || async { Ok(resolved("sha256:a")) })
            .await;
        assert_eq!(
            (r.map(|r| r.digest).ok(), cached),
            (Some("sha256:a".into()), false)
        );
        let (r, cached) = cache
            .get_or_fetch("k", || async { Ok(resolved("sha256:b")) })
            .await;
        assert_eq!(
            (r.map(|r| r.digest).ok(), cached),
            (Some("sha256:a".into()), true)
        );
        tokio::time::sleep(Duration::from_millis(60)).await;
        let (r, _) = cache
            .get_or_fetch("k", || async {
                Err(Error::unavailable("registry r", "down"))
            })
            .await;
        assert_eq!(r.err().map(|e| e.code()), Some("unavailable"));
        let (r, cached) = cache
            .get_or_fetch("k", || async { Ok(resolved("sha256:c")) })
            .await;
        assert_eq!(
            (r.map(|r| r.digest).ok(), cached),
            (Some("sha256:c".into()), false)
        );
    }
}
