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

/// The engine's event channel. Slow listeners lose the oldest events (they are told how many),
/// never block the engine.
pub struct Events {
    tx: broadcast::Sender<Event>,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            tx: broadcast::channel(1024).0,
        }
    }
}

impl Events {
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }

    pub fn send(&self, event: Event) {
        tracing::debug!(kind = event.kind.as_str(), action = %event.action, id = %event.id, "event");
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
    }
}
