//! Client keys: the generated one, those created with `basalt keys create`, and those of the
//! configuration. Checked on every API call from memory, refreshed from the store every few
//! seconds and whenever an unknown key comes (at most once a second), so a key created on
//! any node is accepted by every node at once; a revocation takes effect within a refresh.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::store::{Store, StoreResult};

/// The set of accepted keys.
pub struct ClientKeys {
    configured: Vec<String>,
    active: RwLock<HashSet<String>>,
    for_apps: RwLock<Option<String>>,
    /// When an unknown key last made us read the store.
    looked_up: Mutex<Option<Instant>>,
}

/// Unknown keys read the store at most this often.
const LOOKUP_EVERY: Duration = Duration::from_secs(1);

impl ClientKeys {
    /// Keys from the configuration; call `refresh` to add the stored ones.
    pub fn new(configured: Vec<String>) -> Self {
        Self {
            active: RwLock::new(configured.iter().cloned().collect()),
            for_apps: RwLock::new(configured.first().cloned()),
            looked_up: Mutex::new(None),
            configured,
        }
    }

    /// Whether a key is accepted.
    pub fn is_valid(&self, key: &str) -> bool {
        self.active
            .read()
            .map(|set| set.contains(key))
            .unwrap_or(false)
    }

    /// Whether a key is accepted, reading the store first when it is not known here (a key
    /// created meanwhile on another node) unless an unknown key did so within the last second.
    pub async fn accepts(&self, key: &str, store: &Arc<dyn Store>) -> bool {
        if self.is_valid(key) {
            return true;
        }
        {
            let mut last = self.looked_up.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|at| at.elapsed() < LOOKUP_EVERY) {
                return false;
            }
            *last = Some(Instant::now());
        }
        if let Err(err) = self.refresh(store).await {
            tracing::warn!(error = %err, "reading client keys failed");
            return false;
        }
        self.is_valid(key)
    }

    /// The key handed to the app Basalt serves: the first active stored key (the one `serve`
    /// prints), else the first configured one.
    pub fn for_apps(&self) -> Option<String> {
        self.for_apps.read().ok().and_then(|key| key.clone())
    }

    /// Reload the stored keys (revocations take effect here).
    pub async fn refresh(&self, store: &Arc<dyn Store>) -> StoreResult<()> {
        let stored: Vec<String> = store
            .client_keys()
            .await?
            .into_iter()
            .filter(|k| k.revoked_at.is_none())
            .map(|k| k.key)
            .collect();
        let for_apps = stored.first().or(self.configured.first()).cloned();
        let mut set: HashSet<String> = self.configured.iter().cloned().collect();
        set.extend(stored);
        if let Ok(mut active) = self.active.write() {
            *active = set;
        }
        if let Ok(mut key) = self.for_apps.write() {
            *key = for_apps;
        }
        Ok(())
    }
}

/// A new random client key.
pub fn generate_key() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteStore;

    #[tokio::test]
    async fn a_key_created_elsewhere_is_accepted_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(&dir.path().join("k.sqlite3"))
                .await
                .unwrap(),
        );
        let keys = ClientKeys::new(Vec::new());
        keys.refresh(&store).await.unwrap();
        assert!(!keys.accepts("unknown", &store).await);
        // Another node (here: the store directly) creates a key within the same second.
        store.insert_client_key("fresh", "app", 0).await.unwrap();
        *keys.looked_up.lock().unwrap() = None;
        assert!(keys.accepts("fresh", &store).await);
        // Unknown keys read the store at most once a second.
        assert!(!keys.accepts("unknown", &store).await);
        store.insert_client_key("later", "app", 0).await.unwrap();
        assert!(!keys.accepts("later", &store).await);
    }
}
