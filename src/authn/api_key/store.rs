//! Where API key records live: in memory, in a JSON file reloaded when it
//! changes, or in your own store behind [`KeyStore`] (cached briefly,
//! single-flight per key id).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};

use super::format::{SecretDigest, valid_id};
use crate::authn::BoxFuture;

/// One API key as the store keeps it: never the secret, only its digest.
///
/// In a JSON store file: `{"id": "…", "digest": "<64 hex>", "name": "…",
/// "owner": "…", "scopes": ["…"], "roles": ["…"], "expires_at": <unix
/// seconds>, "disabled": false}`; unknown members are refused (a typo such
/// as `"disable": true` must not leave a key enabled).
///
/// ```
/// use tokenwarden::authn::api_key::NewApiKey;
///
/// let mut new = NewApiKey::generate("live", "billing-exporter")?;
/// new.record.scopes = vec!["invoices:read".into()];
/// new.record.expires_at = Some(1_900_000_000);
/// let entry = serde_json::to_string(&new.record)?;
/// assert!(entry.contains(&new.record.digest.to_hex()));
/// assert!(!entry.contains(new.expose_key()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ApiKeyRecord {
    /// The key id (the `<id>` part of the key).
    pub id: String,
    /// SHA-256 of the key's secret.
    pub digest: SecretDigest,
    /// A name for people: what the key is for.
    pub name: String,
    /// Who holds it; the principal's subject (the name when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The scopes it grants.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The roles it holds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// When it stops working (Unix seconds); never when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// A disabled key is refused.
    #[serde(default)]
    pub disabled: bool,
}

impl ApiKeyRecord {
    /// A record for key `id` with this digest and name; no scopes, no
    /// expiry, enabled.
    pub fn new(id: impl Into<String>, digest: SecretDigest, name: impl Into<String>) -> Self {
        ApiKeyRecord {
            id: id.into(),
            digest,
            name: name.into(),
            owner: None,
            scopes: Vec::new(),
            roles: Vec::new(),
            expires_at: None,
            disabled: false,
        }
    }
}

/// A store could not answer, or a store file could not be used. Names the
/// file and the reason; never holds a secret (stores hold none).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
#[non_exhaustive]
pub struct StoreError {
    /// What went wrong.
    pub message: String,
}

impl StoreError {
    /// An error saying `message`.
    pub fn new(message: impl Into<String>) -> Self {
        StoreError {
            message: message.into(),
        }
    }
}

/// Your own store of API key records (a database, a secrets service):
/// looked up by id, never scanned. Its answers are cached briefly and one
/// lookup per id runs at a time (see
/// [`ApiKeyAuthenticator::custom`](super::ApiKeyAuthenticator::custom)).
///
/// ```
/// use tokenwarden::authn::BoxFuture;
/// use tokenwarden::authn::api_key::{ApiKeyRecord, KeyStore, StoreError};
///
/// struct Database;
///
/// impl KeyStore for Database {
///     fn lookup<'a>(&'a self, id: &'a str)
///         -> BoxFuture<'a, Result<Option<ApiKeyRecord>, StoreError>> {
///         Box::pin(async move {
///             let _ = id; // SELECT … WHERE id = $1
///             Ok(None)
///         })
///     }
/// }
/// ```
pub trait KeyStore: Send + Sync + 'static {
    /// The record of key `id`, if there is one.
    fn lookup<'a>(&'a self, id: &'a str)
    -> BoxFuture<'a, Result<Option<ApiKeyRecord>, StoreError>>;
}

/// A shared store is a store: keep a handle to yours while the
/// authenticator uses it.
impl<T: KeyStore> KeyStore for Arc<T> {
    fn lookup<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<ApiKeyRecord>, StoreError>> {
        (**self).lookup(id)
    }
}

type Records = HashMap<String, Arc<ApiKeyRecord>>;

/// Records in memory, changed at run time.
///
/// ```
/// use tokenwarden::authn::api_key::{MemoryStore, NewApiKey};
///
/// let store = MemoryStore::new();
/// let new = NewApiKey::generate("test", "ci")?;
/// store.insert(new.record.clone());
/// assert!(store.get(&new.record.id).is_some());
/// store.remove(&new.record.id);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default)]
pub struct MemoryStore {
    records: RwLock<Records>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore::default()
    }

    /// Adds (or replaces) the record of its id.
    pub fn insert(&self, record: ApiKeyRecord) {
        let mut r = self.records.write().unwrap_or_else(PoisonError::into_inner);
        r.insert(record.id.clone(), Arc::new(record));
    }

    /// Removes key `id`.
    pub fn remove(&self, id: &str) {
        let mut r = self.records.write().unwrap_or_else(PoisonError::into_inner);
        r.remove(id);
    }

    /// The record of key `id`.
    pub fn get(&self, id: &str) -> Option<Arc<ApiKeyRecord>> {
        let r = self.records.read().unwrap_or_else(PoisonError::into_inner);
        r.get(id).cloned()
    }
}

/// Largest store file read.
const MAX_FILE: u64 = 16 * 1024 * 1024;

/// A store file: `{"keys": [<record>, …]}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreFile {
    keys: Vec<ApiKeyRecord>,
}

/// Records from a JSON file, reloaded when it changes: on a lookup at most
/// once per [`poll_every`](Self::poll_every) (default 5 s) the file's
/// modification time and length are checked, and a changed file is read
/// again. A file that cannot be read or parsed (bad JSON, an unknown
/// member, a bad id or digest, two records of one id) keeps the last good
/// records, logged at warn with the path and the reason.
///
/// ```no_run
/// use tokenwarden::authn::api_key::{ApiKeyAuthenticator, FileStore};
///
/// let store = FileStore::open("/etc/tokenwarden/api-keys.json")?;
/// let keys = ApiKeyAuthenticator::file(store).header("X-Api-Key")?;
/// # let _ = keys;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct FileStore {
    path: PathBuf,
    records: ArcSwap<Records>,
    poll: Mutex<Poll>,
    poll_every: i64,
}

struct Poll {
    /// The file's modification time and length when last read.
    seen: Option<(SystemTime, u64)>,
    /// When (clock seconds) the file was last looked at.
    checked_at: Option<i64>,
}

impl fmt::Debug for FileStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileStore")
            .field("path", &self.path)
            .field("keys", &self.records.load().len())
            .finish_non_exhaustive()
    }
}

impl FileStore {
    /// Reads the file; it must be good.
    ///
    /// # Errors
    /// When the file cannot be read or is not a good store file.
    pub fn open(path: impl AsRef<Path>) -> Result<FileStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        let (records, seen) = read_store(&path)?;
        Ok(FileStore {
            path,
            records: ArcSwap::from_pointee(records),
            poll: Mutex::new(Poll {
                seen,
                checked_at: None,
            }),
            poll_every: 5,
        })
    }

    /// How often lookups check the file for changes (whole seconds, at
    /// least 1).
    #[must_use]
    pub fn poll_every(mut self, every: Duration) -> Self {
        self.poll_every = i64::try_from(every.as_secs()).unwrap_or(i64::MAX).max(1);
        self
    }

    /// Reads the file now. On failure the last good records stay, and the
    /// failure is logged (path and reason) and returned.
    ///
    /// # Errors
    /// Why the file was not taken.
    pub fn reload(&self) -> Result<usize, StoreError> {
        let mut poll = self.poll.lock().unwrap_or_else(PoisonError::into_inner);
        self.reload_locked(&mut poll)
    }

    fn reload_locked(&self, poll: &mut Poll) -> Result<usize, StoreError> {
        // Whatever the outcome, this version of the file has been judged: a
        // bad file is not re-read until it changes again.
        poll.seen = stat(&self.path);
        match read_store(&self.path) {
            Ok((records, _)) => {
                let n = records.len();
                self.records.store(Arc::new(records));
                tracing::info!(path = %self.path.display(), keys = n, "API key store reloaded");
                Ok(n)
            }
            Err(e) => {
                tracing::warn!(
                    path = %self.path.display(),
                    reason = %e,
                    "API key store file not taken; the last good keys stay"
                );
                Err(e)
            }
        }
    }

    /// The record of key `id`, the file checked first if a poll is due.
    pub(crate) fn get(&self, id: &str, now: i64) -> Option<Arc<ApiKeyRecord>> {
        self.poll(now);
        self.records.load().get(id).cloned()
    }

    /// Checks the file if a poll is due; one caller at a time (others go
    /// on with the current records).
    fn poll(&self, now: i64) {
        let Ok(mut poll) = self.poll.try_lock() else {
            return;
        };
        if poll
            .checked_at
            .is_some_and(|at| now.saturating_sub(at) < self.poll_every)
        {
            return;
        }
        poll.checked_at = Some(now);
        if stat(&self.path) != poll.seen {
            let _ = self.reload_locked(&mut poll);
        }
    }
}

fn stat(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

fn read_store(path: &Path) -> Result<(Records, Option<(SystemTime, u64)>), StoreError> {
    use std::io::Read as _;
    let seen = stat(path);
    let file = std::fs::File::open(path)
        .map_err(|e| StoreError::new(format!("cannot open {}: {e}", path.display())))?;
    let mut text = Vec::new();
    file.take(MAX_FILE.saturating_add(1))
        .read_to_end(&mut text)
        .map_err(|e| StoreError::new(format!("cannot read {}: {e}", path.display())))?;
    if text.len() as u64 > MAX_FILE {
        return Err(StoreError::new(format!(
            "{} is larger than {MAX_FILE} bytes",
            path.display()
        )));
    }
    let file: StoreFile = serde_json::from_slice(&text)
        .map_err(|e| StoreError::new(format!("{}: {e}", path.display())))?;
    let mut records = Records::with_capacity(file.keys.len());
    for r in file.keys {
        if !valid_id(&r.id) {
            return Err(StoreError::new(format!(
                "{}: a key id must be 8 to 32 ASCII letters and digits",
                path.display()
            )));
        }
        let id = r.id.clone();
        if records.insert(id.clone(), Arc::new(r)).is_some() {
            return Err(StoreError::new(format!(
                "{}: two records of key id {id}",
                path.display()
            )));
        }
    }
    Ok((records, seen))
}

/// Most ids whose answers a [`CachedStore`] keeps; past it, expired
/// answers are dropped, and when none are, new answers are not kept (the
/// store is asked, one lookup per id still shared by concurrent callers).
/// "Not found" answers are not among them: see [`MAX_MISSING`].
const MAX_CACHED: usize = 10_000;

/// Most "not found" answers kept, apart from the others, the oldest
/// dropped first: a flood of made-up ids evicts only other made-up ids,
/// never a real key's answer or its single flight.
const MAX_MISSING: usize = 1024;

/// Ids the store said it does not have, and when (clock seconds).
#[derive(Default)]
struct Missing {
    at: HashMap<Box<str>, (i64, u64)>,
    order: std::collections::VecDeque<(Box<str>, u64)>,
    seq: u64,
}

impl Missing {
    fn fresh(&self, id: &str, now: i64, ttl: i64) -> bool {
        self.at
            .get(id)
            .is_some_and(|(at, _)| now.saturating_sub(*at) < ttl)
    }

    fn insert(&mut self, id: &str, at: i64) {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        self.at.insert(id.into(), (at, seq));
        self.order.push_back((id.into(), seq));
        // Oldest first out; entries re-inserted since are skipped.
        while self.at.len() > MAX_MISSING || self.order.len() > 2 * MAX_MISSING {
            let Some((old, old_seq)) = self.order.pop_front() else {
                break;
            };
            if self.at.get(&old).is_some_and(|(_, s)| *s == old_seq) {
                self.at.remove(&old);
            }
        }
    }
}

type Answer = Result<Option<Arc<ApiKeyRecord>>, StoreError>;

/// A user's store behind a brief cache: answers (found or not) kept for
/// `ttl` seconds, errors not kept, and concurrent lookups of one id share
/// one store call.
#[derive(Clone)]
pub(crate) struct CachedStore {
    store: Arc<dyn KeyStore>,
    ttl: i64,
    slots: Arc<Mutex<HashMap<Box<str>, Arc<Slot>>>>,
    /// When (clock seconds) a full map was last swept: at most once a
    /// second, so a flood of unknown ids cannot make every lookup scan
    /// the whole map under the lock.
    swept: Arc<AtomicI64>,
    /// "Not found" answers, kept apart so they cannot fill `slots`.
    missing: Arc<Mutex<Missing>>,
}

#[derive(Default)]
struct Slot {
    /// The answer and when (clock seconds) it came.
    cell: tokio::sync::OnceCell<(Answer, i64)>,
}

impl Slot {
    /// In flight, or answered within `ttl`.
    fn fresh(&self, now: i64, ttl: i64) -> bool {
        match self.cell.get() {
            None => true,
            Some((Ok(_), at)) => now.saturating_sub(*at) < ttl,
            Some((Err(_), _)) => false,
        }
    }
}

impl CachedStore {
    pub(crate) fn new(store: Arc<dyn KeyStore>, ttl: i64) -> Self {
        CachedStore {
            store,
            ttl,
            slots: Arc::default(),
            swept: Arc::new(AtomicI64::new(i64::MIN)),
            missing: Arc::default(),
        }
    }

    pub(crate) fn set_ttl(&mut self, ttl: i64) {
        self.ttl = ttl;
    }

    pub(crate) async fn get(&self, id: &str, now: i64) -> Answer {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
            let missing = self.missing.lock().unwrap_or_else(PoisonError::into_inner);
            if missing.fresh(id, now, self.ttl) {
                return Ok(None);
            }
            drop(missing);
            match slots.get(id) {
                Some(s) if s.fresh(now, self.ttl) => s.clone(),
                _ => {
                    if slots.len() >= MAX_CACHED && self.swept.swap(now, Ordering::Relaxed) != now {
                        slots.retain(|_, s| s.fresh(now, self.ttl));
                    }
                    let s = Arc::new(Slot::default());
                    if slots.len() < MAX_CACHED {
                        slots.insert(id.into(), s.clone());
                    } else {
                        slots.remove(id);
                    }
                    s
                }
            }
        };
        let (answer, at) = slot
            .cell
            .get_or_init(|| async {
                let answer = match self.store.lookup(id).await {
                    // A store answering for another id is not believed.
                    Ok(Some(r)) if r.id != id => None,
                    Ok(r) => r.map(Arc::new),
                    Err(e) => return (Err(e), now),
                };
                (Ok(answer), now)
            })
            .await;
        if matches!(answer, Ok(None)) {
            // "Not found" moves to its own bounded map, freeing the slot.
            let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
            if slots.get(id).is_some_and(|s| Arc::ptr_eq(s, &slot)) {
                slots.remove(id);
            }
            drop(slots);
            if self.ttl > 0 {
                let mut missing = self.missing.lock().unwrap_or_else(PoisonError::into_inner);
                missing.insert(id, *at);
            }
        }
        answer.clone()
    }
}
