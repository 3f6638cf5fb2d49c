//! The daemon's counters, in the Prometheus text format (`GET /metrics`).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

/// Upper bounds of the commit latency histogram, in seconds.
const COMMIT_BUCKETS_SECONDS: [f64; 12] =
    [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 5.0];

#[derive(Default)]
pub struct Metrics {
    pub events_appended: AtomicU64,
    pub batches_appended: AtomicU64,
    pub requests_acknowledged: AtomicU64,
    pub duplicates: AtomicU64,
    pub queue_depth: AtomicU64,
    pub hubspot_ignored: AtomicU64,
    /// HubSpot notifications in the quarantine now.
    pub quarantined: AtomicU64,
    pub hubspot_quarantined_total: AtomicU64,
    /// What-ifs computing now (at most `[serve] whatifs_max`).
    pub whatifs_running: AtomicU64,
    /// Live tails open now (at most `[serve] streams_max`).
    pub streams_open: AtomicU64,
    commit_buckets: [AtomicU64; COMMIT_BUCKETS_SECONDS.len()],
    commit_count: AtomicU64,
    commit_micros_sum: AtomicU64,
    rejects: Mutex<BTreeMap<&'static str, u64>>,
    /// Scheduled sync runs by CRM: (runs ok, runs failed, events stored).
    syncs: Mutex<BTreeMap<&'static str, (u64, u64, u64)>>,
}

impl Metrics {
    pub fn reject(&self, reason: &'static str) {
        *self.rejects.lock().expect("not poisoned").entry(reason).or_default() += 1;
    }

    /// A scheduled sync run of `crm` ended.
    pub fn observe_sync(&self, crm: &'static str, ok: bool, events: u64) {
        let mut syncs = self.syncs.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let counts = syncs.entry(crm).or_default();
        if ok {
            counts.0 += 1;
        } else {
            counts.1 += 1;
        }
        counts.2 += events;
    }

    pub fn observe_commit(&self, seconds: f64) {
        for (bucket, bound) in self.commit_buckets.iter().zip(COMMIT_BUCKETS_SECONDS) {
            if seconds <= bound {
                bucket.fetch_add(1, Relaxed);
            }
        }
        self.commit_count.fetch_add(1, Relaxed);
        self.commit_micros_sum.fetch_add((seconds * 1e6) as u64, Relaxed);
    }

    /// The Prometheus text; `unsigned`: bytes of deliveries being read before their signature
    /// is checked, and the most of them.
    pub fn render(&self, head_seq: u64, queue_bytes: usize, unsigned: (usize, usize)) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, kind: &str, value: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
        };
        counter(
            "dealledger_events_appended_total",
            "Events appended to the log.",
            "counter",
            self.events_appended.load(Relaxed),
        );
        counter(
            "dealledger_batches_appended_total",
            "Group commits (one flush each).",
            "counter",
            self.batches_appended.load(Relaxed),
        );
        counter(
            "dealledger_requests_acknowledged_total",
            "Requests answered 200 after their commit.",
            "counter",
            self.requests_acknowledged.load(Relaxed),
        );
        counter(
            "dealledger_duplicates_total",
            "Events skipped as idempotent retries.",
            "counter",
            self.duplicates.load(Relaxed),
        );
        counter(
            "dealledger_queue_depth",
            "Requests waiting for the writer.",
            "gauge",
            self.queue_depth.load(Relaxed),
        );
        counter(
            "dealledger_hubspot_ignored_total",
            "HubSpot webhook events accepted and ignored (unmapped property or type).",
            "counter",
            self.hubspot_ignored.load(Relaxed),
        );
        counter(
            "dealledger_hubspot_quarantined",
            "HubSpot notifications held in the quarantine now (GET /v1/quarantine).",
            "gauge",
            self.quarantined.load(Relaxed),
        );
        counter(
            "dealledger_hubspot_quarantined_total",
            "HubSpot notifications that entered the quarantine (a redelivery or a failed retry of one held is not counted again).",
            "counter",
            self.hubspot_quarantined_total.load(Relaxed),
        );
        counter(
            "dealledger_queue_bytes",
            "Bytes of requests in memory: bodies being read and requests waiting for the writer.",
            "gauge",
            queue_bytes as u64,
        );
        counter(
            "dealledger_unsigned_bytes",
            "Bytes of HubSpot deliveries being read before their signature is checked.",
            "gauge",
            unsigned.0 as u64,
        );
        counter(
            "dealledger_unsigned_bytes_max",
            "The most bytes of unsigned deliveries read at once ([hubspot] unsigned_bytes_max; 0 without [hubspot]).",
            "gauge",
            unsigned.1 as u64,
        );
        counter("dealledger_head_seq", "The last durable sequence number.", "gauge", head_seq);
        counter(
            "dealledger_whatifs_running",
            "What-ifs computing now (at most [serve] whatifs_max).",
            "gauge",
            self.whatifs_running.load(Relaxed),
        );
        counter(
            "dealledger_streams_open",
            "Live tails (GET /v1/stream) open now (at most [serve] streams_max).",
            "gauge",
            self.streams_open.load(Relaxed),
        );
        self.render_rejects_and_commits(&mut out);
        out
    }

    /// The labelled counter of refusals and the commit latency histogram.
    fn render_rejects_and_commits(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP dealledger_rejects_total Requests refused, by reason.");
        let _ = writeln!(out, "# TYPE dealledger_rejects_total counter");
        for (reason, count) in self.rejects.lock().expect("not poisoned").iter() {
            let _ = writeln!(out, "dealledger_rejects_total{{reason=\"{reason}\"}} {count}");
        }
        let name = "dealledger_commit_seconds";
        let _ = writeln!(out, "# HELP {name} Group commit latency: admit, seal, write and flush.");
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (bucket, bound) in self.commit_buckets.iter().zip(COMMIT_BUCKETS_SECONDS) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {}", bucket.load(Relaxed));
        }
        let count = self.commit_count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {}", self.commit_micros_sum.load(Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {count}");
        self.render_syncs(out);
    }

    /// The scheduled syncs' counters, by CRM (only those that ran).
    fn render_syncs(&self, out: &mut String) {
        let syncs = self.syncs.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut family = |name: &str, help: &str, samples: Vec<(String, u64)>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{{{labels}}} {value}");
            }
        };
        let runs = syncs.iter().flat_map(|(crm, (ok, failed, _))| {
            [
                (format!("crm=\"{crm}\",outcome=\"ok\""), *ok),
                (format!("crm=\"{crm}\",outcome=\"failed\""), *failed),
            ]
        });
        family(
            "dealledger_sync_runs_total",
            "Scheduled sync runs ([sync]), by CRM and outcome.",
            runs.collect(),
        );
        let errors = syncs.iter().map(|(crm, (_, failed, _))| (format!("crm=\"{crm}\""), *failed));
        family("dealledger_sync_errors_total", "Scheduled sync runs that failed, by CRM.", errors.collect());
        let events = syncs.iter().map(|(crm, (_, _, events))| (format!("crm=\"{crm}\""), *events));
        family("dealledger_sync_events_total", "Events scheduled syncs stored, by CRM.", events.collect());
    }
}
