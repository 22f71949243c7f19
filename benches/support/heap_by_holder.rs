//! Who holds the heap: reads a DHAT profile (dhat-rs's JSON) and sums the bytes live at the
//! heap's peak and at the end by the holder each allocation site belongs to, told by the
//! frames of its backtrace. Used by `scale_databases` when `BENCH_HEAP_PROFILE=1`.
use std::collections::BTreeMap;

use serde::Deserialize;

/// Holders, in the order they are tried: the first whose pattern is in any frame of an
/// allocation's backtrace holds it.
const HOLDERS: &[(&str, &[&str])] = &[
    (
        "AWS model (the bench's, not the controller's)",
        &["backup_warden_testing::model"],
    ),
    (
        "GitHub fake (the bench's, not the controller's)",
        &["backup_warden_testing::github_fake"],
    ),
    // Before the client and connection holders: the benchmark reads through the same ones.
    (
        "the benchmark's own lists and setup (not the controller's)",
        &["scale_databases::main", "scale_repositories::main", "measure::"],
    ),
    (
        "Events recorder",
        &["report::recorder", "report::events", "kube_runtime::events"],
    ),
    (
        "metrics (prometheus registry)",
        &["prometheus::", "report::metrics"],
    ),
    (
        "object store (watch, reflector)",
        &[
            "kube_runtime::watcher",
            "kube_runtime::reflector",
            "kube_runtime::utils",
        ],
    ),
    ("AWS inventories", &["aws::inventory"]),
    ("KMS key cache", &["aws::kms", "controller::replica_key"]),
    (
        "controller queue and scheduler",
        &["kube_runtime::controller", "kube_runtime::scheduler"],
    ),
    ("status writes (kube client)", &["kube_client::"]),
    (
        "reconcile state (backoff, settling, notify)",
        &["backup_warden::controller", "backup_warden::report"],
    ),
    (
        "connections (hyper, h2, rustls)",
        &["hyper::", "hyper_util::", "h2::", "rustls::"],
    ),
    ("tokio runtime", &["tokio::"]),
];

#[derive(Deserialize)]
struct Profile {
    pps: Vec<Site>,
    ftbl: Vec<String>,
}

#[derive(Deserialize)]
struct Site {
    /// Bytes live at the global peak, and at the end.
    gb: Option<u64>,
    eb: Option<u64>,
    fs: Vec<usize>,
}

/// Bytes by holder: (at the peak, at the end), and the biggest unattributed sites.
pub struct Holders {
    pub bytes: BTreeMap<&'static str, (u64, u64)>,
    pub unattributed: Vec<(u64, String)>,
}

pub fn read(path: &str) -> Holders {
    let text = std::fs::read_to_string(path).expect("the DHAT profile");
    let profile: Profile = serde_json::from_str(&text).expect("a DHAT profile");
    let mut bytes = BTreeMap::new();
    let mut unattributed = Vec::new();
    for site in &profile.pps {
        let (peak, end) = (site.gb.unwrap_or(0), site.eb.unwrap_or(0));
        if peak == 0 && end == 0 {
            continue;
        }
        let frames: Vec<&str> = site.fs.iter().map(|&i| profile.ftbl[i].as_str()).collect();
        let holder = HOLDERS
            .iter()
            .find(|(_, patterns)| frames.iter().any(|f| patterns.iter().any(|p| f.contains(p))))
            .map_or("other", |(name, _)| *name);
        let entry = bytes.entry(holder).or_insert((0, 0));
        entry.0 += peak;
        entry.1 += end;
        if holder == "other" {
            let shown: Vec<&str> = frames.iter().take(8).copied().collect();
            unattributed.push((peak.max(end), shown.join("\n      ")));
        }
    }
    unattributed.sort_by_key(|u| std::cmp::Reverse(u.0));
    unattributed.truncate(5);
    Holders { bytes, unattributed }
}

pub fn print(holders: &Holders, objects: usize) {
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let per = |b: u64| b as f64 / 1024.0 / objects as f64;
    println!("heap by holder (DHAT): at the heap's peak | at the end");
    let mut rows: Vec<_> = holders.bytes.iter().collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.1.0));
    let (mut peak, mut end) = (0, 0);
    for (holder, (p, e)) in rows {
        println!(
            "  {holder:<48} {:>7.1} MiB {:>6.2} KiB/object | {:>7.1} MiB {:>6.2} KiB/object",
            mib(*p),
            per(*p),
            mib(*e),
            per(*e)
        );
        peak += p;
        end += e;
    }
    println!(
        "  {:<48} {:>7.1} MiB {:>6.2} KiB/object | {:>7.1} MiB {:>6.2} KiB/object",
        "total",
        mib(peak),
        per(peak),
        mib(end),
        per(end)
    );
    for (bytes, frames) in &holders.unattributed {
        println!("  other, {:.1} MiB:\n      {frames}", mib(*bytes));
    }
}
