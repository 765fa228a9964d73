//! What happens to containers, as Docker's event stream reports it (create, start, die,
//! destroy, …): one broadcast channel per engine. `wait` and the API's `/events` listen to it;
//! nothing waits on it by polling.

use std::collections::BTreeMap;

use time::OffsetDateTime;
use tokio::sync::broadcast;

/// The kind of object an event is about, as Docker names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Container,
    Image,
    Network,
    Volume,
}

impl Kind {
    pub fn as_str(&self) -> &'static str {
        match self {
            Kind::Container => "container",
            Kind::Image => "image",
            Kind::Network => "network",
            Kind::Volume => "volume",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Event {
    pub kind: Kind,
    /// Docker's action: create, start, die, destroy, stop, kill, rename, pull, tag, …
    pub action: String,
    /// The object's id.
    pub id: String,
    /// Docker's Actor.Attributes: name, image, exitCode, signal, …
    pub attributes: BTreeMap<String, String>,
    pub time: OffsetDateTime,
}

impl Event {
    pub fn new(kind: Kind, action: &str, id: &str) -> Event {
        Event {
            kind,
            action: action.to_string(),
            id: id.to_string(),
            attributes: BTreeMap::new(),
            time: OffsetDateTime::now_utc(),
        }
    }

    pub fn with(mut self, key: &str, value: impl Into<String>) -> Event {
        self.attributes.insert(key.to_string(), value.into());
        self
    }
}

/// The engine's event channel, and the latest events for `events --since`. Slow listeners
/// lose the oldest events (they are told how many), never block the engine.
pub struct Events {
    tx: broadcast::Sender<Event>,
    recent: std::sync::Mutex<std::collections::VecDeque<Event>>,
}

/// How many past events `--since` can reach back to.
const KEPT: usize = 1024;

impl Default for Events {
    fn default() -> Self {
        Events {
            tx: broadcast::channel(1024).0,
            recent: Default::default(),
        }
    }
}

impl Events {
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }

    /// A subscription and, atomically with it, the kept events from `since` on: nothing is
    /// seen twice or missed between the two.
    pub fn subscribe_since(
        &self,
        since: OffsetDateTime,
    ) -> (Vec<Event>, broadcast::Receiver<Event>) {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        let past = recent.iter().filter(|e| e.time >= since).cloned().collect();
        (past, self.tx.subscribe())
    }

    pub fn send(&self, event: Event) {
        tracing::debug!(kind = event.kind.as_str(), action = %event.action, id = %event.id, "event");
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() == KEPT {
            recent.pop_front();
        }
        recent.push_back(event.clone());
        // No listener is not an error: events are for whoever is listening now.
        let _ = self.tx.send(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_get_what_is_sent_after_they_subscribe() {
        let events = Events::default();
        events.send(Event::new(Kind::Container, "create", "a"));
        let mut rx = events.subscribe();
        events.send(Event::new(Kind::Container, "die", "a").with("exitCode", "3"));
        let e = rx.try_recv().unwrap();
        assert_eq!(e.action, "die");
        assert_eq!(e.attributes["exitCode"], "3");
        assert!(rx.try_recv().is_err());
        let (past, _rx) = events.subscribe_since(OffsetDateTime::UNIX_EPOCH);
        assert_eq!(past.len(), 2);
        let (none, _rx) =
            events.subscribe_since(OffsetDateTime::now_utc() + time::Duration::hours(1));
        assert!(none.is_empty());
    }
}
