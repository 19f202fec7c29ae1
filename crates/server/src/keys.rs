//! Client keys: the generated one, those created with `basalt keys create`, and those of the
//! configuration. Checked on every API call from memory, refreshed from the store.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use crate::store::{Store, StoreResult};

/// The set of accepted keys.
pub struct ClientKeys {
    configured: Vec<String>,
    active: RwLock<HashSet<String>>,
    for_apps: RwLock<Option<String>>,
}

impl ClientKeys {
    /// Keys from the configuration; call `refresh` to add the stored ones.
    pub fn new(configured: Vec<String>) -> Self {
        Self {
            active: RwLock::new(configured.iter().cloned().collect()),
            for_apps: RwLock::new(configured.first().cloned()),
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
