//! Shares of the client-side request budget: how much of Lacework's hourly budget one caller (an
//! admission review, its namespace, its user) may spend, so that one hostile review cannot
//! spend the budget of everyone else.
//!
//! The share travels with the lookup as a tokio task-local ([`BudgetShare::scope`]) rather than
//! as a parameter, so every layer between the admission controller and the HTTP exchange (cache,
//! source, search, pagination, token refresh) stays unchanged; the client consults it before
//! each request it sends.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

tokio::task_local! {
    static SHARE: BudgetShare;
}

/// Requests spent per account (namespace, user) over the budget's sliding window, shared by all
/// reviews of one controller.
#[derive(Debug, Default)]
pub struct ShareLedger {
    sent: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl ShareLedger {
    /// An empty ledger.
    pub fn new() -> Self {
        Self::default()
    }
}

/// One account a lookup is charged to besides its own review.
#[derive(Debug, Clone)]
struct Account {
    /// Ledger key, e.g. `namespace/shop`.
    key: String,
    /// Who, for messages: `namespace shop`.
    who: String,
    /// The setting that sets the share, for messages.
    setting: &'static str,
    share: f64,
}

/// The part of the request budget one lookup may spend: a share for its review (counted from the
/// review's start) and shares for accounts such as its namespace and user (counted over the
/// budget's window). Cheap to clone; clones of one share count together.
#[derive(Debug, Clone)]
pub struct BudgetShare {
    review: Arc<AtomicU32>,
    /// Set when this share refused a request of the running lookup (one flag per
    /// [`BudgetShare::scope`]), so the cache does not keep that answer for other callers.
    refused: Arc<AtomicBool>,
    review_share: f64,
    review_setting: &'static str,
    accounts: Vec<Account>,
    ledger: Arc<ShareLedger>,
}

impl BudgetShare {
    /// A new review's share: at most `share` (0 to 1) of the budget, named by `setting` in the
    /// message that refuses a request past it.
    pub fn review(ledger: Arc<ShareLedger>, share: f64, setting: &'static str) -> Self {
        BudgetShare {
            review: Arc::new(AtomicU32::new(0)),
            refused: Arc::new(AtomicBool::new(false)),
            review_share: share,
            review_setting: setting,
            accounts: Vec::new(),
            ledger,
        }
    }

    /// Also charges `who` (e.g. `namespace shop`), which may spend `share` of the budget per
    /// budget window across all its reviews.
    pub fn account(mut self, who: String, share: f64, setting: &'static str) -> Self {
        self.accounts.push(Account {
            key: who.clone(),
            who,
            share,
            setting,
        });
        self
    }

    /// Runs `lookup` charged to this share.
    pub async fn scope<F: Future>(mut self, lookup: F) -> F::Output {
        self.refused = Arc::new(AtomicBool::new(false));
        SHARE.scope(self, lookup).await
    }

    /// Requests of a budget of `limit` that `share` allows: at least one, so a tiny share still
    /// lets a lookup through.
    fn allowed(share: f64, limit: u32) -> u32 {
        if !share.is_finite() || share >= 1.0 {
            return limit;
        }
        ((f64::from(limit) * share.max(0.0)).floor() as u32).max(1)
    }

    /// Charges one request, or says which share is spent.
    fn try_spend(&self, limit: u32, window: Duration, now: Instant) -> Result<(), String> {
        let review_max = Self::allowed(self.review_share, limit);
        if self.review.load(Ordering::Relaxed) >= review_max {
            self.refused.store(true, Ordering::Relaxed);
            return Err(format!(
                "this review's share of the Lacework request budget is spent ({review_max} of \
                 {limit} requests; {}); the image is left unchecked",
                self.review_setting
            ));
        }
        // Poisoning only means a panic elsewhere mid-update of a map of instants; it is still
        // a valid map.
        let mut sent = self.ledger.sent.lock().unwrap_or_else(|p| p.into_inner());
        // Forget accounts with nothing in the window, so the ledger holds at most the budget's
        // worth of accounts.
        sent.retain(|_, q| {
            while q.front().is_some_and(|t| now.duration_since(*t) >= window) {
                q.pop_front();
            }
            !q.is_empty()
        });
        for a in &self.accounts {
            let max = Self::allowed(a.share, limit);
            let used = sent.get(&a.key).map_or(0, VecDeque::len);
            if used >= max as usize {
                self.refused.store(true, Ordering::Relaxed);
                return Err(format!(
                    "the share of the Lacework request budget of {} is spent ({max} of {limit} \
                     requests per {} s; {}); the image is left unchecked",
                    a.who,
                    window.as_secs(),
                    a.setting
                ));
            }
        }
        for a in &self.accounts {
            sent.entry(a.key.clone()).or_default().push_back(now);
        }
        self.review.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Whether the share of the running lookup refused one of its requests: its answer speaks of
/// this caller's share, not of the image, and must not be cached for others (an attacker
/// could otherwise spend their own share and leave `unavailable` answers for other teams'
/// images in the cache).
pub(crate) fn refused() -> bool {
    SHARE
        .try_with(|share| share.refused.load(Ordering::Relaxed))
        .unwrap_or(false)
}

/// Charges one request to the share of the running lookup, if it runs in one.
pub(super) fn spend(limit: u32, window: Duration) -> Result<(), String> {
    SHARE
        .try_with(|share| share.try_spend(limit, window, Instant::now()))
        .unwrap_or(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_review_spends_its_share_then_is_refused() {
        let ledger = Arc::new(ShareLedger::new());
        let share = BudgetShare::review(ledger, 0.05, "per_review").account(
            "namespace shop".into(),
            0.5,
            "per_namespace",
        );
        let now = Instant::now();
        let w = Duration::from_secs(3600);
        for _ in 0..24 {
            assert!(share.try_spend(480, w, now).is_ok());
        }
        let err = share.try_spend(480, w, now).err().unwrap_or_default();
        assert!(
            err.contains("24 of 480") && err.contains("per_review"),
            "{err}"
        );
    }

    #[test]
    fn a_namespace_share_spans_reviews_and_slides() {
        let ledger = Arc::new(ShareLedger::new());
        let w = Duration::from_secs(10);
        let now = Instant::now();
        let review = || {
            BudgetShare::review(ledger.clone(), 1.0, "r").account("namespace a".into(), 0.25, "ns")
        };
        for _ in 0..2 {
            assert!(review().try_spend(8, w, now).is_ok());
        }
        let err = review().try_spend(8, w, now).err().unwrap_or_default();
        assert!(
            err.contains("namespace a") && err.contains("2 of 8"),
            "{err}"
        );
        // Another namespace is not affected.
        let other =
            BudgetShare::review(ledger.clone(), 1.0, "r").account("namespace b".into(), 0.25, "ns");
        assert!(other.try_spend(8, w, now).is_ok());
        // Once the window slides, the namespace may spend again.
        assert!(review().try_spend(8, w, now + w).is_ok());
    }

    #[test]
    fn a_tiny_share_still_allows_one_request() {
        assert_eq!(BudgetShare::allowed(0.0001, 480), 1);
        assert_eq!(BudgetShare::allowed(2.0, 480), 480);
        assert_eq!(BudgetShare::allowed(f64::NAN, 480), 480);
    }
}
