//! The emulator's state behind one lock: configuration, tokens, data, result pages, scans,
//! faults, counters and the rate-limit window.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::faults::Fault;
use crate::fixtures;
use crate::scans::ScanJob;

/// The default API key id the emulator accepts.
pub const DEFAULT_KEY_ID: &str = "EMULATOR_0123456789ABCDEF";
/// The default API secret the emulator accepts.
pub const DEFAULT_SECRET: &str = "_emulatorsecret0123456789abcdef";

/// Run-time settings, also changeable through `POST /__admin/config`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    /// The accepted key id.
    pub key_id: String,
    /// The accepted secret.
    pub secret: String,
    /// Rows per search page (Lacework: 5000).
    pub page_size: usize,
    /// How long an on-demand scan runs, in milliseconds.
    pub scan_duration_ms: u64,
    /// Tokens live at most this long whatever `expiryTime` asks (seconds; none when absent).
    pub token_ttl_cap_secs: Option<f64>,
    /// Requests per hour before a real 429 (Lacework: 480).
    pub rate_limit: u32,
    /// Registries that on-demand scans accept (any when empty).
    pub registries: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            key_id: DEFAULT_KEY_ID.into(),
            secret: DEFAULT_SECRET.into(),
            page_size: 5000,
            scan_duration_ms: 200,
            token_ttl_cap_secs: None,
            rate_limit: 480,
            registries: Vec::new(),
        }
    }
}

/// Everything the handlers share.
pub(crate) struct Inner {
    pub(crate) config: Config,
    /// Issued tokens and when they expire.
    pub(crate) tokens: HashMap<String, Instant>,
    pub(crate) rows: Vec<Value>,
    pub(crate) summaries: Vec<Value>,
    /// Result sets being paged through, by id.
    pub(crate) pages: HashMap<String, Vec<Vec<Value>>>,
    /// On-demand scans by request id.
    pub(crate) scans: HashMap<String, ScanJob>,
    pub(crate) faults: Vec<Fault>,
    /// Calls per endpoint name.
    pub(crate) counters: BTreeMap<String, u64>,
    /// The rate-limit window: when it started, requests in it.
    pub(crate) window: (Instant, u32),
    serial: u64,
    /// `Account-Name` of every API request, in order.
    pub(crate) account_names: Vec<String>,
    /// The current summary per image (see `search::current_summaries`), kept for as long as
    /// `rows` and `summaries` keep their lengths: both only grow (or are replaced whole in
    /// tests), and rebuilding the map per search made a soak over 20,000 seeded images crawl.
    pub(crate) current: Option<((usize, usize), Vec<Value>)>,
}

impl Inner {
    /// Fresh state serving `rows` and `summaries`.
    pub(crate) fn new(config: Config, rows: Vec<Value>, summaries: Vec<Value>) -> Self {
        Inner {
            config,
            tokens: HashMap::new(),
            rows,
            summaries,
            pages: HashMap::new(),
            scans: HashMap::new(),
            faults: Vec::new(),
            counters: BTreeMap::new(),
            window: (Instant::now(), 0),
            serial: 0,
            account_names: Vec::new(),
            current: None,
        }
    }

    /// A new unique id (32 hex digits) for a token, page set, scan or evaluation.
    pub(crate) fn id(&mut self, kind: &str) -> String {
        self.serial += 1;
        let h = Sha256::digest(format!("{kind}/{}/{:?}", self.serial, Instant::now()).as_bytes());
        hex(&h[..16])
    }

    /// Zeroes the counters and the rate-limit window and drops pending faults.
    pub(crate) fn reset(&mut self) {
        self.counters.clear();
        self.faults.clear();
        self.window = (Instant::now(), 0);
    }

    /// Adds search rows, `startTime` defaulting to now.
    pub(crate) fn add_rows(&mut self, rows: Vec<Value>) {
        self.rows.extend(fixtures::stamp(rows, "startTime"));
    }

    /// Adds image summaries, `lastScanTime` defaulting to now.
    pub(crate) fn add_summaries(&mut self, summaries: Vec<Value>) {
        self.summaries
            .extend(fixtures::stamp(summaries, "lastScanTime"));
    }
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The state as the router and the [`crate::Emulator`] handle hold it.
pub(crate) type Shared = Arc<Mutex<Inner>>;

/// Locks the state.
pub(crate) fn lock(s: &Shared) -> MutexGuard<'_, Inner> {
    // Test server: a panicked handler must not wedge every later request.
    s.lock().unwrap_or_else(|p| p.into_inner())
}
