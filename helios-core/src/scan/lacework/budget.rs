//! The client-side request budget: Lacework documents a limit of 480 API requests per hour per
//! account, so the client spends at most that many and answers `unavailable` instead of
//! collecting 429s once it is spent.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lacework's documented limit: 480 requests per hour.
pub const DEFAULT_REQUESTS_PER_HOUR: u32 = 480;

/// A sliding-window budget of `limit` requests per `window`, shared by all clones of a client.
#[derive(Debug)]
pub(super) struct Budget {
    limit: u32,
    window: Duration,
    sent: Mutex<VecDeque<Instant>>,
}

impl Budget {
    pub(super) fn new(limit: u32, window: Duration) -> Self {
        Budget {
            limit: limit.max(1),
            window,
            sent: Mutex::new(VecDeque::new()),
        }
    }

    /// Takes one request from the budget, or says when the next one frees up.
    pub(super) fn try_take(&self, now: Instant) -> Result<(), Instant> {
        // A poisoned lock only means another thread panicked mid-update of a queue of instants;
        // the queue is still a valid queue, so keep using it.
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(first) = sent.front() {
            if now.duration_since(*first) >= self.window {
                sent.pop_front();
            } else {
                break;
            }
        }
        if sent.len() < self.limit as usize {
            sent.push_back(now);
            Ok(())
        } else {
            Err(sent.front().map_or(now, |first| *first + self.window))
        }
    }

    /// The configured limit, for messages.
    pub(super) fn limit(&self) -> u32 {
        self.limit
    }

    /// The window, for messages.
    pub(super) fn window(&self) -> Duration {
        self.window
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spends_then_refuses_until_the_window_slides() {
        let b = Budget::new(2, Duration::from_secs(10));
        let t0 = Instant::now();
        assert!(b.try_take(t0).is_ok());
        assert!(b.try_take(t0).is_ok());
        assert_eq!(b.try_take(t0), Err(t0 + Duration::from_secs(10)));
        assert!(b.try_take(t0 + Duration::from_secs(10)).is_ok());
    }
}
