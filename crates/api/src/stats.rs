//! `GET /containers/{id}/stats` in Docker's shape: the engine's samples, each with the one
//! before it (`precpu_stats`, `preread`), so that clients can turn CPU time into a percentage.
//! One answer, or a line a second for as long as the container runs and the client listens.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use berth_engine::stats::{BlkioStats, CpuStats, MemoryStats, NetworkStats, PidsStats};
use berth_engine::{Container, Engine, Error, Stats};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::convert::docker_time;
use crate::error::ApiResult;

/// Docker's sampling period, for streams and for the two samples of a one-off answer.
const INTERVAL: Duration = Duration::from_secs(1);

#[derive(Serialize)]
struct Answer<'a> {
    name: String,
    id: &'a str,
    read: String,
    preread: String,
    pids_stats: PidsStats,
    blkio_stats: BlkioStats,
    num_procs: u32,
    storage_stats: Empty,
    cpu_stats: CpuStats,
    precpu_stats: CpuStats,
    memory_stats: MemoryStats,
    #[serde(skip_serializing_if = "Option::is_none")]
    networks: Option<BTreeMap<String, NetworkStats>>,
}

/// Windows-only figures, present and empty on Linux as Docker sends them.
#[derive(Serialize)]
struct Empty {}

/// A sample with the one before; a stopped container (no sample) answers with zeroes, as
/// Docker does.
fn answer(c: &Container, now: Option<Stats>, before: Option<&Stats>) -> serde_json::Value {
    let (read, pids, blkio, cpu, memory, networks) = match now {
        Some(s) => (
            Some(s.read),
            s.pids_stats,
            s.blkio_stats,
            s.cpu_stats,
            s.memory_stats,
            Some(s.networks).filter(|n| !n.is_empty()),
        ),
        None => Default::default(),
    };
    let a = Answer {
        name: format!("/{}", c.name),
        id: &c.id,
        read: docker_time(read),
        preread: docker_time(before.map(|b| b.read)),
        pids_stats: pids,
        blkio_stats: blkio,
        num_procs: 0,
        storage_stats: Empty {},
        cpu_stats: cpu,
        precpu_stats: before.map(|b| b.cpu_stats.clone()).unwrap_or_default(),
        memory_stats: memory,
        networks,
    };
    serde_json::to_value(a).unwrap_or_default()
}

/// A sample, or None when the container does not run (any more); other failures are errors.
async fn sample(engine: &Engine, c: &Container) -> ApiResult<Option<Stats>> {
    match engine.stats(&c.id).await {
        Ok(s) => Ok(Some(s)),
        Err(Error::Conflict(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// One answer: with `one_shot` a single sample; otherwise two, INTERVAL apart, so that the
/// answer carries the CPU time used in between (Docker's `stream=false`).
pub async fn once(engine: &Engine, c: &Container, one_shot: bool) -> ApiResult<serde_json::Value> {
    let Some(first) = sample(engine, c).await? else {
        return Ok(answer(c, None, None));
    };
    if one_shot {
        return Ok(answer(c, Some(first), None));
    }
    tokio::time::sleep(INTERVAL).await;
    let second = sample(engine, c).await?;
    let before = second.is_some().then_some(&first);
    Ok(answer(c, second, before))
}

/// A line every INTERVAL (the first without a sample before it) until the client goes or
/// the container stops; the last line of a stopped container is zeroes.
pub async fn stream(engine: Arc<Engine>, c: Container, tx: mpsc::Sender<serde_json::Value>) {
    let mut tick = tokio::time::interval(INTERVAL);
    let mut before: Option<Stats> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = tx.closed() => return,
        }
        let now = match sample(&engine, &c).await {
            Ok(now) => now,
            Err(e) => {
                tracing::warn!("stats of {}: {}", c.name, e.message);
                None
            }
        };
        let ended = now.is_none();
        let line = answer(&c, now.clone(), before.as_ref());
        if tx.send(line).await.is_err() || ended {
            return;
        }
        before = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container() -> Container {
        Container {
            id: "abc".into(),
            name: "s".into(),
            config: berth_engine::Config::default(),
            state: berth_engine::container::State::created(),
            created: time::OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn stopped_is_zeroes() {
        let v = answer(&container(), None, None);
        assert_eq!(v["name"], "/s");
        assert_eq!(v["id"], "abc");
        assert_eq!(v["read"], "0001-01-01T00:00:00Z");
        assert_eq!(v["preread"], "0001-01-01T00:00:00Z");
        assert_eq!(v["cpu_stats"]["cpu_usage"]["total_usage"], 0);
        assert_eq!(v["memory_stats"], serde_json::json!({}));
        assert_eq!(v["storage_stats"], serde_json::json!({}));
        assert!(v.get("networks").is_none());
    }
}
