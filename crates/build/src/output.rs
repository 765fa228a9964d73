//! What a build tells its client as it goes: text (the `Step N/M` lines, RUN output) and
//! at the end the image's id, in the shape of the classic builder's JSON stream messages.

use tokio::sync::mpsc::UnboundedSender;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Text for the terminal (`{"stream": …}`).
    Stream(String),
    /// The image built (`{"aux": {"ID": …}}`).
    Built(String),
}

/// Where messages go; a client that went away does not stop the build.
#[derive(Debug, Clone)]
pub struct Output {
    tx: UnboundedSender<Message>,
}

impl Output {
    pub fn new(tx: UnboundedSender<Message>) -> Output {
        Output { tx }
    }

    pub fn line(&self, text: &str) {
        let _ = self.tx.send(Message::Stream(text.to_string()));
    }

    /// Output of a RUN, as it arrived.
    pub fn chunk(&self, bytes: &[u8]) {
        let _ = self
            .tx
            .send(Message::Stream(String::from_utf8_lossy(bytes).into_owned()));
    }

    pub fn built(&self, id: &str) {
        let _ = self.tx.send(Message::Built(id.to_string()));
    }
}
