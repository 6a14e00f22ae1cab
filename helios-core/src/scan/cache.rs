//! A caching [`ScanSource`] in front of another: completed scans kept for a TTL, other answers
//! for a short negative TTL, a bounded number of entries, and single flight — concurrent lookups
//! of one image make one upstream call. An optional [`SharedTier`] (Redis, feature `redis`) sits
//! behind it: an L1 miss asks the fleet's cache before the source.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::image::ImageRef;
use crate::scan::shared::SharedTier;
use crate::scan::{CacheSize, Lookup, ScanReport, ScanSource, ScanStatus};

/// Default lifetime of a cached completed scan: 10 minutes.
pub const DEFAULT_TTL: Duration = Duration::from_secs(600);
/// Default lifetime of a cached `pending` / `not_found` / `unavailable` / `failed` answer:
/// 15 seconds, so a finished scan or a recovered service shows up quickly.
pub const DEFAULT_NEGATIVE_TTL: Duration = Duration::from_secs(15);
/// Default bound on cached images.
pub const DEFAULT_MAX_ENTRIES: usize = 10_000;

type Key = (String, bool);

/// One image's slot. Its async mutex is held while the upstream call runs, so concurrent
/// lookups of the image queue behind that call and then read its answer.
#[derive(Default)]
struct Slot {
    value: tokio::sync::Mutex<Option<(Result<ScanReport, Error>, Instant)>>,
}

/// A cache in front of a [`ScanSource`].
pub struct CachedSource<S> {
    inner: S,
    ttl: Duration,
    negative_ttl: Duration,
    max_entries: usize,
    slots: Mutex<HashMap<Key, Arc<Slot>>>,
    shared: Option<Arc<dyn SharedTier>>,
}

impl<S> std::fmt::Debug for CachedSource<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedSource")
            .field("ttl", &self.ttl)
            .field("negative_ttl", &self.negative_ttl)
            .field("max_entries", &self.max_entries)
            .field("entries", &self.slots.lock().map(|s| s.len()).unwrap_or(0))
            .field("shared", &self.shared)
            .finish_non_exhaustive()
    }
}

impl<S: ScanSource> CachedSource<S> {
    /// A cache with the default TTLs and bound.
    pub fn new(inner: S) -> Self {
        CachedSource {
            inner,
            ttl: DEFAULT_TTL,
            negative_ttl: DEFAULT_NEGATIVE_TTL,
            max_entries: DEFAULT_MAX_ENTRIES,
            slots: Mutex::new(HashMap::new()),
            shared: None,
        }
    }

    /// Puts a tier shared with other processes (e.g. [`RedisTier`](crate::scan::shared::RedisTier))
    /// behind this cache: an L1 miss asks it, and it makes one upstream call for the fleet.
    pub fn shared(mut self, tier: Arc<dyn SharedTier>) -> Self {
        self.shared = Some(tier);
        self
    }

    /// Lifetime of completed scans.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Lifetime of every other answer (and of errors, which only concurrent waiters share).
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = ttl;
        self
    }

    /// The most images kept (at least 1).
    pub fn max_entries(mut self, max: usize) -> Self {
        self.max_entries = max.max(1);
        self
    }

    /// The wrapped source.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Cached images right now (expired ones included until evicted).
    pub fn len(&self) -> usize {
        self.slots().len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets everything.
    pub fn clear(&self) {
        self.slots().clear();
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Arc<Slot>>> {
        // The map only holds Arcs; a panic elsewhere cannot leave it half-updated.
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn slot(&self, key: &Key) -> Arc<Slot> {
        let mut slots = self.slots();
        if let Some(slot) = slots.get(key) {
            return slot.clone();
        }
        if slots.len() >= self.max_entries {
            evict(&mut slots, self.max_entries);
        }
        let slot = Arc::new(Slot::default());
        slots.insert(key.clone(), slot.clone());
        slot
    }

    async fn lookup(&self, image: &ImageRef, lookup: Lookup) -> Result<ScanReport> {
        // Digest-pinned images share a slot whatever the tag; others are keyed by reference.
        // A dry-run lookup (which may not request a scan) never answers for a real one.
        let key: Key = (
            image
                .digest
                .clone()
                .unwrap_or_else(|| image.reference.clone()),
            lookup.dry_run,
        );
        let slot = self.slot(&key);
        let mut value = slot.value.lock().await;
        if let Some((cached, expires)) = value.as_ref()
            && Instant::now() < *expires
        {
            return share(cached);
        }
        let (answer, ttl) = match &self.shared {
            Some(tier) => {
                let key = shared_key(&key);
                let fetch = Box::pin(self.fetch(image, lookup));
                tier.get_or_fetch(&key, lookup.deadline, fetch).await
            }
            None => self.fetch(image, lookup).await,
        };
        let Some(ttl) = ttl else {
            return answer;
        };
        let result = share(&answer);
        *value = Some((answer, Instant::now() + ttl));
        result
    }

    /// Asks the source, and says how long its answer may be kept (`None`: not at all).
    async fn fetch(
        &self,
        image: &ImageRef,
        lookup: Lookup,
    ) -> (Result<ScanReport>, Option<Duration>) {
        let answer = self.inner.scan(image, lookup).await;
        if crate::scan::lacework::share_refused() {
            // This caller's budget share ran out: the answer is about the caller, not the
            // image; the next caller asks again with its own share.
            return (answer, None);
        }
        let ttl = match &answer {
            Ok(r) if r.status == ScanStatus::Completed => self.ttl,
            _ => self.negative_ttl,
        };
        (answer, Some(ttl))
    }
}

/// The shared tier's key of an L1 key: `real:IMAGE` or `dry:IMAGE`.
fn shared_key((image, dry_run): &Key) -> String {
    format!("{}:{image}", if *dry_run { "dry" } else { "real" })
}

/// Drops expired entries and empty ones nobody is filling, then (if still above `max` less an
/// eighth) those expiring first, skipping slots whose upstream call is running. Freeing an eighth at once means a full cache
/// of distinct images scans and sorts its slots once per `max / 8` inserts, not on every one.
fn evict(slots: &mut HashMap<Key, Arc<Slot>>, max: usize) {
    let keep = max - (max / 8).max(1);
    let now = Instant::now();
    let mut expiry: Vec<(Option<Instant>, Key)> = slots
        .iter()
        .filter_map(|(k, s)| {
            let v = s.value.try_lock().ok()?;
            Some((v.as_ref().map(|(_, e)| *e), k.clone()))
        })
        .collect();
    expiry.sort();
    for (at, key) in expiry {
        let expired = at.is_none_or(|e| e <= now);
        if slots.len() <= keep && !expired {
            break;
        }
        // A slot never filled (`None`) and not locked has no caller filling it (the lookup that
        // made it gave up at its deadline): it goes first, like an expired one.
        slots.remove(&key);
    }
}

/// A copy of a shared answer for one more caller.
fn share(answer: &Result<ScanReport>) -> Result<ScanReport> {
    match answer {
        Ok(report) => Ok(report.clone()),
        Err(e) => Err(e.duplicate()),
    }
}

#[async_trait]
impl<S: ScanSource> ScanSource for CachedSource<S> {
    /// Answers from the cache, or asks the inner source once for all concurrent callers. A
    /// caller whose deadline passes while waiting gets `unavailable`.
    async fn scan(&self, image: &ImageRef, lookup: Lookup) -> Result<ScanReport> {
        match lookup.deadline {
            Some(deadline) => tokio::time::timeout_at(deadline.into(), self.lookup(image, lookup))
                .await
                .unwrap_or_else(|_| {
                    Ok(ScanReport::without_findings(
                        ScanStatus::Unavailable,
                        "cache",
                        Some("the deadline passed while waiting for the scan lookup".into()),
                    ))
                }),
            None => self.lookup(image, lookup).await,
        }
    }

    fn cache_size(&self) -> Option<CacheSize> {
        Some(CacheSize {
            entries: self.len(),
            max_entries: self.max_entries,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counting {
        calls: AtomicUsize,
        status: ScanStatus,
        delay: Duration,
    }

    #[async_trait]
    impl ScanSource for Counting {
        async fn scan(&self, _image: &ImageRef, _lookup: Lookup) -> Result<ScanReport> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
            Ok(ScanReport::without_findings(self.status, "test", None))
        }
    }

    fn counting(status: ScanStatus, delay_ms: u64) -> Counting {
        Counting {
            calls: AtomicUsize::new(0),
            status,
            delay: Duration::from_millis(delay_ms),
        }
    }

    const D: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    #[tokio::test]
    async fn concurrent_lookups_share_one_upstream_call() -> Result<()> {
        let cache = Arc::new(CachedSource::new(counting(ScanStatus::Completed, 50)));
        let image = ImageRef::parse(&format!("r.example/a@{D}"))?;
        let mut tasks = Vec::new();
        for _ in 0..200 {
            let (cache, image) = (cache.clone(), image.clone());
            tasks.push(tokio::spawn(async move {
                cache.scan(&image, Lookup::default()).await
            }));
        }
        for t in tasks {
            let report = t.await.map_err(|e| Error::invalid("task", e))??;
            assert_eq!(report.status, ScanStatus::Completed);
        }
        assert_eq!(cache.inner().calls.load(Ordering::SeqCst), 1);
        Ok(())
    }

    #[tokio::test]
    async fn negative_answers_expire_quickly_completed_ones_do_not() -> Result<()> {
        let image = ImageRef::parse(&format!("r.example/a@{D}"))?;
        let neg = CachedSource::new(counting(ScanStatus::NotFound, 0))
            .negative_ttl(Duration::from_millis(30));
        neg.scan(&image, Lookup::default()).await?;
        neg.scan(&image, Lookup::default()).await?;
        assert_eq!(neg.inner().calls.load(Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_millis(40)).await;
        neg.scan(&image, Lookup::default()).await?;
        assert_eq!(neg.inner().calls.load(Ordering::SeqCst), 2);

        let pos = CachedSource::new(counting(ScanStatus::Completed, 0))
            .negative_ttl(Duration::from_millis(1));
        pos.scan(&image, Lookup::default()).await?;
        tokio::time::sleep(Duration::from_millis(10)).await;
        pos.scan(&image, Lookup::default()).await?;
        assert_eq!(pos.inner().calls.load(Ordering::SeqCst), 1);
        Ok(())
    }

    #[tokio::test]
    async fn size_is_bounded() -> Result<()> {
        let cache = CachedSource::new(counting(ScanStatus::Completed, 0)).max_entries(3);
        for i in 0..10 {
            let image = ImageRef::parse(&format!("r.example/a:{i}"))?;
            cache.scan(&image, Lookup::default()).await?;
        }
        assert!(cache.len() <= 3, "{}", cache.len());
        assert_eq!(
            cache.cache_size(),
            Some(CacheSize {
                entries: cache.len(),
                max_entries: 3
            })
        );
        // A full cache frees an eighth of its bound at once, and never goes past the bound.
        let cache = CachedSource::new(counting(ScanStatus::Completed, 0)).max_entries(80);
        for i in 0..200 {
            let image = ImageRef::parse(&format!("r.example/a:{i}"))?;
            cache.scan(&image, Lookup::default()).await?;
            assert!(cache.len() <= 80, "{}", cache.len());
        }
        assert!((70..=80).contains(&cache.len()), "{}", cache.len());
        Ok(())
    }

    #[tokio::test]
    async fn slots_left_empty_by_lookups_past_their_deadline_are_evicted() -> Result<()> {
        // Each lookup gives up before the source answers, leaving its slot empty and unlocked;
        // such slots used to be kept forever, so distinct images past their deadline grew the
        // cache without bound.
        let cache = CachedSource::new(counting(ScanStatus::Completed, 200)).max_entries(4);
        for i in 0..12 {
            let image = ImageRef::parse(&format!("r.example/a:{i}"))?;
            let lookup = Lookup {
                deadline: Some(Instant::now() + Duration::from_millis(5)),
                dry_run: false,
            };
            let report = cache.scan(&image, lookup).await?;
            assert_eq!(report.status, ScanStatus::Unavailable);
            assert!(cache.len() <= 4, "{}", cache.len());
        }
        Ok(())
    }

    #[tokio::test]
    async fn a_waiter_past_its_deadline_gets_unavailable() -> Result<()> {
        let cache = CachedSource::new(counting(ScanStatus::Completed, 300));
        let image = ImageRef::parse(&format!("r.example/a@{D}"))?;
        let lookup = Lookup {
            deadline: Some(Instant::now() + Duration::from_millis(20)),
            dry_run: false,
        };
        let report = cache.scan(&image, lookup).await?;
        assert_eq!(report.status, ScanStatus::Unavailable);
        Ok(())
    }
}
