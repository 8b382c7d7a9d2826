//! Rendered output by its inputs' digest, within a byte budget (the least recently used goes
//! first), with one render at a time per key so that many environments asking at once for the
//! same input wait for one render instead of each running it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::RenderError;

/// What one render produced.
pub(crate) type Output = Result<Arc<String>, RenderError>;

struct Entry {
    output: Output,
    bytes: u64,
    used: u64,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    bytes: u64,
    tick: u64,
}

/// The output cache.
pub(crate) struct Cache {
    budget: u64,
    inner: Mutex<Inner>,
    renders: Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

impl Cache {
    /// A cache holding at most `budget` bytes of output.
    pub(crate) fn new(budget: u64) -> Self {
        Self { budget, inner: Mutex::new(Inner::default()), renders: Mutex::new(HashMap::new()) }
    }

    /// The output for `key`, rendering it with `render` when it is not cached; `true` with a
    /// cached answer.
    pub(crate) fn get_or_render(&self, key: &str, render: impl FnOnce() -> (Output, bool)) -> (Output, bool) {
        if let Some(found) = self.get(key) {
            return (found, true);
        }
        let lock = {
            let mut renders = self.renders.lock().unwrap_or_else(|p| p.into_inner());
            renders.entry(key.to_string()).or_default().clone()
        };
        let _one = lock.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(found) = self.get(key) {
            return (found, true);
        }
        let (output, keep) = render();
        if keep {
            self.put(key, output.clone());
        }
        self.renders.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
        (output, false)
    }

    fn get(&self, key: &str) -> Option<Output> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.tick += 1;
        let tick = inner.tick;
        let entry = inner.entries.get_mut(key)?;
        entry.used = tick;
        Some(entry.output.clone())
    }

    fn put(&self, key: &str, output: Output) {
        let bytes = match &output {
            Ok(text) => text.len() as u64,
            Err(e) => e.to_string().len() as u64,
        } + key.len() as u64;
        if bytes > self.budget {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        while inner.bytes + bytes > self.budget {
            let Some(oldest) = inner.entries.iter().min_by_key(|(_, e)| e.used).map(|(k, _)| k.clone()) else { break };
            if let Some(gone) = inner.entries.remove(&oldest) {
                inner.bytes -= gone.bytes;
            }
        }
        inner.tick += 1;
        let used = inner.tick;
        inner.bytes += bytes;
        if let Some(before) = inner.entries.insert(key.to_string(), Entry { output, bytes, used }) {
            inner.bytes -= before.bytes;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_once_per_key_and_forgets_the_least_recently_used() {
        let cache = Cache::new(25);
        let text = |s: &str| (Ok(Arc::new(s.to_string())), true);
        assert!(!cache.get_or_render("a", || text("0123456789")).1);
        assert!(cache.get_or_render("a", || unreachable!()).1);
        assert!(!cache.get_or_render("b", || text("0123456789")).1);
        assert!(cache.get_or_render("a", || unreachable!()).1);
        // 22 of 25 bytes used; c needs 11 more: b, used longest ago, goes.
        assert!(!cache.get_or_render("c", || text("0123456789")).1);
        assert!(cache.get_or_render("a", || unreachable!()).1);
        assert!(!cache.get_or_render("b", || text("0123456789")).1);
        // An answer not to keep (a timeout) is rendered again next time.
        let timeout = || (Err(RenderError::Tree { path: "x".into(), why: "y".into() }), false);
        assert!(!cache.get_or_render("d", timeout).1);
        assert!(!cache.get_or_render("d", timeout).1);
    }
}
