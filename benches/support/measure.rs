//! What the in-process scale benchmarks read: this process's memory, the API server's
//! count of status writes, and AWS calls by operation.
// Each benchmark includes this module and uses a part of it.
#![allow(dead_code)]
use std::{
    alloc::{GlobalAlloc, Layout},
    collections::BTreeMap,
    sync::atomic::{AtomicUsize, Ordering},
};

use backup_warden::aws::ApiCalls;
use backup_warden_testing::github_fake::GitHubFake;
use kube::{Api, api::ListParams};

/// The malloc settings the image ships (the Dockerfile's `ENV GLIBC_TUNABLES=`), read from
/// the Dockerfile itself so that a benchmark measures what runs in production.
pub fn shipped_malloc_tunables() -> String {
    let dockerfile = concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile");
    let text = std::fs::read_to_string(dockerfile).expect("the Dockerfile");
    text.lines()
        .find_map(|l| l.strip_prefix("ENV GLIBC_TUNABLES="))
        .expect("the Dockerfile sets GLIBC_TUNABLES")
        .trim()
        .to_string()
}

/// Runs this benchmark again with the image's malloc settings unless it already has them:
/// glibc reads them only when a process starts. `BENCH_GLIBC_TUNABLES` runs it with other
/// settings instead, to compare.
pub fn with_shipped_malloc() {
    use std::os::unix::process::CommandExt;
    let tunables = std::env::var("BENCH_GLIBC_TUNABLES").unwrap_or_else(|_| shipped_malloc_tunables());
    // Once only: glibc may rewrite the variable as it reads it.
    const AGAIN: &str = "BENCH_MALLOC_SET";
    if std::env::var_os(AGAIN).is_some() || std::env::var("GLIBC_TUNABLES").is_ok_and(|v| v == tunables) {
        return;
    }
    let this = std::env::current_exe().expect("this benchmark");
    let error = std::process::Command::new(this)
        .args(std::env::args_os().skip(1))
        .env("GLIBC_TUNABLES", tunables)
        .env(AGAIN, "1")
        .exec();
    panic!("cannot run the benchmark again with the image's malloc settings: {error}");
}

/// A number from the environment, or `default`.
pub fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// How many objects `ready` says are Ready, listed by pages of 100 (small pages keep the
/// benchmark's own share of the process's memory small).
pub async fn count_ready<K>(api: &Api<K>, ready: impl Fn(&K) -> bool) -> usize
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut count = 0;
    let mut params = ListParams::default().limit(100);
    loop {
        let page = api.list(&params).await.expect("list");
        count += page.items.iter().filter(|o| ready(o)).count();
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => return count,
        }
    }
}

/// Waits until all `n` objects are ready, polling every `every` and reporting progress;
/// panics after `limit`. Returns how long it took from `started`.
pub async fn wait_all_ready<K>(
    api: &Api<K>,
    n: usize,
    ready: impl Fn(&K) -> bool,
    started: std::time::Instant,
    every: std::time::Duration,
    limit: std::time::Duration,
) -> std::time::Duration
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    loop {
        tokio::time::sleep(every).await;
        let done = count_ready(api, &ready).await;
        eprintln!("{:>6.0}s: {done} of {n} Ready", started.elapsed().as_secs_f64());
        if done == n {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "not Ready within {limit:?}: {done} of {n}"
        );
    }
}

/// GitHub requests by what they are for: (requests, of which 304).
pub fn github_requests(github: &GitHubFake) -> BTreeMap<String, (usize, usize)> {
    let mut kinds: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for r in github.requests() {
        let kind = if r.path == "/graphql" && r.operation.as_deref() == Some("OrganizationRepositories") {
            "POST /graphql organization (100 a page)".to_string()
        } else if r.path == "/graphql" {
            "POST /graphql (100 repositories each)".to_string()
        } else if r.path.ends_with("/runs") {
            format!("{} workflow runs", r.method)
        } else if r.path.contains("/actions/workflows/") {
            format!("{} workflow", r.method)
        } else if r.path.contains("/pulls") {
            format!("{} pull requests", r.method)
        } else {
            format!("{} other", r.method)
        };
        let entry = kinds.entry(kind).or_default();
        entry.0 += 1;
        if r.status == 304 {
            entry.1 += 1;
        }
    }
    kinds
}

pub fn print_github_requests(title: &str, kinds: &BTreeMap<String, (usize, usize)>) {
    println!("{title}:");
    let total: usize = kinds.values().map(|(n, _)| n).sum();
    for (kind, (n, not_modified)) in kinds {
        println!("  {kind:<40} {n:>7}   of which 304: {not_modified}");
    }
    println!("  {:<40} {total:>7}", "total");
}

/// A field of /proc/self/status in KiB (`VmRSS:` now, `VmHWM:` the peak).
pub fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(field)).map(str::to_string))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// The controller's own count of status writes of `kind` so far: unlike the API server's,
/// not mixed with other clients' (another benchmark running at the same time).
pub fn own_status_writes(metrics: &backup_warden::report::metrics::Metrics, kind: &str) -> u64 {
    metrics.status_writes.with_label_values(&[kind]).get()
}

/// The API server's count of status PATCHes of `resource` (plural) so far, by every client.
pub async fn status_writes(client: &kube::Client, resource: &str) -> f64 {
    api_requests(client, |l| {
        l.contains(&format!("resource=\"{resource}\""))
            && l.contains("subresource=\"status\"")
            && (l.contains("verb=\"PATCH\"") || l.contains("verb=\"APPLY\""))
    })
    .await
}

/// The API server's count of LISTs (pages) of `resource` (plural) so far, by every client.
pub async fn api_lists(client: &kube::Client, resource: &str) -> f64 {
    api_requests(client, |l| {
        l.contains(&format!("resource=\"{resource}\"")) && l.contains("verb=\"LIST\"")
    })
    .await
}

/// The sum of the API server's `apiserver_request_total` series that `counted` picks. Its
/// /metrics text is megabytes long: it is read line by line, so that the benchmark's own
/// reading does not add a buffer of that size to the process it measures.
async fn api_requests(client: &kube::Client, counted: impl Fn(&str) -> bool) -> f64 {
    use futures::{AsyncBufReadExt, TryStreamExt};
    let request = http::Request::get("/metrics").body(Vec::new()).expect("request");
    let Ok(body) = client.request_stream(request).await else {
        return 0.0;
    };
    body.lines()
        .try_fold(0.0, |sum, l| {
            let n = (l.starts_with("apiserver_request_total{") && counted(&l))
                .then(|| l.rsplit(' ').next()?.parse::<f64>().ok())
                .flatten();
            std::future::ready(Ok(sum + n.unwrap_or(0.0)))
        })
        .await
        .unwrap_or(0.0)
}

pub fn calls_by_operation(calls: &ApiCalls) -> BTreeMap<String, (u64, u64)> {
    calls
        .snapshot()
        .into_iter()
        .map(|((service, op), c)| (format!("{service}.{op}"), (c.calls, c.errors)))
        .collect()
}

/// The calls made between `before` and `now`, by operation.
/// Prints the status writes of a window: the API server's (every client's) and the
/// controller's own count, with its count before the window (while converging: never 0,
/// so a counter that was not found shows).
pub fn print_status_writes(api_server: f64, own: u64, own_before: u64) {
    println!(
        "status writes in that quiet sweep: {own} by the controller's count ({own_before} before it, while converging); {api_server} by the API server's (every client's: run alone for it to agree)"
    );
}

pub fn print_calls(title: &str, now: &BTreeMap<String, (u64, u64)>, before: &BTreeMap<String, (u64, u64)>) {
    println!("{title}:");
    let mut total = 0;
    for (op, (calls, errors)) in now {
        let (c0, e0) = before.get(op).copied().unwrap_or_default();
        if calls - c0 > 0 || errors - e0 > 0 {
            println!(
                "  {op:<55} {:>7}  throttled or failed {}",
                calls - c0,
                errors - e0
            );
            total += calls - c0;
        }
    }
    println!("  {:<55} {total:>7}", "total");
}

/// The heap profiler, when `BENCH_HEAP_PROFILE=1`: started now, it records allocations
/// until dropped, then writes `path`.
pub fn heap_profiler(path: &str) -> Option<dhat::Profiler> {
    std::env::var("BENCH_HEAP_PROFILE")
        .is_ok_and(|v| v == "1")
        .then(|| {
            dhat::Profiler::builder()
                .file_name(path)
                .trim_backtraces(Some(60))
                .build()
        })
}

/// The global allocator of the in-process benchmarks: dhat's, which passes every
/// allocation to the system allocator (glibc's malloc, as the controller's binary uses)
/// and records them only while a profiler runs; counting the bytes in use and their peak,
/// so that a run can tell the heap the controller holds from the RSS malloc keeps for it.
pub struct CountingAlloc;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: usize) {
    let now = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is passed on unchanged.
        let p = unsafe { dhat::Alloc.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as for alloc.
        unsafe { dhat::Alloc.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for alloc.
        let p = unsafe { dhat::Alloc.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        p
    }
}

/// Heap bytes in use now, and the most in use since the last `reset_heap_peak`.
pub fn heap_bytes() -> (usize, usize) {
    (LIVE.load(Ordering::Relaxed), PEAK.load(Ordering::Relaxed))
}

/// Starts a new peak from what is in use now.
pub fn reset_heap_peak() {
    PEAK.store(LIVE.load(Ordering::Relaxed), Ordering::Relaxed);
}
