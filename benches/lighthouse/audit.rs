//! The audit log: every request the controller under benchmark makes, attributed to it by its
//! impersonated user, counted by verb and resource.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::CONTROLLER_USER;

/// The audit log, read from where the last read stopped.
pub struct Audit {
    path: PathBuf,
    offset: u64,
    /// Writes of the leader election's Lease seen so far: the heartbeat of SPEC §12, counted
    /// apart so that "writes" stays what reconciling costs (and a quiet controller is quiet).
    pub lease_writes: usize,
}

/// One request of the controller: verb and resource (`roles`, `registrationassignments/status`).
#[derive(Debug)]
pub struct Request {
    verb: String,
    resource: String,
}

impl Request {
    fn is_write(&self) -> bool {
        matches!(self.verb.as_str(), "create" | "update" | "patch" | "delete" | "deletecollection")
    }
}

/// `/apis/rbac.authorization.k8s.io/v1/namespaces/x/roles/y?…` → `roles`; `…/y/status` → `…/status`.
fn resource_of(uri: &str) -> String {
    let path = uri.split('?').next().unwrap_or_default();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let skip = match segments.first() {
        Some(&"api") => 2,
        Some(&"apis") => 3,
        _ => return path.to_string(),
    };
    let rest = &segments[skip.min(segments.len())..];
    let rest = if rest.first() == Some(&"namespaces") && rest.len() > 2 { &rest[2..] } else { rest };
    match rest {
        [resource, _, sub, ..] => format!("{resource}/{sub}"),
        [resource, ..] => resource.to_string(),
        [] => path.to_string(),
    }
}

impl Audit {
    pub fn new(path: PathBuf) -> Audit {
        let mut audit = Audit { path, offset: 0, lease_writes: 0 };
        audit.drain();
        audit
    }

    /// The controller's requests logged since the last call.
    pub fn drain(&mut self) -> Vec<Request> {
        let Ok(mut file) = std::fs::File::open(&self.path) else { return vec![] };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        if len < self.offset {
            self.offset = 0; // rotated
        }
        let mut text = String::new();
        if file.seek(SeekFrom::Start(self.offset)).is_err() || file.read_to_string(&mut text).is_err() {
            return vec![];
        }
        let complete = text.rfind('\n').map_or(0, |i| i + 1);
        self.offset += complete as u64;
        text[..complete]
            .lines()
            .filter(|l| l.contains(CONTROLLER_USER) && l.contains("ResponseComplete"))
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|e| e["stage"] == "ResponseComplete" && e["impersonatedUser"]["username"] == CONTROLLER_USER)
            .map(|e| Request {
                verb: e["verb"].as_str().unwrap_or_default().to_string(),
                resource: resource_of(e["requestURI"].as_str().unwrap_or_default()),
            })
            .collect()
    }

    /// The controller's requests of `verb` on `resource` since the last call.
    pub fn count(&mut self, verb: &str, resource: &str) -> usize {
        self.drain().iter().filter(|r| r.verb == verb && r.resource == resource).count()
    }

    /// Writes since the last call, by verb and resource; the Lease's renewals are added to
    /// [`Audit::lease_writes`] instead.
    pub fn writes(&mut self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for r in self.drain().into_iter().filter(Request::is_write) {
            if r.resource == "leases" {
                self.lease_writes += 1;
                continue;
            }
            *counts.entry(format!("{} {}", r.verb, r.resource)).or_insert(0) += 1;
        }
        counts
    }

    /// Waits until the controller has written nothing for `quiet` (or `limit` passed).
    pub async fn settle(&mut self, quiet: Duration, limit: Duration) -> BTreeMap<String, usize> {
        let mut all = BTreeMap::new();
        let (started, mut last_write) = (Instant::now(), Instant::now());
        while last_write.elapsed() < quiet && started.elapsed() < limit {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let new = self.writes();
            if !new.is_empty() {
                last_write = Instant::now();
            }
            merge(&mut all, new);
        }
        all
    }
}

pub fn merge(into: &mut BTreeMap<String, usize>, from: BTreeMap<String, usize>) {
    for (k, v) in from {
        *into.entry(k).or_insert(0) += v;
    }
}

pub fn total(counts: &BTreeMap<String, usize>) -> usize {
    counts.values().sum()
}
