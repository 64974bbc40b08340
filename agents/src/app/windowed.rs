//! [`WindowedTable`]: Faust's windowed tables (`app.Table(...).tumbling(...)`,
//! `.hopping(...)`, `using_window(SlidingWindow(...))`): a table whose keys are
//! `(key, (start, end))`, one per window an event's time falls in, written to the changelog as
//! Faust writes them (`[key, [start, end]]` in json), and removed once their window expires
//! (every `table_cleanup_interval`), with an `on_window_close` callback that gets the
//! window's value (Faust's code drops it).
//!
//! [`WindowedTable::get`] gives a [`WindowSet`]: `current()` (the window of the event's time,
//! or of the time `relative_to_*` chose), `now()`, `delta(d)`, `value()`.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::app::table::{Expiry, Table, TableError};
use crate::app::topic::Model;
use crate::core::context;
use crate::state::window::{Window, WindowRange};

/// A windowed table's key: the user's key and its window, `[key, [start, end]]` in json.
#[derive(Debug, Clone)]
pub struct WindowKey<K> {
    /// The key.
    pub key: K,
    /// The window, in seconds.
    pub range: WindowRange,
}

impl<K: PartialEq> PartialEq for WindowKey<K> {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
            && self.range.0.to_bits() == other.range.0.to_bits()
            && self.range.1.to_bits() == other.range.1.to_bits()
    }
}

impl<K: Eq> Eq for WindowKey<K> {}

impl<K: Hash> Hash for WindowKey<K> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key.hash(state);
        self.range.0.to_bits().hash(state);
        self.range.1.to_bits().hash(state);
    }
}

impl<K: Serialize> Serialize for WindowKey<K> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (&self.key, self.range).serialize(s)
    }
}

impl<'de, K: DeserializeOwned> Deserialize<'de> for WindowKey<K> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (key, range) = <(K, (f64, f64))>::deserialize(d)?;
        Ok(WindowKey { key, range })
    }
}

/// Which time picks the window (Faust's `relative_to_*`).
#[derive(Clone)]
enum RelativeTo {
    /// The event's timestamp (Faust's default, `relative_to_stream`).
    Stream,
    /// The wall clock.
    Now,
    /// A numeric field (seconds) of the event's JSON value.
    Field(Arc<str>),
}

/// A windowed table, made by [`App::windowed_table`](crate::App::windowed_table): keys
/// `(key, (start, end))`, one per window an event's time falls in (`[key, [start, end]]` in
/// the changelog, as Faust writes them); expired windows are removed every
/// `table_cleanup_interval` and handed to `on_window_close`. Cheap to clone.
pub struct WindowedTable<K, V> {
    table: Table<WindowKey<K>, V>,
    window: Window,
    relative: RelativeTo,
}

impl<K, V> Clone for WindowedTable<K, V> {
    fn clone(&self) -> Self {
        WindowedTable {
            table: self.table.clone(),
            window: self.window,
            relative: self.relative.clone(),
        }
    }
}

impl<K, V> std::fmt::Debug for WindowedTable<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WindowedTable")
            .field("table", &self.table)
            .field("window", &self.window)
            .finish()
    }
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl<K: Model + Hash + Eq, V: Model> WindowedTable<K, V> {
    pub(crate) fn new(table: Table<WindowKey<K>, V>, window: Window) -> Self {
        table.set_expiry(Expiry {
            window,
            start: Arc::new(|k: &WindowKey<K>| k.range.0),
            on_close: None,
        });
        WindowedTable {
            table,
            window,
            relative: RelativeTo::Stream,
        }
    }

    /// The value a missing window reads as (Faust's `default=int`).
    pub fn default_value(self, f: impl Fn() -> V + Send + Sync + 'static) -> Self {
        let table = self.table.clone().default_value(f);
        WindowedTable { table, ..self }
    }

    /// Calls `f` with each window's key, range and value when it expires.
    pub fn on_window_close(self, f: impl Fn(&K, WindowRange, &V) + Send + Sync + 'static) -> Self {
        self.table.set_expiry(Expiry {
            window: self.window,
            start: Arc::new(|k: &WindowKey<K>| k.range.0),
            on_close: Some(Arc::new(move |k: &WindowKey<K>, v: &V| {
                f(&k.key, k.range, v)
            })),
        });
        self
    }

    /// Windows follow the event's timestamp (the default).
    pub fn relative_to_stream(mut self) -> Self {
        self.relative = RelativeTo::Stream;
        self
    }

    /// Windows follow the wall clock.
    pub fn relative_to_now(mut self) -> Self {
        self.relative = RelativeTo::Now;
        self
    }

    /// Windows follow a numeric field (seconds since the epoch) of the event's JSON value
    /// (Faust's `relative_to_field(Model.field)`).
    pub fn relative_to_field(mut self, field: &str) -> Self {
        self.relative = RelativeTo::Field(Arc::from(field));
        self
    }

    /// The inner table (keys `[key, [start, end]]`).
    pub fn table(&self) -> &Table<WindowKey<K>, V> {
        &self.table
    }

    /// The windows.
    pub fn window(&self) -> Window {
        self.window
    }

    /// The time (seconds) that picks windows now: per `relative_to_*`, from the event being
    /// processed (the wall clock outside an event).
    pub fn time(&self) -> f64 {
        let event = context::current_event();
        match (&self.relative, event) {
            (RelativeTo::Now, _) | (_, None) => now_secs(),
            (RelativeTo::Stream, Some(e)) => e
                .message()
                .map(|m| m.record.timestamp() as f64 / 1000.0)
                .unwrap_or_else(now_secs),
            (RelativeTo::Field(f), Some(e)) => e
                .message()
                .and_then(|m| m.record.value())
                .and_then(|v| serde_json::from_slice::<serde_json::Value>(v).ok())
                .and_then(|v| v.get(&**f).and_then(serde_json::Value::as_f64))
                .unwrap_or_else(now_secs),
        }
    }

    /// Changes the value of `key` in every window the current time falls in (Faust's
    /// `windowed[key] += 1`), starting from the default where a window has no value yet.
    pub async fn update(&self, key: K, f: impl Fn(&mut V)) -> Result<(), TableError> {
        let time = self.time();
        if let Some(p) = self.table.event_partition() {
            self.table.note_time(p, time);
        }
        for range in self.window.ranges(time) {
            self.table
                .update(
                    WindowKey {
                        key: key.clone(),
                        range,
                    },
                    &f,
                )
                .await?;
        }
        Ok(())
    }

    /// Sets `value` for `key` in every window the current time falls in (Faust's
    /// `windowed[key] = value`).
    pub async fn set(&self, key: K, value: V) -> Result<(), TableError> {
        let time = self.time();
        if let Some(p) = self.table.event_partition() {
            self.table.note_time(p, time);
        }
        for range in self.window.ranges(time) {
            self.table
                .set(
                    WindowKey {
                        key: key.clone(),
                        range,
                    },
                    value.clone(),
                )
                .await?;
        }
        Ok(())
    }

    /// The windows of `key` (Faust's `windowed[key]`).
    pub fn get(&self, key: K) -> WindowSet<'_, K, V> {
        WindowSet { table: self, key }
    }

    /// Removes expired windows now (the worker does it every `table_cleanup_interval`).
    pub fn expire(&self) -> usize {
        self.table.expire()
    }
}

/// The windows of one key (Faust's `WindowSet`).
pub struct WindowSet<'a, K, V> {
    table: &'a WindowedTable<K, V>,
    key: K,
}

impl<K: Model + Hash + Eq, V: Model> WindowSet<'_, K, V> {
    fn at(&self, range: WindowRange) -> Option<V> {
        let k = WindowKey {
            key: self.key.clone(),
            range,
        };
        self.table
            .table
            .get_in(self.table.table.event_partition(), &k)
    }

    /// The value of the latest window of the current time (per `relative_to_*`).
    pub fn value(&self) -> Option<V> {
        self.at(self.table.window.current(self.table.time()))
    }

    /// The value of the latest window of the event's time (Faust's `current()`).
    pub fn current(&self) -> Option<V> {
        self.value()
    }

    /// The value of the window of the wall clock (Faust's `now()`).
    pub fn now(&self) -> Option<V> {
        self.at(self.table.window.current(now_secs()))
    }

    /// The value of the window `d` before the current time (Faust's `delta(d)`).
    pub fn delta(&self, d: Duration) -> Option<V> {
        self.at(self.table.window.delta(self.table.time(), d))
    }

    /// The value of the window starting at `range` exactly.
    pub fn window(&self, range: WindowRange) -> Option<V> {
        self.at(range)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::codec::{Codec, Json};

    #[test]
    fn window_keys_are_faust_nested_arrays() {
        let k = WindowKey {
            key: "p".to_owned(),
            range: (1_700_000_000.0, 1_700_000_009.9),
        };
        let bytes = Codec::<WindowKey<String>>::encode(&Json, &k).unwrap();
        assert_eq!(&bytes[..], br#"["p",[1700000000.0,1700000009.9]]"#);
        // What Python's json writes (with its separators) reads back the same.
        let faust = bytes::Bytes::from_static(br#"["p", [1700000000.0, 1700000009.9]]"#);
        assert_eq!(
            Codec::<WindowKey<String>>::decode(&Json, &faust).unwrap(),
            k
        );
    }
}
