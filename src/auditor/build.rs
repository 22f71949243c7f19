//! From evidence records to the report: per resource, the drift episodes (found → resolved,
//! with the time to heal), the actions, and a state per day; per coverage, its counts and
//! exemptions; and the estate for the map. Pure.
//!
//! A day counts as compliant for a resource when an attestation shows it looked at that day
//! and no drift of it overlaps the day; a day with drift at any time is a drift day; a day
//! without an attestation is a day without evidence (the controller did not look), and days
//! before the object was created are not counted. Suspended days are not compliant days.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::jiff::{Timestamp, civil::Date, tz::TimeZone};

use super::model::{
    Action, CoverageSummary, DayState, DayTotals, Episode, Exemption, Gap, Report, Resource, TamperEvidence,
};
use crate::{
    api::{BackedUpDatabase, BackedUpRepository, BackupCoverage, RetainedAuditTrail},
    estate::{Compliance, Estate},
    evidence::{Body, CheckState, Record, day, read::instant},
};

/// Where the evidence came from, and what protects it.
pub struct Source {
    /// s3://bucket/prefix.
    pub location: String,
    /// The bucket's Object Lock default retention ("COMPLIANCE 400 days"), if any.
    pub object_lock: Option<String>,
    /// Evidence objects read, and those under a compliance-mode retention still running.
    pub objects: usize,
    pub objects_locked: usize,
    /// Whether today's state was read from the cluster, or why not.
    pub live_state: String,
}

/// The report of `records` (every record once, in time order) for the days `from`..=`to`.
pub fn build(records: &[Record], from: Date, to: Date, source: Source, now: Timestamp) -> Report {
    let mut builder = Builder::new(from, to, now);
    for record in records {
        builder.add(record.clone());
    }
    builder.finish(source)
}

/// The report folded one record at a time, in time order, so that a year of evidence is
/// never held at once: per resource only its latest attestation, its episodes, actions and
/// the days it was attested.
pub struct Builder {
    days: Vec<Date>,
    now: Timestamp,
    records: usize,
    resources: BTreeMap<String, Folded>,
    coverages: BTreeMap<String, Record>,
    gaps: Vec<Gap>,
    versions: BTreeSet<String>,
}

/// What is kept of one resource's records.
#[derive(Default)]
struct Folded {
    object: crate::evidence::ObjectRef,
    /// The latest attestation: its time, mode, conditions and the object's state.
    latest: Option<(String, String, Vec<CheckState>, serde_json::Value)>,
    /// The days an attestation (one that was suspended) shows it was looked at.
    attested: BTreeSet<Date>,
    suspended: BTreeSet<Date>,
    open: BTreeMap<String, Episode>,
    done: Vec<Episode>,
    actions: Vec<Action>,
}

impl Builder {
    pub fn new(from: Date, to: Date, now: Timestamp) -> Self {
        Self {
            days: period(from, to),
            now,
            records: 0,
            resources: BTreeMap::new(),
            coverages: BTreeMap::new(),
            gaps: Vec::new(),
            versions: BTreeSet::new(),
        }
    }

    /// One record; records must come in time order.
    pub fn add(&mut self, record: Record) {
        self.records += 1;
        if !self.versions.contains(&record.controller.version) {
            self.versions.insert(record.controller.version.clone());
        }
        match (&record.object, &record.body) {
            (None, Body::Gap { dropped, from, to }) => self.gaps.push(Gap {
                from: from.clone(),
                to: to.clone(),
                dropped: *dropped,
                replica: record.controller.replica.clone(),
            }),
            (Some(object), Body::Attestation { .. }) if object.kind == "BackupCoverage" => {
                self.coverages.insert(object.name.clone(), record);
            }
            (Some(object), _) if object.kind != "BackupCoverage" => {
                let folded = self.resources.entry(object.key()).or_default();
                folded.add(record);
            }
            _ => {}
        }
    }

    pub fn finish(self, source: Source) -> Report {
        let mut estate = Estate::default();
        let resources: Vec<Resource> = self
            .resources
            .into_values()
            .map(|folded| folded.finish(&self.days, self.now, &mut estate))
            .collect();
        estate.databases.sort_by(|a, b| a.object.cmp(&b.object));
        estate.repositories.sort_by(|a, b| a.object.cmp(&b.object));
        estate.trails.sort_by(|a, b| a.object.cmp(&b.object));
        Report {
            from: self.days.first().map(Date::to_string).unwrap_or_default(),
            to: self.days.last().map(Date::to_string).unwrap_or_default(),
            generated_at: self.now.to_string(),
            tamper_evidence: tamper_evidence(&source),
            source: source.location,
            records: self.records,
            controller_versions: self.versions.into_iter().collect(),
            gaps: self.gaps,
            live_state: source.live_state,
            days: totals(&self.days, &resources),
            resources,
            coverage: self.coverages.values().filter_map(coverage).collect(),
            estate,
        }
    }
}

impl Folded {
    fn add(&mut self, record: Record) {
        if let Some(object) = &record.object {
            self.object = object.clone();
        }
        let Record { time, body, .. } = record;
        match body {
            Body::Drift {
                check,
                reason,
                message,
            } => {
                self.open
                    .entry(check.clone())
                    .or_insert_with(|| opened(check, &time, reason, message));
            }
            Body::Resolved { check, message } => {
                if let Some(episode) = self.open.remove(&check) {
                    self.done.push(close(episode, &time, &message, false));
                }
            }
            Body::Action {
                action,
                description,
                failed,
                request_ids,
            } => self.actions.push(Action {
                at: time,
                action,
                description,
                failed,
                request_ids,
            }),
            Body::Attestation {
                mode,
                suspended,
                checks,
                state,
            } => {
                self.attested(&time, &checks);
                let day = day(instant(&time));
                self.attested.insert(day);
                if suspended {
                    self.suspended.insert(day);
                }
                self.latest = Some((time, mode, checks, state));
            }
            Body::Gap { .. } => {}
        }
    }

    /// An attestation completes the transitions: a check failing with no drift recorded
    /// opens an episode (found before the period, or not recorded); an open episode's check
    /// passing closes it.
    fn attested(&mut self, time: &str, checks: &[CheckState]) {
        for c in checks.iter().filter(|c| is_check(&c.type_)) {
            match (c.status.as_str(), self.open.contains_key(&c.type_)) {
                ("True", true) => {
                    if let Some(episode) = self.open.remove(&c.type_) {
                        self.done.push(close(episode, time, &c.message, true));
                    }
                }
                ("False", false) => {
                    let episode = opened(c.type_.clone(), time, c.reason.clone(), c.message.clone());
                    self.open.insert(c.type_.clone(), episode);
                }
                _ => {}
            }
        }
    }

    fn finish(self, days: &[Date], now: Timestamp, estate: &mut Estate) -> Resource {
        let Folded {
            object,
            latest,
            attested,
            suspended,
            open,
            mut done,
            actions,
        } = self;
        done.extend(open.into_values());
        done.sort_by(|a, b| (instant(&a.found_at), &a.check).cmp(&(instant(&b.found_at), &b.check)));
        let episodes = done;
        let state = latest.as_ref().map(|l| l.3.clone()).unwrap_or_default();
        let created = state
            .pointer("/metadata/creationTimestamp")
            .and_then(|t| t.as_str())
            .and_then(|t| t.parse::<Timestamp>().ok())
            .map(day);
        let states: Vec<DayState> = days
            .iter()
            .map(|d| day_state(*d, created, (&attested, &suspended), &episodes, now))
            .collect();
        let existed = states.iter().filter(|s| **s != DayState::Absent).count();
        let compliant = states.iter().filter(|s| **s == DayState::Compliant).count();
        let current = current(latest.as_ref().map(|l| (l.0.as_str(), l.2.as_slice())), &episodes);
        let subject = add_to_estate(&object.kind, &state, current, estate);
        Resource {
            kind: object.kind.clone(),
            namespace: object.namespace.clone(),
            name: object.name.clone(),
            subject,
            mode: latest.map(|l| l.1).unwrap_or_default(),
            days: states,
            compliance_percent: (existed > 0).then(|| compliant as f64 * 100.0 / existed as f64),
            current,
            episodes,
            actions,
        }
    }
}

fn opened(check: String, at: &str, reason: String, found: String) -> Episode {
    Episode {
        check,
        found_at: at.to_string(),
        reason,
        found,
        resolved_at: None,
        resolved: None,
        heal_seconds: None,
        resolved_by_attestation: false,
    }
}

fn period(from: Date, to: Date) -> Vec<Date> {
    let mut days = Vec::new();
    let mut day = from;
    while day <= to {
        days.push(day);
        match day.tomorrow() {
            Ok(next) => day = next,
            Err(_) => break,
        }
    }
    days
}

fn tamper_evidence(source: &Source) -> TamperEvidence {
    let compliance = source
        .object_lock
        .as_deref()
        .is_some_and(|lock| lock.starts_with("COMPLIANCE"));
    let all_locked = source.objects > 0 && source.objects_locked == source.objects;
    let statement = match (&source.object_lock, compliance, all_locked) {
        (Some(lock), true, true) => format!(
            "Tamper-evident: the bucket has Object Lock in compliance mode ({lock}) and all {} evidence objects read are under a compliance-mode retention still running, so no one, the account's root user included, can have changed or deleted them.",
            source.objects
        ),
        (Some(lock), true, false) => format!(
            "Not fully tamper-evident: the bucket has Object Lock in compliance mode ({lock}), but only {} of {} evidence objects read are under a compliance-mode retention still running; the others could have been changed.",
            source.objects_locked, source.objects
        ),
        (Some(lock), false, _) => format!(
            "Not tamper-evident: the bucket's Object Lock is in governance mode ({lock}), which users with s3:BypassGovernanceRetention can override."
        ),
        (None, _, _) => "Not tamper-evident: the evidence bucket has no Object Lock default retention, so the evidence objects could have been changed or deleted by anyone allowed to write the bucket.".to_string(),
    };
    TamperEvidence {
        tamper_evident: compliance && all_locked,
        statement,
        bucket_object_lock: source.object_lock.clone(),
        objects: source.objects,
        objects_locked: source.objects_locked,
    }
}

/// The state at the end: in drift while an episode is open; otherwise compliant when the
/// latest attestation says so or a drift was resolved since it.
fn current(latest: Option<(&str, &[CheckState])>, episodes: &[Episode]) -> Compliance {
    if episodes.iter().any(|e| e.resolved_at.is_none()) {
        return Compliance::Drift;
    }
    let Some((attested, checks)) = latest else {
        return Compliance::Unknown;
    };
    let since = instant(attested);
    let resolved_since = episodes
        .iter()
        .filter_map(|e| e.resolved_at.as_deref())
        .any(|at| instant(at) > since);
    match ready_of(checks) {
        Compliance::Compliant => Compliance::Compliant,
        _ if resolved_since => Compliance::Compliant,
        other => other,
    }
}

fn ready_of(checks: &[CheckState]) -> Compliance {
    match checks
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.as_str())
    {
        Some("True") => Compliance::Compliant,
        Some("False") => Compliance::Drift,
        _ => Compliance::Unknown,
    }
}

/// The checks an attestation lists, without the summary conditions.
fn is_check(type_: &str) -> bool {
    !matches!(type_, "Ready" | "Reconciling" | "Stalled")
}

fn close(mut episode: Episode, at: &str, message: &str, by_attestation: bool) -> Episode {
    let took = instant(at)
        .duration_since(instant(&episode.found_at))
        .as_secs_f64();
    episode.resolved_at = Some(at.to_string());
    episode.resolved = Some(message.to_string());
    episode.heal_seconds = Some(took.max(0.0));
    episode.resolved_by_attestation = by_attestation;
    episode
}

fn day_state(
    d: Date,
    created: Option<Date>,
    (attested, suspended): (&BTreeSet<Date>, &BTreeSet<Date>),
    episodes: &[Episode],
    now: Timestamp,
) -> DayState {
    if created.is_some_and(|c| d < c) {
        return DayState::Absent;
    }
    let (start, end) = bounds(d);
    if start > now {
        return DayState::Absent;
    }
    let overlaps = |e: &Episode| {
        let found = instant(&e.found_at);
        let resolved = e.resolved_at.as_deref().map(instant).unwrap_or(now);
        found < end && resolved >= start
    };
    if episodes.iter().any(overlaps) {
        return DayState::Drift;
    }
    if suspended.contains(&d) {
        return DayState::Suspended;
    }
    if attested.contains(&d) {
        return DayState::Compliant;
    }
    DayState::NoEvidence
}

/// The instants a UTC day starts and ends.
fn bounds(d: Date) -> (Timestamp, Timestamp) {
    let start = d
        .to_zoned(TimeZone::UTC)
        .map(|z| z.timestamp())
        .unwrap_or(Timestamp::UNIX_EPOCH);
    let end = d
        .tomorrow()
        .ok()
        .and_then(|t| t.to_zoned(TimeZone::UTC).ok())
        .map(|z| z.timestamp())
        .unwrap_or(Timestamp::MAX);
    (start, end)
}

/// Adds the resource's flow to the estate, coloured by `current`; returns what it protects,
/// in words.
fn add_to_estate(kind: &str, state: &serde_json::Value, current: Compliance, estate: &mut Estate) -> String {
    use crate::estate::{DatabaseFlow, RepositoryFlow, TrailFlow};
    match kind {
        "BackedUpDatabase" => match serde_json::from_value::<BackedUpDatabase>(state.clone()) {
            Ok(db) => {
                let flow = DatabaseFlow {
                    compliance: current,
                    ..DatabaseFlow::from_object(&db)
                };
                let subject = format!(
                    "RDS instance {} in {} (account {}) → {}",
                    flow.instance, flow.region, flow.account, flow.destination_region
                );
                estate.databases.push(flow);
                subject
            }
            Err(_) => "an RDS instance (no attestation read)".into(),
        },
        "BackedUpRepository" => match serde_json::from_value::<BackedUpRepository>(state.clone()) {
            Ok(repo) => {
                let flow = RepositoryFlow {
                    compliance: current,
                    ..RepositoryFlow::from_object(&repo)
                };
                let subject = format!(
                    "repository {} → s3://{}/{}",
                    flow.repository, flow.bucket, flow.prefix
                );
                estate.repositories.push(flow);
                subject
            }
            Err(_) => "a GitHub repository (no attestation read)".into(),
        },
        "RetainedAuditTrail" => match serde_json::from_value::<RetainedAuditTrail>(state.clone()) {
            Ok(trail) => {
                let flow = TrailFlow {
                    compliance: current,
                    ..TrailFlow::from_object(&trail)
                };
                let subject = format!(
                    "CloudTrail trail {} in {} (account {})",
                    flow.trail, flow.region, flow.account
                );
                estate.trails.push(flow);
                subject
            }
            Err(_) => "a CloudTrail trail (no attestation read)".into(),
        },
        other => format!("a {other}"),
    }
}

fn totals(days: &[Date], resources: &[Resource]) -> Vec<DayTotals> {
    days.iter()
        .enumerate()
        .map(|(i, d)| {
            let mut t = DayTotals {
                date: d.to_string(),
                ..DayTotals::default()
            };
            for state in resources.iter().filter_map(|r| r.days.get(i)) {
                match state {
                    DayState::Compliant => t.compliant += 1,
                    DayState::Drift => t.drift += 1,
                    DayState::NoEvidence => t.no_evidence += 1,
                    DayState::Suspended => t.suspended += 1,
                    DayState::Absent => {}
                }
            }
            t
        })
        .collect()
}

fn coverage(record: &Record) -> Option<CoverageSummary> {
    let Body::Attestation { state, .. } = &record.body else {
        return None;
    };
    let coverage: BackupCoverage = serde_json::from_value(state.clone()).ok()?;
    let status = coverage.status.clone().unwrap_or_default();
    let mut counts = Vec::new();
    let mut exemptions = Vec::new();
    for (what, c) in [
        ("RDS instances", &status.databases),
        ("repositories", &status.repositories),
    ] {
        let Some(c) = c else { continue };
        counts.push(format!(
            "{what}: {} in scope, {} declared, {} exempt, {} undeclared",
            c.discovered, c.declared, c.exempt, c.undeclared
        ));
        exemptions.extend(c.exempt_resources.iter().map(|e| Exemption {
            what: if e.region.is_empty() {
                e.name.clone()
            } else {
                format!("{} in {} (account {})", e.name, e.region, e.account)
            },
            reason: e.reason.clone(),
        }));
    }
    Some(CoverageSummary {
        name: coverage.metadata.name.clone().unwrap_or_default(),
        namespace: coverage.spec.namespace.clone(),
        counts,
        exemptions,
    })
}

#[cfg(test)]
mod tests;
