//! Progress of long work (pull, push, load), as events to a callback or a channel. The CLI
//! turns them into progress bars; the library only reports.

use std::sync::Arc;

use crate::digest::Digest;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// The reference resolved to a manifest with this many layers.
    Resolved {
        reference: String,
        digest: Digest,
        layers: usize,
    },
    /// A layer already here: nothing to transfer.
    Cached { digest: Digest },
    /// Bytes of a blob transferred so far.
    Bytes {
        digest: Digest,
        done: u64,
        total: u64,
    },
    /// A blob is stored (pull) or on the registry (push).
    Transferred { digest: Digest },
    /// A pushed blob was already on the registry, or mounted from another repository.
    Skipped { digest: Digest, reason: String },
    /// A layer is unpacked into its snapshot.
    Unpacked { digest: Digest },
    /// The work is done; for pull/load/import the image ID.
    Done { id: Digest },
}

/// Where progress goes. Cloning shares the destination; the default sends nowhere.
#[derive(Clone, Default)]
pub struct ProgressSink(Option<Arc<dyn Fn(Progress) + Send + Sync>>);

impl ProgressSink {
    pub fn new(f: impl Fn(Progress) + Send + Sync + 'static) -> Self {
        ProgressSink(Some(Arc::new(f)))
    }

    /// A sink and the receiving end of its channel.
    pub fn channel() -> (Self, tokio::sync::mpsc::UnboundedReceiver<Progress>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (ProgressSink::new(move |p| drop(tx.send(p))), rx)
    }

    pub fn send(&self, p: Progress) {
        if let Some(f) = &self.0 {
            f(p)
        }
    }
}

impl std::fmt::Debug for ProgressSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "ProgressSink(..)"
        } else {
            "ProgressSink(none)"
        })
    }
}
