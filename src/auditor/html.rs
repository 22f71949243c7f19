//! The report as one self-contained HTML file: inline CSS, inline SVG and one small inline
//! script, nothing fetched, so it opens offline and can be archived as evidence as is.

use std::fmt::Write as _;

use k8s_openapi::jiff::Timestamp;

use super::chart::{self, escape};
use super::model::{Action, CoverageSummary, DayState, Episode, Report, Resource};

/// Readable on screen and on paper; the system font stack, so no font is fetched.
const STYLE: &str = r#"
:root { color-scheme: light; --ok: #2e7d32; --drift: #c62828; --warn: #f2a900; --muted: #5f6b76; --line: #d9dde3; --head: #f1f3f6; }
* { box-sizing: border-box; }
html { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: #1d2329; background: #fff; }
.page { max-width: 1200px; margin: 0 auto; padding: 24px; }
header h1 { margin: 0 0 4px; font-size: 1.7rem; }
header p { margin: 2px 0; color: var(--muted); }
h2 { margin: 2.4rem 0 .8rem; padding-bottom: 4px; border-bottom: 2px solid var(--line); }
h3 { margin: 1.6rem 0 .4rem; }
h4 { margin: 1rem 0 .2rem; font-size: 1rem; }
.callout { border-left: 6px solid; border-radius: 4px; padding: 10px 14px; margin: 12px 0; }
.callout.ok { border-color: var(--ok); background: #e8f5e9; }
.callout.warn { border-color: var(--warn); background: #fff4d6; }
.callout p { margin: 4px 0; }
.callout ul { margin: 4px 0; padding-left: 1.2rem; }
.counts { display: flex; flex-wrap: wrap; gap: 12px; margin: 16px 0; padding: 0; }
.counts div { border: 1px solid var(--line); border-radius: 6px; padding: 8px 14px; min-width: 150px; }
.counts dt { color: var(--muted); font-size: .85rem; }
.counts dd { margin: 0; font-size: 1.4rem; font-weight: 600; }
table { border-collapse: collapse; width: 100%; margin: 8px 0 16px; font-size: .9rem; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line); vertical-align: top; overflow-wrap: break-word; }
th { position: sticky; top: 0; z-index: 1; background: var(--head); white-space: nowrap; }
tbody tr:nth-child(even) { background: #f8f9fb; }
th.num, td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.nowrap { white-space: nowrap; }
code { font: .85em ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: var(--head); padding: 1px 4px; border-radius: 3px; }
.badge { display: inline-block; padding: 0 8px; border-radius: 10px; font-size: .8rem; color: #fff; white-space: nowrap; }
.badge.compliant { background: var(--ok); }
.badge.drift, .badge.failed { background: var(--drift); }
.badge.unknown { background: #757575; }
.open { color: var(--drift); font-weight: 600; }
.muted { color: var(--muted); }
.filter { margin: 16px 0 4px; }
.filter input { font: inherit; padding: 4px 8px; width: 24rem; max-width: 100%; }
figure { margin: 0; }
figure svg, .map svg { display: block; max-width: 100%; height: auto; }
figcaption { color: var(--muted); font-size: .85rem; }
svg.strip { display: block; }
footer { margin-top: 3rem; padding-top: 8px; border-top: 1px solid var(--line); color: var(--muted); font-size: .85rem; }
[hidden] { display: none !important; }
@media print {
  .filter { display: none !important; }
  .page { max-width: none; padding: 0; }
  body { font-size: 10pt; }
  th { position: static; }
  tr, .callout, figure { break-inside: avoid; }
  h2, h3, h4 { break-after: avoid; }
  a { color: inherit; text-decoration: none; }
}
"#;

/// The resource filter. It must never throw nor log (a headless test watches the console),
/// so every element is looked up defensively and any error is swallowed: the report reads
/// the same without it. It ends by marking the document ready.
const SCRIPT: &str = r#"
(function () {
  try {
    var input = document.getElementById("resource-filter");
    var table = document.getElementById("resource-table");
    var count = document.getElementById("filter-count");
    var box = document.getElementById("filter");
    if (input && table) {
      var rows = table.querySelectorAll("tr[data-resource]");
      var apply = function () {
        var words = String(input.value || "").toLowerCase().split(/\s+/).filter(function (w) { return w.length > 0; });
        var shown = 0;
        for (var i = 0; i < rows.length; i++) {
          var text = rows[i].getAttribute("data-filter") || "";
          var match = words.every(function (w) { return text.indexOf(w) !== -1; });
          rows[i].hidden = !match;
          if (match) { shown++; }
        }
        if (count) { count.textContent = words.length ? shown + " of " + rows.length + " shown" : ""; }
      };
      input.addEventListener("input", apply);
      apply();
      if (box) { box.hidden = false; }
    }
  } catch (e) {
    // Filtering is a convenience; the report is complete without it.
  }
  document.documentElement.dataset.ready = "1";
})();
"#;

/// The whole report as one HTML5 document.
pub fn render(report: &Report) -> String {
    let mut html = String::with_capacity(64 * 1024);
    head(&mut html, report);
    html.push_str("<body>\n<div class=\"page\">\n");
    header(&mut html, report);
    html.push_str("<main>\n");
    summary(&mut html, report);
    timeline(&mut html, report);
    coverage(&mut html, &report.coverage);
    map(&mut html, report);
    resource_timelines(&mut html, &report.resources);
    html.push_str("</main>\n");
    footer(&mut html, report);
    html.push_str("</div>\n<script>");
    html.push_str(SCRIPT);
    html.push_str("</script>\n</body>\n</html>\n");
    html
}

fn title(report: &Report) -> String {
    format!("Backup evidence {} \u{2013} {}", report.from, report.to)
}

fn head(html: &mut String, report: &Report) {
    let _ = write!(
        html,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"generator\" content=\"backup-warden report\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n",
        escape(&title(report))
    );
}

fn header(html: &mut String, report: &Report) {
    let _ = write!(
        html,
        "<header>\n<h1>{}</h1>\n<p>Generated at {}</p>\n<p>Evidence read from <code>{}</code></p>\n</header>\n",
        escape(&title(report)),
        time(&report.generated_at),
        escape(&report.source)
    );
}

/// What an auditor reads first: can the evidence be trusted, what it covers, and every
/// resource in one table.
fn summary(html: &mut String, report: &Report) {
    html.push_str("<section id=\"summary\">\n<h2>Summary</h2>\n");
    tamper_evidence(html, report);
    counts(html, report);
    gaps(html, report);
    let _ = writeln!(
        html,
        "<p><strong>Live state:</strong> {}</p>",
        escape(&report.live_state)
    );
    resource_table(html, report);
    html.push_str("</section>\n");
}

fn tamper_evidence(html: &mut String, report: &Report) {
    let evidence = &report.tamper_evidence;
    let (class, verdict) = if evidence.tamper_evident {
        ("ok", "The evidence is tamper-evident.")
    } else {
        ("warn", "The evidence is not shown to be tamper-evident.")
    };
    let lock = evidence.bucket_object_lock.as_deref().unwrap_or("none");
    let _ = write!(
        html,
        "<div id=\"tamper-evidence\" class=\"callout {class}\" role=\"note\">\n\
         <p><strong>{verdict}</strong> {}</p>\n\
         <p class=\"muted\">Bucket Object Lock default retention: {}. Evidence objects read: {}, \
         of which {} under a compliance-mode retention.</p>\n</div>\n",
        escape(&evidence.statement),
        escape(lock),
        evidence.objects,
        evidence.objects_locked
    );
}

fn counts(html: &mut String, report: &Report) {
    let resources = &report.resources;
    let compliant = resources.iter().filter(|r| compliant_all_period(r)).count();
    let drifted = resources.iter().filter(|r| had_drift(r)).count();
    html.push_str("<dl class=\"counts\">\n");
    for (label, value) in [
        ("Resources", resources.len()),
        ("Compliant over the whole period", compliant),
        ("With drift", drifted),
        ("Evidence records read", report.records),
        ("Gaps in the evidence", report.gaps.len()),
    ] {
        let _ = writeln!(html, "<div><dt>{label}</dt><dd>{value}</dd></div>");
    }
    html.push_str("</dl>\n");
}

/// Compliant on every day it existed, and it existed on at least one.
fn compliant_all_period(resource: &Resource) -> bool {
    let mut existed = resource
        .days
        .iter()
        .filter(|d| **d != DayState::Absent)
        .peekable();
    existed.peek().is_some() && existed.all(|d| *d == DayState::Compliant)
}

fn had_drift(resource: &Resource) -> bool {
    !resource.episodes.is_empty() || resource.days.contains(&DayState::Drift)
}

/// Records the controller says it dropped: an auditor must see these before trusting counts.
fn gaps(html: &mut String, report: &Report) {
    if report.gaps.is_empty() {
        return;
    }
    let _ = write!(
        html,
        "<div id=\"gaps\" class=\"callout warn\" role=\"alert\">\n<p><strong>{} gap{} in the evidence:</strong> \
         the controller reports records it could not keep.</p>\n<ul>\n",
        report.gaps.len(),
        if report.gaps.len() == 1 { "" } else { "s" }
    );
    for gap in &report.gaps {
        let _ = writeln!(
            html,
            "<li>{} to {}: {} record{} dropped by replica <code>{}</code></li>",
            time(&gap.from),
            time(&gap.to),
            gap.dropped,
            if gap.dropped == 1 { "" } else { "s" },
            escape(&gap.replica)
        );
    }
    html.push_str("</ul>\n</div>\n");
}

fn resource_key(resource: &Resource) -> String {
    format!("{}/{}/{}", resource.kind, resource.namespace, resource.name)
}

/// The anchor of a resource's detail in the per-resource timeline section.
fn detail_id(index: usize) -> String {
    format!("resource-{index}")
}

fn has_detail(resource: &Resource) -> bool {
    !resource.episodes.is_empty() || !resource.actions.is_empty()
}

fn resource_table(html: &mut String, report: &Report) {
    html.push_str(
        "<div id=\"filter\" class=\"filter\" hidden>\n<label for=\"resource-filter\">Filter resources</label> \
         <input id=\"resource-filter\" type=\"search\" placeholder=\"kind, name, subject, mode or state\" \
         autocomplete=\"off\"> <span id=\"filter-count\" class=\"muted\" aria-live=\"polite\"></span>\n</div>\n\
         <table id=\"resource-table\">\n<thead><tr><th>Kind</th><th>Resource</th><th>Subject</th>\
         <th>Mode</th><th class=\"num\">Compliance</th><th class=\"num\">Drift episodes</th>\
         <th>Longest heal</th><th>Restore drills</th><th>Current</th><th>Days</th></tr></thead>\n<tbody>\n",
    );
    if report.resources.is_empty() {
        html.push_str("<tr><td colspan=\"10\" class=\"muted\">No resources in the period.</td></tr>\n");
    }
    for (index, resource) in report.resources.iter().enumerate() {
        resource_row(html, report, index, resource);
    }
    html.push_str("</tbody>\n</table>\n");
}

/// The restore drills of the period, from the actions: how many succeeded and failed, and
/// the last success ("—" without drills).
fn restore_drills(resource: &Resource) -> String {
    let of = |name: &str| {
        resource
            .actions
            .iter()
            .filter(|a| a.action == name)
            .collect::<Vec<_>>()
    };
    let (succeeded, failed) = (of("DrillSucceeded"), of("DrillFailed"));
    if succeeded.is_empty() && failed.is_empty() {
        return "\u{2014}".to_string();
    }
    let last = succeeded
        .last()
        .map(|a| format!(", last passed {}", a.at.get(..10).unwrap_or(&a.at)))
        .unwrap_or_default();
    format!("{} passed, {} failed{last}", succeeded.len(), failed.len())
}

fn resource_row(html: &mut String, report: &Report, index: usize, resource: &Resource) {
    let object = format!("{}/{}", resource.namespace, resource.name);
    // Linked to its detail only when there is one.
    let object_cell = if has_detail(resource) {
        format!("<a href=\"#{}\">{}</a>", detail_id(index), escape(&object))
    } else {
        escape(&object)
    };
    let current = resource.current.as_str();
    let filter = format!(
        "{} {} {} {} {}",
        resource.kind, object, resource.subject, resource.mode, current
    )
    .to_lowercase();
    let _ = writeln!(
        html,
        "<tr data-resource=\"{}\" data-compliance-percent=\"{}\" data-filter=\"{}\">\
         <td>{}</td><td class=\"nowrap\">{object_cell}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td>\
         <td class=\"num\">{}</td><td class=\"nowrap\">{}</td><td class=\"nowrap\">{}</td><td><span class=\"badge {current}\">{current}</span></td>\
         <td>{}</td></tr>",
        escape(&resource_key(resource)),
        resource
            .compliance_percent
            .map(|p| format!("{p:.1}"))
            .unwrap_or_default(),
        escape(&filter),
        escape(&resource.kind),
        escape(&resource.subject),
        escape(&resource.mode),
        percent(resource.compliance_percent),
        resource.episodes.len(),
        longest_heal(&resource.episodes),
        escape(&restore_drills(resource)),
        chart::resource_strip(&resource.days, &report.from)
    );
}

/// One decimal and a percent sign, or a dash when it existed on no day.
fn percent(value: Option<f64>) -> String {
    value.map_or_else(|| String::from("\u{2014}"), |p| format!("{p:.1} %"))
}

/// The longest time to heal of the resolved episodes, and how many are still open.
fn longest_heal(episodes: &[Episode]) -> String {
    let longest = episodes
        .iter()
        .filter_map(|e| e.heal_seconds.map(|s| (s, e.resolved_by_attestation)))
        .max_by(|a, b| a.0.total_cmp(&b.0));
    let open = episodes.iter().filter(|e| e.resolved_at.is_none()).count();
    let open = (open > 0).then(|| format!("<span class=\"open\">{open} open</span>"));
    match (longest, open) {
        (Some((seconds, upper_bound)), Some(open)) => format!("{} {open}", heal_text(seconds, upper_bound)),
        (Some((seconds, upper_bound)), None) => heal_text(seconds, upper_bound),
        (None, Some(open)) => open,
        (None, None) => String::from("\u{2014}"),
    }
}

/// A heal time; "≤" when only a later attestation showed it resolved (an upper bound).
fn heal_text(seconds: f64, upper_bound: bool) -> String {
    let bound = if upper_bound { "\u{2264} " } else { "" };
    format!("{bound}{}", human_duration(seconds))
}

/// A duration as people say it, to the two largest units: "4 min 12 s", "3 h 5 min",
/// "2 d 4 h". Rounded to the second; a unit that is zero is left out of the second place.
pub(crate) fn human_duration(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return String::from("\u{2014}");
    }
    // A fix within one reconcile takes well under a second: say so rather than "0 s".
    if seconds < 1.0 {
        return format!("{} ms", (seconds * 1000.0).round() as u64);
    }
    // Saturates for absurd values, which is as good as any answer for them.
    let total = seconds.round() as u64;
    let (days, hours, minutes, secs) = (total / 86_400, total / 3_600 % 24, total / 60 % 60, total % 60);
    let (big, small) = if days > 0 {
        ((days, "d"), (hours, "h"))
    } else if hours > 0 {
        ((hours, "h"), (minutes, "min"))
    } else if minutes > 0 {
        ((minutes, "min"), (secs, "s"))
    } else {
        return format!("{secs} s");
    };
    if small.0 == 0 {
        format!("{} {}", big.0, big.1)
    } else {
        format!("{} {} {} {}", big.0, big.1, small.0, small.1)
    }
}

/// A timestamp for people, with its machine-readable form: RFC 3339 shown in UTC; any
/// other text shown as is.
fn time(value: &str) -> String {
    match value.parse::<Timestamp>() {
        Ok(ts) => format!(
            "<time datetime=\"{}\">{}</time>",
            escape(value),
            ts.strftime("%Y-%m-%d %H:%M:%S UTC")
        ),
        Err(_) => escape(value),
    }
}

fn timeline(html: &mut String, report: &Report) {
    let _ = write!(
        html,
        "<section id=\"timeline-chart\">\n<h2>Compliance over the period</h2>\n<figure>\n{}\n\
         <figcaption>Resources per day by state, {} to {}. Hover a bar for its numbers.</figcaption>\n\
         </figure>\n</section>\n",
        chart::compliance_timeline(&report.days),
        escape(&report.from),
        escape(&report.to)
    );
}

fn coverage(html: &mut String, coverage: &[CoverageSummary]) {
    html.push_str("<section id=\"coverage\">\n<h2>Coverage</h2>\n");
    if coverage.is_empty() {
        html.push_str("<p class=\"muted\">No BackupCoverage was attested in the period.</p>\n");
    }
    for summary in coverage {
        coverage_summary(html, summary);
    }
    html.push_str("</section>\n");
}

fn coverage_summary(html: &mut String, summary: &CoverageSummary) {
    let _ = write!(
        html,
        "<article class=\"coverage\" data-coverage=\"{}\">\n<h3>{} <small class=\"muted\">adopts into \
         namespace {}</small></h3>\n<ul>\n",
        escape(&summary.name),
        escape(&summary.name),
        escape(&summary.namespace)
    );
    for line in &summary.counts {
        let _ = writeln!(html, "<li>{}</li>", escape(line));
    }
    html.push_str("</ul>\n");
    if summary.exemptions.is_empty() {
        html.push_str("<p class=\"muted\">no exemptions</p>\n");
    } else {
        html.push_str(
            "<table class=\"exemptions\">\n<thead><tr><th>Exempt</th><th>Reason</th></tr></thead>\n<tbody>\n",
        );
        for exemption in &summary.exemptions {
            let _ = writeln!(
                html,
                "<tr data-exemption><td>{}</td><td>{}</td></tr>",
                escape(&exemption.what),
                escape(&exemption.reason)
            );
        }
        html.push_str("</tbody>\n</table>\n");
    }
    html.push_str("</article>\n");
}

fn map(html: &mut String, report: &Report) {
    let _ = write!(
        html,
        "<section id=\"map\">\n<h2>Data-flow map</h2>\n<p>Each protected resource (RDS instance, \
         GitHub repository, CloudTrail trail) points to where its backups or logs are kept; each is \
         coloured by its last attested state: compliant, drift or unknown.</p>\n\
         <div class=\"map\">\n{}\n</div>\n</section>\n",
        crate::estate::svg::render(&report.estate)
    );
}

/// Each resource's drift and what the controller did about it, for the resources with any.
fn resource_timelines(html: &mut String, resources: &[Resource]) {
    html.push_str("<section id=\"resources\">\n<h2>Timeline per resource</h2>\n");
    if !resources.iter().any(has_detail) {
        html.push_str("<p class=\"muted\">No drift and no actions in the period.</p>\n");
    }
    for (index, resource) in resources.iter().enumerate().filter(|(_, r)| has_detail(r)) {
        let _ = write!(
            html,
            "<article class=\"resource\" id=\"{}\" data-resource-detail=\"{}\">\n<h3>{} {}/{}</h3>\n\
             <p class=\"muted\">{}</p>\n",
            detail_id(index),
            escape(&resource_key(resource)),
            escape(&resource.kind),
            escape(&resource.namespace),
            escape(&resource.name),
            escape(&resource.subject)
        );
        episodes(html, &resource.episodes);
        actions(html, &resource.actions);
        html.push_str("</article>\n");
    }
    html.push_str("</section>\n");
}

fn episodes(html: &mut String, episodes: &[Episode]) {
    if episodes.is_empty() {
        return;
    }
    html.push_str(
        "<h4>Drift episodes</h4>\n<table class=\"episodes\">\n<thead><tr><th>Check</th><th>Found at</th>\
         <th>What was found</th><th>Resolved at</th><th>What was seen</th><th class=\"num\">Time to heal</th>\
         </tr></thead>\n<tbody>\n",
    );
    for episode in episodes {
        episode_row(html, episode);
    }
    html.push_str("</tbody>\n</table>\n");
}

fn episode_row(html: &mut String, episode: &Episode) {
    let resolved_at = match &episode.resolved_at {
        Some(at) => time(at),
        None => String::from("<span class=\"open\">open</span>"),
    };
    let heal = match (episode.heal_seconds, &episode.resolved_at) {
        (Some(seconds), _) => heal_text(seconds, episode.resolved_by_attestation),
        (None, None) => String::from("<span class=\"open\">open</span>"),
        (None, Some(_)) => String::from("\u{2014}"),
    };
    let _ = writeln!(
        html,
        "<tr data-episode data-check=\"{}\" data-heal-seconds=\"{}\"><td><code>{}</code></td>\
         <td class=\"nowrap\">{}</td><td><code>{}</code> {}</td><td class=\"nowrap\">{resolved_at}</td>\
         <td>{}</td><td class=\"num\">{heal}</td></tr>",
        escape(&episode.check),
        episode.heal_seconds.map(|s| s.to_string()).unwrap_or_default(),
        escape(&episode.check),
        time(&episode.found_at),
        escape(&episode.reason),
        escape(&episode.found),
        escape(episode.resolved.as_deref().unwrap_or(""))
    );
}

fn actions(html: &mut String, actions: &[Action]) {
    if actions.is_empty() {
        return;
    }
    html.push_str(
        "<h4>Actions</h4>\n<table class=\"actions\">\n<thead><tr><th>At</th><th>Action</th>\
         <th>Description</th><th>Failed</th><th>Request ids</th></tr></thead>\n<tbody>\n",
    );
    for action in actions {
        let failed = if action.failed {
            "<span class=\"badge failed\">failed</span>"
        } else {
            "no"
        };
        let ids = if action.request_ids.is_empty() {
            String::from("\u{2014}")
        } else {
            let codes: Vec<String> = action
                .request_ids
                .iter()
                .map(|id| format!("<code>{}</code>", escape(id)))
                .collect();
            codes.join("<br>")
        };
        let _ = writeln!(
            html,
            "<tr data-action=\"{}\"><td class=\"nowrap\">{}</td><td><code>{}</code></td><td>{}</td>\
             <td>{failed}</td><td>{ids}</td></tr>",
            escape(&action.action),
            time(&action.at),
            escape(&action.action),
            escape(&action.description)
        );
    }
    html.push_str("</tbody>\n</table>\n");
}

fn footer(html: &mut String, report: &Report) {
    let versions = if report.controller_versions.is_empty() {
        String::from("unknown")
    } else {
        escape(&report.controller_versions.join(", "))
    };
    let _ = write!(
        html,
        "<footer>\n<p>Controller versions: {versions} \u{b7} {} evidence records \u{b7} \
         generated by backup-warden report</p>\n</footer>\n",
        report.records
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auditor::model::{DayTotals, Exemption, Gap, TamperEvidence};
    use crate::estate::Compliance;
    use DayState::*;

    const INJECTED: &str = "<script>alert('x')</script>";

    #[test]
    fn the_restore_drills_column_counts_passed_and_failed_drills() {
        let mut r = report().resources.remove(0);
        assert_eq!(restore_drills(&r), "\u{2014}", "no drills");
        for (at, action) in [
            ("2026-01-01T05:00:00Z", "DrillSucceeded"),
            ("2026-01-02T05:00:00Z", "DrillFailed"),
            ("2026-01-03T05:00:00Z", "DrillSucceeded"),
        ] {
            r.actions.push(Action {
                at: at.into(),
                action: action.into(),
                description: String::new(),
                failed: action == "DrillFailed",
                request_ids: vec![],
            });
        }
        assert_eq!(restore_drills(&r), "2 passed, 1 failed, last passed 2026-01-03");
    }

    fn report() -> Report {
        let orders = Resource {
            kind: "BackedUpDatabase".into(),
            namespace: "payments".into(),
            name: "orders-db".into(),
            subject: "RDS instance orders-db in us-east-1 (account 123456789012)".into(),
            mode: "Enforce".into(),
            days: vec![Compliant, Compliant, Drift, Compliant, Compliant],
            compliance_percent: Some(80.0),
            current: Compliance::Compliant,
            episodes: vec![Episode {
                check: "RetentionCompliant".into(),
                found_at: "2026-01-03T10:00:00Z".into(),
                reason: "RetentionTooShort".into(),
                found: format!("retention 1 day {INJECTED} & falling"),
                resolved_at: Some("2026-01-03T10:04:12Z".into()),
                resolved: Some("retention 35 days".into()),
                heal_seconds: Some(252.0),
                resolved_by_attestation: false,
            }],
            actions: vec![Action {
                at: "2026-01-03T10:00:05Z".into(),
                action: "RetentionRaised".into(),
                description: "Raised the backup retention from 1 to 35 days".into(),
                failed: false,
                request_ids: vec![
                    "ModifyDBInstance 0b1c2d3e-aaaa".into(),
                    "DescribeDBInstances 4f5a6b7c-bbbb".into(),
                ],
            }],
        };
        let api = Resource {
            kind: "BackedUpRepository".into(),
            namespace: "platform".into(),
            name: "api".into(),
            subject: "GitHub repository acme/api".into(),
            mode: "Audit".into(),
            days: vec![Absent, NoEvidence, Compliant, Drift, Drift],
            compliance_percent: Some(25.0),
            current: Compliance::Drift,
            episodes: vec![Episode {
                check: "WorkflowPresent".into(),
                found_at: "2026-01-04T08:00:00Z".into(),
                reason: "WorkflowMissing".into(),
                found: "no .github/workflows/backup-daily.yml".into(),
                resolved_at: None,
                resolved: None,
                heal_seconds: None,
                resolved_by_attestation: false,
            }],
            actions: vec![],
        };
        let day = |date: &str, compliant, drift, no_evidence| DayTotals {
            date: date.into(),
            compliant,
            drift,
            no_evidence,
            suspended: 0,
        };
        Report {
            from: "2026-01-01".into(),
            to: "2026-01-05".into(),
            generated_at: "2026-01-06T07:00:00Z".into(),
            source: "s3://acme-evidence/backup-warden".into(),
            tamper_evidence: TamperEvidence {
                tamper_evident: true,
                statement: "Object Lock in compliance mode (400 days) on every object read.".into(),
                bucket_object_lock: Some("COMPLIANCE 400 days".into()),
                objects: 40,
                objects_locked: 40,
            },
            records: 1234,
            controller_versions: vec!["0.1.0".into(), "0.2.0".into()],
            gaps: vec![Gap {
                from: "2026-01-02T03:00:00Z".into(),
                to: "2026-01-02T03:10:00Z".into(),
                dropped: 17,
                replica: "backup-warden-0".into(),
            }],
            live_state: "Live state read from the cluster at 2026-01-06T07:00:00Z.".into(),
            resources: vec![orders, api],
            days: vec![
                day("2026-01-01", 1, 0, 0),
                day("2026-01-02", 1, 0, 1),
                day("2026-01-03", 1, 1, 0),
                day("2026-01-04", 1, 1, 0),
                day("2026-01-05", 1, 1, 0),
            ],
            coverage: vec![CoverageSummary {
                name: "estate".into(),
                namespace: "backups".into(),
                counts: vec!["RDS instances 3 in scope: 1 declared, 2 exempt, 0 undeclared".into()],
                exemptions: vec![
                    Exemption {
                        what: "RDS instance scratch-db".into(),
                        reason: "Scratch & test data".into(),
                    },
                    Exemption {
                        what: "RDS instance legacy-db".into(),
                        reason: "Retired in March".into(),
                    },
                ],
            }],
            estate: Default::default(),
        }
    }

    /// The text of the element that starts at the first match of `start`, to its `end`.
    fn between<'a>(html: &'a str, start: &str, end: &str) -> &'a str {
        let from = html.find(start).unwrap_or_else(|| panic!("{start} missing"));
        let rest = &html[from..];
        &rest[..rest
            .find(end)
            .unwrap_or_else(|| panic!("{end} missing after {start}"))]
    }

    #[test]
    fn sections_come_in_order() {
        let html = render(&report());
        assert!(html.starts_with("<!doctype html>"));
        let hooks = [
            "<header>",
            "id=\"summary\"",
            "id=\"timeline-chart\"",
            "id=\"coverage\"",
            "id=\"map\"",
            "id=\"resources\"",
            "<footer>",
        ];
        let positions: Vec<usize> = hooks
            .iter()
            .map(|h| html.find(h).unwrap_or_else(|| panic!("{h} missing")))
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
        for hook in &hooks[1..6] {
            assert_eq!(html.matches(hook).count(), 1, "{hook}");
        }
        assert!(html.contains("<h1>Backup evidence 2026-01-01 \u{2013} 2026-01-05</h1>"));
        assert!(html.contains("<h2>Summary</h2>"));
        assert!(html.contains("<h2>Compliance over the period</h2>"));
        assert!(html.contains("<h2>Timeline per resource</h2>"));
    }

    #[test]
    fn every_resource_has_its_row_with_its_compliance() {
        let html = render(&report());
        assert_eq!(html.matches("data-resource=\"").count(), 2);
        for (key, percent, shown) in [
            ("BackedUpDatabase/payments/orders-db", "80.0", "80.0 %"),
            ("BackedUpRepository/platform/api", "25.0", "25.0 %"),
        ] {
            let row = between(&html, &format!("<tr data-resource=\"{key}\""), "</tr>");
            assert!(
                row.contains(&format!("data-compliance-percent=\"{percent}\"")),
                "{row}"
            );
            assert!(row.contains(&format!("<td class=\"num\">{shown}</td>")), "{row}");
            assert_eq!(row.matches("class=\"cell\"").count(), 5, "{row}");
        }
        let table = between(&html, "<table id=\"resource-table\">", "</table>");
        assert!(table.contains("<span class=\"badge drift\">drift</span>"));
        assert!(table.contains("4 min 12 s"));
        let api = between(
            &html,
            "<tr data-resource=\"BackedUpRepository/platform/api\"",
            "</tr>",
        );
        assert!(api.contains("<td class=\"nowrap\"><span class=\"open\">1 open</span></td>"));
    }

    #[test]
    fn a_resource_that_never_existed_shows_a_dash() {
        let mut report = report();
        report.resources[1].compliance_percent = None;
        let html = render(&report);
        let row = between(
            &html,
            "<tr data-resource=\"BackedUpRepository/platform/api\"",
            "</tr>",
        );
        assert!(row.contains("data-compliance-percent=\"\""));
        assert!(row.contains("<td class=\"num\">\u{2014}</td>"));
    }

    #[test]
    fn summary_counts_and_tamper_callout() {
        let html = render(&report());
        let summary = between(&html, "id=\"summary\"", "id=\"resource-table\"");
        assert!(summary.contains("class=\"callout ok\""));
        assert!(summary.contains("Object Lock in compliance mode (400 days)"));
        for (label, value) in [
            ("Resources", 2),
            ("Compliant over the whole period", 0),
            ("With drift", 2),
            ("Evidence records read", 1234),
            ("Gaps in the evidence", 1),
        ] {
            assert!(
                summary.contains(&format!("<dt>{label}</dt><dd>{value}</dd>")),
                "{label}"
            );
        }
        let gaps = between(summary, "id=\"gaps\"", "</div>");
        assert!(gaps.contains("callout warn"));
        assert!(gaps.contains("17 records dropped by replica <code>backup-warden-0</code>"));
        assert!(summary.contains("Live state read from the cluster"));
    }

    #[test]
    fn untrusted_evidence_is_amber_and_no_gaps_no_callout() {
        let mut report = report();
        report.tamper_evidence.tamper_evident = false;
        report.gaps.clear();
        report.resources[1].days = vec![Absent, Compliant, Compliant, Compliant, Compliant];
        report.resources[1].episodes.clear();
        let html = render(&report);
        assert!(html.contains("id=\"tamper-evidence\" class=\"callout warn\""));
        assert!(!html.contains("callout ok"));
        assert!(!html.contains("id=\"gaps\""));
        assert!(html.contains("<dt>Compliant over the whole period</dt><dd>1</dd>"));
    }

    #[test]
    fn episode_rows_carry_their_check_and_heal_time() {
        let html = render(&report());
        let section = between(&html, "id=\"resources\"", "</section>");
        assert_eq!(section.matches("<tr data-episode ").count(), 2);
        let healed = between(
            section,
            "<tr data-episode data-check=\"RetentionCompliant\"",
            "</tr>",
        );
        assert!(healed.contains("data-heal-seconds=\"252\""));
        assert!(healed.contains(">4 min 12 s</td>"));
        assert!(healed.contains("<time datetime=\"2026-01-03T10:04:12Z\">2026-01-03 10:04:12 UTC</time>"));
        let open = between(
            section,
            "<tr data-episode data-check=\"WorkflowPresent\"",
            "</tr>",
        );
        assert!(open.contains("data-heal-seconds=\"\""));
        assert!(open.contains(
            "<span class=\"open\">open</span></td><td></td><td class=\"num\"><span class=\"open\">open</span>"
        ));
    }

    #[test]
    fn a_heal_known_from_an_attestation_is_an_upper_bound() {
        let mut report = report();
        report.resources[0].episodes[0].resolved_by_attestation = true;
        let html = render(&report);
        let row = between(
            &html,
            "<tr data-episode data-check=\"RetentionCompliant\"",
            "</tr>",
        );
        assert!(row.contains(">\u{2264} 4 min 12 s</td>"));
        let summary_row = between(&html, "<tr data-resource=\"BackedUpDatabase/", "</tr>");
        assert!(summary_row.contains("\u{2264} 4 min 12 s"));
    }

    #[test]
    fn actions_list_their_request_ids() {
        let html = render(&report());
        let row = between(&html, "<tr data-action=\"RetentionRaised\"", "</tr>");
        assert!(row.contains(
            "<code>ModifyDBInstance 0b1c2d3e-aaaa</code><br><code>DescribeDBInstances 4f5a6b7c-bbbb</code>"
        ));
        assert!(row.contains("<td>no</td>"));
        assert!(row.contains("<time datetime=\"2026-01-03T10:00:05Z\">"));
        // Only resources with something to show get a detail, and the summary links to it.
        assert_eq!(html.matches("data-resource-detail=").count(), 2);
        assert!(html.contains("<a href=\"#resource-0\">payments/orders-db</a>"));
    }

    #[test]
    fn injected_markup_appears_only_escaped() {
        let html = render(&report());
        assert!(!html.contains(INJECTED));
        assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; falling"));
        assert!(html.contains("Scratch &amp; test data"));
        // The only script element is the report's own.
        assert_eq!(html.matches("<script").count(), 1);
        assert_eq!(html.matches("</script>").count(), 1);
    }

    /// Every `http://` or `https://` must be the SVG namespace or inside an `xmlns`
    /// attribute: the file references nothing outside itself.
    #[test]
    fn no_external_urls() {
        let html = render(&report());
        let mut seen_namespace = false;
        for scheme in ["http://", "https://"] {
            for (at, _) in html.match_indices(scheme) {
                let rest = &html[at..];
                let before = &html[..at];
                let in_xmlns = before
                    .rfind(' ')
                    .map(|space| &before[space + 1..])
                    .is_some_and(|attr| {
                        let name = attr.strip_suffix("=\"").unwrap_or("");
                        name == "xmlns"
                            || name.strip_prefix("xmlns:").is_some_and(|p| {
                                !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric())
                            })
                    });
                let svg_namespace = rest.starts_with("http://www.w3.org/2000/svg\"");
                assert!(
                    in_xmlns || svg_namespace,
                    "external URL at {at}: {}",
                    &rest[..rest.len().min(60)]
                );
                seen_namespace |= svg_namespace;
            }
        }
        assert!(seen_namespace, "the charts declare the SVG namespace");
        for reference in ["src=", "@import", "url(http", "<link rel=\"stylesheet\""] {
            assert!(!html.contains(reference), "{reference}");
        }
    }

    #[test]
    fn the_timeline_chart_has_a_bar_per_day() {
        let html = render(&report());
        let section = between(&html, "id=\"timeline-chart\"", "</section>");
        assert_eq!(section.matches("<g class=\"bar\"").count(), 5);
        assert!(section.contains("role=\"img\""));
    }

    #[test]
    fn coverage_lists_counts_and_exemptions() {
        let html = render(&report());
        let section = between(&html, "id=\"coverage\"", "</section>");
        assert!(section.contains("<li>RDS instances 3 in scope: 1 declared, 2 exempt, 0 undeclared</li>"));
        assert_eq!(section.matches("<tr data-exemption>").count(), 2);
        assert!(section.contains("<td>RDS instance legacy-db</td><td>Retired in March</td>"));
        assert!(!section.contains("no exemptions"));

        let mut report = report();
        report.coverage[0].exemptions.clear();
        let html = render(&report);
        let section = between(&html, "id=\"coverage\"", "</section>");
        assert!(section.contains("no exemptions"));
        assert!(!section.contains("<table"));
    }

    #[test]
    fn the_map_is_inline() {
        let report = report();
        let html = render(&report);
        let section = between(&html, "id=\"map\"", "</section>");
        assert!(section.contains(&crate::estate::svg::render(&report.estate)));
    }

    #[test]
    fn header_and_footer() {
        let html = render(&report());
        let header = between(&html, "<header>", "</header>");
        assert!(header.contains("<time datetime=\"2026-01-06T07:00:00Z\">2026-01-06 07:00:00 UTC</time>"));
        assert!(header.contains("<code>s3://acme-evidence/backup-warden</code>"));
        let footer = between(&html, "<footer>", "</footer>");
        assert!(footer.contains("0.1.0, 0.2.0"));
        assert!(footer.contains("1234 evidence records"));
        assert!(footer.contains("generated by backup-warden report"));
    }

    #[test]
    fn the_script_filters_and_cannot_log() {
        let html = render(&report());
        let script = between(&html, "<script>", "</script>");
        assert!(!script.contains("console"));
        assert!(script.contains("catch (e)"));
        let ready = script
            .find("document.documentElement.dataset.ready = \"1\"")
            .unwrap();
        assert!(
            ready > script.find("catch (e)").unwrap(),
            "ready is set after the guarded part"
        );
        // The filter is above the resource table, hidden until the script shows it, and
        // hidden on paper.
        assert!(html.find("id=\"resource-filter\"").unwrap() < html.find("id=\"resource-table\"").unwrap());
        assert!(html.contains("<div id=\"filter\" class=\"filter\" hidden>"));
        let print = between(&html, "@media print", "</style>");
        assert!(print.contains(".filter { display: none !important; }"));
    }

    #[test]
    fn the_markup_is_balanced() {
        let html = render(&report());
        for tag in [
            "section", "table", "tbody", "thead", "tr", "article", "div", "ul", "dl", "figure",
        ] {
            let opened =
                html.matches(&format!("<{tag}>")).count() + html.matches(&format!("<{tag} ")).count();
            let closed = html.matches(&format!("</{tag}>")).count();
            assert_eq!(opened, closed, "<{tag}>");
        }
    }

    #[test]
    fn empty_report_still_renders() {
        let html = render(&Report::default());
        assert!(html.contains("No resources in the period."));
        assert!(html.contains("No BackupCoverage was attested in the period."));
        assert!(html.contains("No drift and no actions in the period."));
        assert!(html.contains("Controller versions: unknown"));
        assert!(html.ends_with("</html>\n"));
    }

    #[test]
    fn human_durations() {
        for (seconds, text) in [
            (0.0, "0 ms"),
            (0.0787, "79 ms"),
            (0.4, "400 ms"),
            (59.0, "59 s"),
            (60.0, "1 min"),
            (252.0, "4 min 12 s"),
            (3_599.6, "1 h"),
            (3_600.0, "1 h"),
            (11_100.0, "3 h 5 min"),
            (11_159.0, "3 h 5 min"),
            (86_400.0, "1 d"),
            (187_200.0, "2 d 4 h"),
            (400.0 * 86_400.0, "400 d"),
            (-1.0, "\u{2014}"),
            (f64::NAN, "\u{2014}"),
            (f64::INFINITY, "\u{2014}"),
        ] {
            assert_eq!(human_duration(seconds), text, "{seconds}");
        }
    }

    #[test]
    fn timestamps_that_are_not_rfc3339_are_shown_as_text() {
        assert_eq!(time("yesterday <noon>"), "yesterday &lt;noon&gt;");
        assert_eq!(
            time("2026-01-03T12:00:00+02:00"),
            "<time datetime=\"2026-01-03T12:00:00+02:00\">2026-01-03 10:00:00 UTC</time>"
        );
    }
}
