//! The map as a graph, shared by the SVG, DOT and Mermaid renderers: nodes in groups (an
//! AWS account and region, GitHub, or S3 in a region) and edges that each carry a retention
//! label. Pure and deterministic: the same estate gives the same nodes, ids and order,
//! whatever the order of its flows.
//!
//! # The flows
//!
//! - A database: its RDS instance (in its account and region) → labelled with the source's
//!   retention → its replicated automated backups (same account, destination region).
//! - A repository: the repository (group "GitHub") → its workflow → labelled "kept N days"
//!   and the prefix → the bucket (group "S3 · region"). Repositories sharing a bucket share
//!   its node.
//! - A trail: the trail (its account and region) → labelled with the bucket's retention and
//!   the logs prefix → the bucket; and → labelled with its retention → the log group.
//!
//! A node takes the compliance of the objects that reach it: drift if any is in drift, else
//! unknown if any is unknown, else compliant. So an object's own nodes take its compliance.
//!
//! # Large estates
//!
//! In each group, the nodes of each kind (RDS instances, replicated backups, repositories,
//! workflows, buckets, trails, log groups) are folded when there are more than
//! [`AGGREGATE_ABOVE`] of them: the ones in drift, then the unknown ones, stay individual
//! nodes, at most [`AGGREGATE_ABOVE`] of them (drift first, each in name order); every
//! other one, all the compliant ones included, goes into one aggregate node for that group
//! and kind, labelled with the count and how many of each compliance it holds ("288 RDS
//! instances", "275 compliant, 8 in drift, 5 unknown"). Edges are folded with their nodes:
//! every edge between the same two nodes becomes one, labelled with the range of the
//! retentions it carries ("retention 7–14 days"). So a group draws at most
//! `AGGREGATE_ABOVE + 1` nodes of a kind, and the problems stay in sight.

use std::collections::{BTreeMap, BTreeSet};

use super::{Compliance, DatabaseFlow, Estate, RepositoryFlow, TrailFlow};

/// More nodes than this of one kind in one group are folded (see the module's doc).
pub const AGGREGATE_ABOVE: usize = 12;

/// What a node stands for. The order is the drawing order within a column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NodeKind {
    Database,
    Repository,
    Trail,
    Workflow,
    Replica,
    Bucket,
    LogGroup,
}

impl NodeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Database => "database",
            Self::Repository => "repository",
            Self::Trail => "trail",
            Self::Workflow => "workflow",
            Self::Replica => "replica",
            Self::Bucket => "bucket",
            Self::LogGroup => "log-group",
        }
    }

    /// Left to right: sources, workflows, destinations.
    pub fn column(self) -> usize {
        match self {
            Self::Database | Self::Repository | Self::Trail => 0,
            Self::Workflow => 1,
            Self::Replica | Self::Bucket | Self::LogGroup => 2,
        }
    }

    /// The start of a node's id.
    fn id_prefix(self) -> &'static str {
        match self {
            Self::Database => "db",
            Self::Repository => "repo",
            Self::Trail => "trail",
            Self::Workflow => "workflow",
            Self::Replica => "replica",
            Self::Bucket => "bucket",
            Self::LogGroup => "log-group",
        }
    }

    fn noun(self, count: usize) -> &'static str {
        let one = count == 1;
        match self {
            Self::Database if one => "RDS instance",
            Self::Database => "RDS instances",
            Self::Repository if one => "repository",
            Self::Repository => "repositories",
            Self::Trail if one => "trail",
            Self::Trail => "trails",
            Self::Workflow if one => "workflow",
            Self::Workflow => "workflows",
            Self::Replica => "replicated automated backups",
            Self::Bucket if one => "bucket",
            Self::Bucket => "buckets",
            Self::LogGroup if one => "log group",
            Self::LogGroup => "log groups",
        }
    }
}

/// How many nodes of each compliance an aggregate holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub compliant: usize,
    pub drift: usize,
    pub unknown: usize,
}

impl Counts {
    pub fn total(&self) -> usize {
        self.compliant + self.drift + self.unknown
    }

    fn add(&mut self, compliance: Compliance) {
        match compliance {
            Compliance::Compliant => self.compliant += 1,
            Compliance::Drift => self.drift += 1,
            Compliance::Unknown => self.unknown += 1,
        }
    }

    /// "171 compliant, 12 in drift": the counts that are not zero.
    pub fn describe(&self) -> String {
        let parts = [
            (self.compliant, "compliant"),
            (self.drift, "in drift"),
            (self.unknown, "unknown"),
        ];
        let said: Vec<String> = parts
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, what)| format!("{n} {what}"))
            .collect();
        said.join(", ")
    }
}

/// One box of the map.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// Unique, stable for the same estate, and safe as a DOT, Mermaid or XML id.
    pub id: String,
    pub kind: NodeKind,
    /// Set when the node stands for several folded nodes of `kind`.
    pub aggregate: Option<Counts>,
    pub label: String,
    /// A second, smaller line; may be empty.
    pub detail: String,
    /// The full hover text, lines separated by '\n'.
    pub title: String,
    /// Index into [`Graph::groups`].
    pub group: usize,
    pub compliance: Compliance,
    /// The one object (namespace/name) it belongs to; empty when shared or an aggregate.
    pub object: String,
}

impl Node {
    /// The kind as the SVG's `data-kind` says it: "aggregate" for a folded node.
    pub fn data_kind(&self) -> &'static str {
        match self.aggregate {
            Some(_) => "aggregate",
            None => self.kind.as_str(),
        }
    }

    pub fn column(&self) -> usize {
        self.kind.column()
    }
}

/// A labelled box around the nodes of an account and region, GitHub, or S3 in a region.
#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    pub id: String,
    pub label: String,
    /// Indexes into [`Graph::nodes`], in order.
    pub nodes: Vec<usize>,
}

/// An arrow between two nodes (indexes into [`Graph::nodes`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Edge {
    pub from: usize,
    pub to: usize,
    /// Always says a retention ("retention unknown" when none is known).
    pub label: String,
    /// How many flows it stands for (more than one once folded).
    pub flows: usize,
}

/// The whole map: groups in order, nodes sorted by group then column, edges by their ends.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Graph {
    pub groups: Vec<Group>,
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
}

impl Graph {
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

/// The estate as a graph, folded as the module's doc says.
pub fn build(estate: &Estate) -> Graph {
    let mut draft = Draft::default();
    for db in &estate.databases {
        draft.add_database(db);
    }
    for repo in &estate.repositories {
        draft.add_repository(repo);
    }
    for trail in &estate.trails {
        draft.add_trail(trail);
    }
    draft.finish()
}

/// Where a node is drawn. The order is the groups' drawing order.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum GroupKey {
    Aws { account: String, region: String },
    GitHub,
    S3 { region: String },
}

impl GroupKey {
    fn aws(account: &str, region: &str) -> Self {
        Self::Aws {
            account: account.to_string(),
            region: region.to_string(),
        }
    }

    fn label(&self) -> String {
        match self {
            Self::Aws { account, region } if account == "self" => {
                format!("controller's account · {region}")
            }
            Self::Aws { account, region } => format!("account {account} · {region}"),
            Self::GitHub => "GitHub".to_string(),
            Self::S3 { region } => format!("S3 · {region}"),
        }
    }
}

/// A node before folding: unique by group, kind and name (the name sorts it).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    group: GroupKey,
    kind: NodeKind,
    name: String,
}

/// A sort name from parts; NUL sorts before any character, so "a" comes before "ab".
fn name_of(parts: &[&str]) -> String {
    parts.join("\u{0}")
}

#[derive(Clone, Debug)]
struct DraftNode {
    label: String,
    detail: String,
    /// Title lines beyond the label, detail, objects, group and compliance.
    facts: Vec<String>,
    objects: BTreeSet<String>,
    compliance: Compliance,
    /// A bucket's prefixes written to: with one, the label names it.
    prefixes: BTreeSet<String>,
}

impl DraftNode {
    fn new(label: impl Into<String>, detail: impl Into<String>, facts: Vec<String>) -> Self {
        Self {
            label: label.into(),
            detail: detail.into(),
            facts,
            objects: BTreeSet::new(),
            // Raised by each object that reaches it.
            compliance: Compliance::Compliant,
            prefixes: BTreeSet::new(),
        }
    }

    /// The label as drawn: a bucket written under one prefix shows it.
    fn shown_label(&self, kind: NodeKind) -> String {
        let mut prefixes = self.prefixes.iter().filter(|p| !p.is_empty());
        match (kind, prefixes.next(), prefixes.next()) {
            (NodeKind::Bucket, Some(prefix), None) => {
                format!(
                    "{}/{}",
                    self.label.trim_end_matches('/'),
                    prefix.trim_start_matches('/')
                )
            }
            _ => self.label.clone(),
        }
    }
}

/// The worse of two: drift, then unknown, then compliant.
fn worst(a: Compliance, b: Compliance) -> Compliance {
    fn rank(c: Compliance) -> u8 {
        match c {
            Compliance::Compliant => 0,
            Compliance::Unknown => 1,
            Compliance::Drift => 2,
        }
    }
    if rank(b) > rank(a) { b } else { a }
}

/// A retention as observed or declared.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Retention {
    Days(i32),
    /// As AWS or the observer said it, such as "never expire".
    Text(String),
    Unknown,
}

impl Retention {
    fn days(days: Option<i32>) -> Self {
        days.map_or(Self::Unknown, Self::Days)
    }

    /// "365 days" becomes days, so folded edges can give a range.
    fn text(text: Option<&str>) -> Self {
        let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
            return Self::Unknown;
        };
        let number = text.strip_suffix(" days").or_else(|| text.strip_suffix(" day"));
        match number.and_then(|n| n.trim().parse().ok()) {
            Some(days) => Self::Days(days),
            None => Self::Text(text.to_string()),
        }
    }

    /// One flow's label: "7 days", "kept 90 days", "never expire", "retention unknown".
    fn single(&self, kept: bool) -> String {
        match self {
            Self::Days(days) if kept => format!("kept {}", days_phrase(*days)),
            Self::Days(days) => days_phrase(*days),
            Self::Text(text) => text.clone(),
            Self::Unknown => "retention unknown".to_string(),
        }
    }
}

fn days_phrase(days: i32) -> String {
    if days == 1 {
        "1 day".to_string()
    } else {
        format!("{days} days")
    }
}

/// Folded flows' label: "retention 7–14 days", with any other retentions and the unknowns.
fn merged_retention(retentions: &[&Retention]) -> String {
    let days: Vec<i32> = retentions
        .iter()
        .filter_map(|r| match r {
            Retention::Days(d) => Some(*d),
            _ => None,
        })
        .collect();
    let texts: BTreeSet<&str> = retentions
        .iter()
        .filter_map(|r| match r {
            Retention::Text(t) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    let unknown = retentions
        .iter()
        .filter(|r| matches!(r, Retention::Unknown))
        .count();
    let mut parts = Vec::new();
    if let (Some(min), Some(max)) = (days.iter().min(), days.iter().max()) {
        parts.push(match min == max {
            true => format!("retention {}", days_phrase(*min)),
            false => format!("retention {min}–{max} days"),
        });
    }
    parts.extend(texts.iter().take(2).map(|t| t.to_string()));
    if texts.len() > 2 {
        parts.push(format!("{} more", texts.len() - 2));
    }
    match (unknown, parts.is_empty()) {
        (0, _) => {}
        (_, true) => parts.push("retention unknown".to_string()),
        (n, false) => parts.push(format!("{n} unknown")),
    }
    parts.join(", ")
}

#[derive(Clone, Debug)]
struct DraftEdge {
    from: Key,
    to: Key,
    retention: Retention,
    /// Say "kept N days" rather than "N days".
    kept: bool,
    /// The prefix written to, for an edge into a bucket.
    note: Option<String>,
}

/// The label of the edges folded into one.
fn edge_label(edges: &[&DraftEdge]) -> String {
    let retention = match edges {
        [one] => one.retention.single(one.kept),
        many => merged_retention(&many.iter().map(|e| &e.retention).collect::<Vec<_>>()),
    };
    let notes: BTreeSet<&str> = edges
        .iter()
        .filter_map(|e| e.note.as_deref())
        .filter(|n| !n.is_empty())
        .collect();
    match (notes.len(), notes.first()) {
        (1, Some(note)) => format!("{retention} · {note}"),
        (0, _) => retention,
        (n, _) => format!("{retention} · {n} prefixes"),
    }
}

/// A key's short form for a label: an ARN's resource, a key id cut to 8 characters, an alias
/// to its last part. The title keeps the full key.
fn short_key(key: &str) -> String {
    let resource = match key.strip_prefix("arn:") {
        Some(_) => key.splitn(6, ':').nth(5).unwrap_or(key),
        None => key,
    };
    if let Some(id) = resource.strip_prefix("key/")
        && id.chars().count() > 8
    {
        return format!("key/{}…", id.chars().take(8).collect::<String>());
    }
    if let Some(alias) = resource.strip_prefix("alias/")
        && let Some((_, last)) = alias.rsplit_once('/')
    {
        return format!("alias/…/{last}");
    }
    resource.to_string()
}

/// A trail's name from its name or ARN (…:trail/NAME).
fn short_trail(trail: &str) -> &str {
    match trail.strip_prefix("arn:") {
        Some(_) => trail.rsplit_once(":trail/").map_or(trail, |(_, name)| name),
        None => trail,
    }
}

#[derive(Default)]
struct Draft {
    nodes: BTreeMap<Key, DraftNode>,
    edges: Vec<DraftEdge>,
}

impl Draft {
    /// The node of `key`, made by `make` the first time; `object` reaches it either way.
    fn node(
        &mut self,
        key: Key,
        object: &str,
        compliance: Compliance,
        make: impl FnOnce() -> DraftNode,
    ) -> Key {
        let node = self.nodes.entry(key.clone()).or_insert_with(make);
        node.objects.insert(object.to_string());
        node.compliance = worst(node.compliance, compliance);
        key
    }

    fn edge(&mut self, from: &Key, to: &Key, retention: Retention, kept: bool, note: Option<&str>) {
        self.edges.push(DraftEdge {
            from: from.clone(),
            to: to.clone(),
            retention,
            kept,
            note: note.map(str::to_string),
        });
    }

    /// A bucket's node, shared by everything that writes to it in `group`.
    fn bucket(
        &mut self,
        group: GroupKey,
        bucket: &str,
        prefix: Option<&str>,
        object: &str,
        c: Compliance,
    ) -> Key {
        let key = Key {
            group,
            kind: NodeKind::Bucket,
            name: bucket.to_string(),
        };
        let key = self.node(key, object, c, || {
            DraftNode::new(format!("s3://{bucket}"), "S3 bucket", vec![])
        });
        if let (Some(node), Some(prefix)) = (self.nodes.get_mut(&key), prefix) {
            node.prefixes.insert(prefix.to_string());
        }
        key
    }

    fn add_database(&mut self, db: &DatabaseFlow) {
        let name = name_of(&[&db.instance, &db.object]);
        let source = Key {
            group: GroupKey::aws(&db.account, &db.region),
            kind: NodeKind::Database,
            name: name.clone(),
        };
        let source = self.node(source, &db.object, db.compliance, || {
            let kept = Retention::days(db.retention_days).single(true);
            DraftNode::new(
                &db.instance,
                "RDS instance",
                vec![format!("automated backups {kept}")],
            )
        });
        let replica = Key {
            group: GroupKey::aws(&db.account, &db.destination_region),
            kind: NodeKind::Replica,
            name,
        };
        let replica = self.node(replica, &db.object, db.compliance, || {
            let kept = Retention::days(db.replica_retention_days).single(true);
            let status = db.replication_status.as_deref().unwrap_or("none yet");
            DraftNode::new(
                "replicated automated backups",
                format!("{kept} · {}", short_key(&db.replica_key)),
                vec![
                    format!("of {} ({})", db.instance, db.region),
                    format!("key {}", db.replica_key),
                    format!("replication: {status}"),
                ],
            )
        });
        self.edge(&source, &replica, Retention::days(db.retention_days), false, None);
    }

    fn add_repository(&mut self, repo: &RepositoryFlow) {
        let object = repo.object.as_str();
        let c = repo.compliance;
        let source = Key {
            group: GroupKey::GitHub,
            kind: NodeKind::Repository,
            name: name_of(&[&repo.repository, object]),
        };
        let source = self.node(source, object, c, || {
            DraftNode::new(&repo.repository, "GitHub repository", vec![])
        });
        let workflow = Key {
            group: GroupKey::GitHub,
            kind: NodeKind::Workflow,
            name: name_of(&[&repo.repository, &repo.workflow, object]),
        };
        let workflow = self.node(workflow, object, c, || {
            let file = repo.workflow.rsplit('/').next().unwrap_or(&repo.workflow);
            let facts = vec![format!("{} in {}", repo.workflow, repo.repository)];
            DraftNode::new(file, "GitHub Actions workflow", facts)
        });
        let region = GroupKey::S3 {
            region: repo.bucket_region.clone(),
        };
        let bucket = self.bucket(region, &repo.bucket, Some(&repo.prefix), object, c);
        let kept = Retention::Days(repo.retention_days);
        self.edge(&source, &workflow, kept.clone(), true, None);
        self.edge(&workflow, &bucket, kept, true, Some(&repo.prefix));
    }

    fn add_trail(&mut self, trail: &TrailFlow) {
        let object = trail.object.as_str();
        let c = trail.compliance;
        let group = GroupKey::aws(&trail.account, &trail.region);
        let source = Key {
            group: group.clone(),
            kind: NodeKind::Trail,
            name: name_of(&[&trail.trail, object]),
        };
        let source = self.node(source, object, c, || {
            let short = short_trail(&trail.trail);
            // The ARN, when the label shortened it.
            let facts = (short != trail.trail)
                .then(|| trail.trail.clone())
                .into_iter()
                .collect();
            DraftNode::new(short, "CloudTrail trail", facts)
        });
        let prefix = trail.logs_prefix.as_deref();
        let bucket = match &trail.bucket {
            Some(bucket) => self.bucket(group.clone(), bucket, prefix, object, c),
            // Its own node: an unobserved bucket is nobody else's.
            None => {
                let key = Key {
                    group: group.clone(),
                    kind: NodeKind::Bucket,
                    name: name_of(&["", object]),
                };
                self.node(key, object, c, || {
                    DraftNode::new("bucket not observed yet", "S3 bucket", vec![])
                })
            }
        };
        let retention = Retention::text(trail.bucket_retention.as_deref());
        self.edge(&source, &bucket, retention, false, prefix);
        if let Some(log_group) = &trail.log_group {
            let key = Key {
                group,
                kind: NodeKind::LogGroup,
                name: log_group.clone(),
            };
            let key = self.node(key, object, c, || {
                DraftNode::new(log_group, "CloudWatch log group", vec![])
            });
            let retention = Retention::text(trail.log_group_retention.as_deref());
            self.edge(&source, &key, retention, false, None);
        }
    }

    fn finish(self) -> Graph {
        let targets = fold(&self.nodes);
        let mut members: BTreeMap<&Target, Vec<(&Key, &DraftNode)>> = BTreeMap::new();
        for (key, node) in &self.nodes {
            if let Some(target) = targets.get(key) {
                members.entry(target).or_default().push((key, node));
            }
        }
        let mut order: Vec<(&Target, Vec<(&Key, &DraftNode)>)> = members.into_iter().collect();
        order.sort_by(|a, b| a.0.order().cmp(&b.0.order()));
        let group_keys: Vec<&GroupKey> = order
            .iter()
            .map(|(t, _)| t.group())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut groups: Vec<Group> = group_keys
            .iter()
            .enumerate()
            .map(|(i, g)| Group {
                id: format!("group-{}", i + 1),
                label: g.label(),
                nodes: Vec::new(),
            })
            .collect();
        let mut index: BTreeMap<&Target, usize> = BTreeMap::new();
        let mut counters: BTreeMap<(bool, NodeKind), usize> = BTreeMap::new();
        let mut nodes = Vec::with_capacity(order.len());
        for (target, parts) in &order {
            let group = group_keys.binary_search(&target.group()).unwrap_or_default();
            let n = counters.entry((target.is_many(), target.kind())).or_default();
            *n += 1;
            let id = match target.is_many() {
                true => format!("agg-{}-{n}", target.kind().id_prefix()),
                false => format!("{}-{n}", target.kind().id_prefix()),
            };
            let node = match target {
                Target::One(key) => single_node(id, key, parts, group, &groups[group].label),
                Target::Many { group: _, kind } => {
                    aggregate_node(id, *kind, parts, group, &groups[group].label)
                }
            };
            index.insert(target, nodes.len());
            groups[group].nodes.push(nodes.len());
            nodes.push(node);
        }
        let edges = fold_edges(&self.edges, &targets, &index);
        Graph { groups, nodes, edges }
    }
}

/// What a draft node is drawn as: itself, or its group and kind's aggregate.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    One(Key),
    Many { group: GroupKey, kind: NodeKind },
}

impl Target {
    fn group(&self) -> &GroupKey {
        match self {
            Self::One(key) => &key.group,
            Self::Many { group, .. } => group,
        }
    }

    fn kind(&self) -> NodeKind {
        match self {
            Self::One(key) => key.kind,
            Self::Many { kind, .. } => *kind,
        }
    }

    fn is_many(&self) -> bool {
        matches!(self, Self::Many { .. })
    }

    /// Drawing order: by group, column and kind; an aggregate after the individual nodes.
    fn order(&self) -> (&GroupKey, usize, NodeKind, bool, &str) {
        let name = match self {
            Self::One(key) => key.name.as_str(),
            Self::Many { .. } => "",
        };
        (
            self.group(),
            self.kind().column(),
            self.kind(),
            self.is_many(),
            name,
        )
    }
}

/// Which draft nodes stay and which fold, per the module's doc.
fn fold(nodes: &BTreeMap<Key, DraftNode>) -> BTreeMap<Key, Target> {
    let all: Vec<(&Key, &DraftNode)> = nodes.iter().collect();
    let mut targets = BTreeMap::new();
    // The map is sorted by group, then kind: each run is one group's nodes of one kind.
    for run in all.chunk_by(|a, b| a.0.group == b.0.group && a.0.kind == b.0.kind) {
        let kept = kept_of(run);
        for (key, _) in run {
            let target = match kept.contains(key) || run.len() <= AGGREGATE_ABOVE {
                true => Target::One((*key).clone()),
                false => Target::Many {
                    group: key.group.clone(),
                    kind: key.kind,
                },
            };
            targets.insert((*key).clone(), target);
        }
    }
    targets
}

/// The nodes of a large run that stay individual: drift first, then unknown.
fn kept_of<'a>(run: &[(&'a Key, &DraftNode)]) -> BTreeSet<&'a Key> {
    if run.len() <= AGGREGATE_ABOVE {
        return BTreeSet::new();
    }
    let with = |c: Compliance| {
        run.iter()
            .filter(move |(_, n)| n.compliance == c)
            .map(|(k, _)| *k)
    };
    with(Compliance::Drift)
        .chain(with(Compliance::Unknown))
        .take(AGGREGATE_ABOVE)
        .collect()
}

fn single_node(id: String, key: &Key, parts: &[(&Key, &DraftNode)], group: usize, place: &str) -> Node {
    let Some((_, draft)) = parts.first() else {
        return empty_node(id, key.kind, group);
    };
    let label = draft.shown_label(key.kind);
    let object = match draft.objects.len() {
        1 => draft.objects.first().cloned().unwrap_or_default(),
        _ => String::new(),
    };
    let mut title = vec![label.clone()];
    title.extend((!draft.detail.is_empty()).then(|| draft.detail.clone()));
    title.extend(draft.facts.iter().cloned());
    if draft.prefixes.len() > 1 {
        title.push(format!("prefixes: {}", joined(&draft.prefixes)));
    }
    title.push(match draft.objects.len() {
        1 => format!("object: {object}"),
        _ => format!("objects: {}", joined(&draft.objects)),
    });
    title.push(place.to_string());
    title.push(format!("compliance: {}", draft.compliance.as_str()));
    Node {
        id,
        kind: key.kind,
        aggregate: None,
        label,
        detail: draft.detail.clone(),
        title: title.join("\n"),
        group,
        compliance: draft.compliance,
        object,
    }
}

/// The first few of a set, and how many more.
fn joined(items: &BTreeSet<String>) -> String {
    const SHOWN: usize = 5;
    let mut said: Vec<&str> = items.iter().take(SHOWN).map(String::as_str).collect();
    let more = items.len().saturating_sub(SHOWN);
    let tail = format!("and {more} more");
    if more > 0 {
        said.push(&tail);
    }
    said.join(", ")
}

fn aggregate_node(
    id: String,
    kind: NodeKind,
    parts: &[(&Key, &DraftNode)],
    group: usize,
    place: &str,
) -> Node {
    let mut counts = Counts::default();
    let mut compliance = Compliance::Compliant;
    for (_, draft) in parts {
        counts.add(draft.compliance);
        compliance = worst(compliance, draft.compliance);
    }
    let label = format!("{} {}", counts.total(), kind.noun(counts.total()));
    let detail = counts.describe();
    let title = format!("{label} ({detail})\n{place}\ncompliance: {}", compliance.as_str());
    Node {
        id,
        kind,
        aggregate: Some(counts),
        label,
        detail,
        title,
        group,
        compliance,
        object: String::new(),
    }
}

/// Never drawn (a target always has a member); here so no lookup can panic.
fn empty_node(id: String, kind: NodeKind, group: usize) -> Node {
    Node {
        id,
        kind,
        aggregate: None,
        label: String::new(),
        detail: String::new(),
        title: String::new(),
        group,
        compliance: Compliance::Unknown,
        object: String::new(),
    }
}

/// One edge per pair of drawn nodes, labelled with what it carries.
fn fold_edges(
    edges: &[DraftEdge],
    targets: &BTreeMap<Key, Target>,
    index: &BTreeMap<&Target, usize>,
) -> Vec<Edge> {
    let at = |key: &Key| targets.get(key).and_then(|t| index.get(t)).copied();
    let mut pairs: BTreeMap<(usize, usize), Vec<&DraftEdge>> = BTreeMap::new();
    for edge in edges {
        if let (Some(from), Some(to)) = (at(&edge.from), at(&edge.to)) {
            pairs.entry((from, to)).or_default().push(edge);
        }
    }
    pairs
        .into_iter()
        .map(|((from, to), folded)| Edge {
            from,
            to,
            label: edge_label(&folded),
            flows: folded.len(),
        })
        .collect()
}

/// Estates the renderers' tests share.
#[cfg(test)]
pub(crate) mod fixtures {
    use crate::estate::{Compliance, DatabaseFlow, Estate, RepositoryFlow, TrailFlow};

    pub(crate) const ACCOUNT: &str = "123456789012";

    pub(crate) fn database(object: &str, instance: &str, compliance: Compliance) -> DatabaseFlow {
        DatabaseFlow {
            object: object.to_string(),
            account: ACCOUNT.to_string(),
            region: "us-east-1".to_string(),
            instance: instance.to_string(),
            retention_days: Some(7),
            destination_region: "us-west-2".to_string(),
            replica_retention_days: Some(14),
            replica_key: format!("alias/backup-warden/us-east-1/{instance}"),
            replication_status: Some("replicating".to_string()),
            compliance,
        }
    }

    pub(crate) fn repository(object: &str, repository: &str, compliance: Compliance) -> RepositoryFlow {
        RepositoryFlow {
            object: object.to_string(),
            repository: repository.to_string(),
            workflow: ".github/workflows/backup-daily.yml".to_string(),
            bucket: "acme-backups".to_string(),
            bucket_region: "us-east-1".to_string(),
            prefix: format!("{repository}/"),
            retention_days: 90,
            compliance,
        }
    }

    /// Two databases in one account and region replicating to us-west-2 (one in drift, with
    /// no observed retention and a key ARN), two repositories sharing a bucket (one
    /// unknown), one trail with a log group.
    pub(crate) fn small() -> Estate {
        let mut payments = database("shop/payments", "payments-db", Compliance::Drift);
        payments.retention_days = None;
        payments.replica_key =
            "arn:aws:kms:us-west-2:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab".to_string();
        let mut web = repository("ci/web", "acme/web", Compliance::Unknown);
        web.retention_days = 30;
        Estate {
            databases: vec![
                database("shop/orders", "orders-db", Compliance::Compliant),
                payments,
            ],
            repositories: vec![repository("ci/api", "acme/api", Compliance::Compliant), web],
            trails: vec![TrailFlow {
                object: "audit/main".to_string(),
                account: ACCOUNT.to_string(),
                region: "us-east-1".to_string(),
                trail: "org-trail".to_string(),
                bucket: Some("acme-trail-logs".to_string()),
                logs_prefix: Some("AWSLogs/".to_string()),
                bucket_retention: Some("365 days".to_string()),
                log_group: Some("/aws/cloudtrail/org".to_string()),
                log_group_retention: Some("never expire".to_string()),
                compliance: Compliance::Compliant,
            }],
        }
    }

    /// `count` databases in one account and region: every 15th in drift, every 40th unknown.
    pub(crate) fn large(count: usize) -> Estate {
        let databases = (0..count)
            .map(|i| {
                let compliance = match i {
                    i if i % 15 == 0 => Compliance::Drift,
                    i if i % 40 == 1 => Compliance::Unknown,
                    _ => Compliance::Compliant,
                };
                let mut db = database(&format!("shop/db-{i:03}"), &format!("db-{i:03}"), compliance);
                db.retention_days = Some(7 + (i % 8) as i32);
                db
            })
            .collect();
        Estate {
            databases,
            ..Estate::default()
        }
    }

    /// The sum of the individual nodes of `kind` and the counts of its aggregates.
    pub(crate) fn total_of(graph: &super::Graph, kind: super::NodeKind) -> usize {
        graph
            .nodes
            .iter()
            .filter(|n| n.kind == kind)
            .map(|n| n.aggregate.map_or(1, |c| c.total()))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{self, ACCOUNT};
    use super::*;

    fn node<'a>(graph: &'a Graph, id: &str) -> &'a Node {
        graph
            .nodes
            .iter()
            .find(|n| n.id == id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    fn edge_label_between(graph: &Graph, from: &str, to: &str) -> String {
        let at = |id: &str| graph.nodes.iter().position(|n| n.id == id);
        let (from, to) = (at(from), at(to));
        let edge = graph
            .edges
            .iter()
            .find(|e| Some(e.from) == from && Some(e.to) == to);
        edge.map(|e| e.label.clone()).unwrap_or_else(|| panic!("no edge"))
    }

    #[test]
    fn small_estate_has_the_expected_nodes_in_order() {
        let graph = build(&fixtures::small());
        let seen: Vec<(&str, &str, Compliance, &str, &str)> = graph
            .nodes
            .iter()
            .map(|n| {
                let group = graph.groups[n.group].label.as_str();
                (
                    n.id.as_str(),
                    n.data_kind(),
                    n.compliance,
                    n.object.as_str(),
                    group,
                )
            })
            .collect();
        let (east, west) = (
            format!("account {ACCOUNT} · us-east-1"),
            format!("account {ACCOUNT} · us-west-2"),
        );
        let (east, west) = (east.as_str(), west.as_str());
        use Compliance::*;
        let expected: Vec<(&str, &str, Compliance, &str, &str)> = vec![
            ("db-1", "database", Compliant, "shop/orders", east),
            ("db-2", "database", Drift, "shop/payments", east),
            ("trail-1", "trail", Compliant, "audit/main", east),
            ("bucket-1", "bucket", Compliant, "audit/main", east),
            ("log-group-1", "log-group", Compliant, "audit/main", east),
            ("replica-1", "replica", Compliant, "shop/orders", west),
            ("replica-2", "replica", Drift, "shop/payments", west),
            ("repo-1", "repository", Compliant, "ci/api", "GitHub"),
            ("repo-2", "repository", Unknown, "ci/web", "GitHub"),
            ("workflow-1", "workflow", Compliant, "ci/api", "GitHub"),
            ("workflow-2", "workflow", Unknown, "ci/web", "GitHub"),
            ("bucket-2", "bucket", Unknown, "", "S3 · us-east-1"),
        ];
        assert_eq!(seen, expected);
        assert_eq!(graph.groups.len(), 4);
        let in_groups: usize = graph.groups.iter().map(|g| g.nodes.len()).sum();
        assert_eq!(in_groups, graph.nodes.len());
    }

    #[test]
    fn labels_say_what_each_node_is() {
        let graph = build(&fixtures::small());
        assert_eq!(node(&graph, "db-1").label, "orders-db");
        let replica = node(&graph, "replica-1");
        assert_eq!(replica.label, "replicated automated backups");
        assert_eq!(replica.detail, "kept 14 days · alias/…/orders-db");
        assert!(
            replica
                .title
                .contains("key alias/backup-warden/us-east-1/orders-db")
        );
        assert_eq!(node(&graph, "replica-2").detail, "kept 14 days · key/1234abcd…");
        assert_eq!(node(&graph, "workflow-1").label, "backup-daily.yml");
        // One prefix: the bucket's label names it; two: the edges do.
        assert_eq!(node(&graph, "bucket-1").label, "s3://acme-trail-logs/AWSLogs/");
        assert_eq!(node(&graph, "bucket-2").label, "s3://acme-backups");
        assert_eq!(node(&graph, "log-group-1").label, "/aws/cloudtrail/org");
    }

    #[test]
    fn every_edge_carries_a_retention_label() {
        let graph = build(&fixtures::small());
        let labels: Vec<(&str, &str, &str)> = graph
            .edges
            .iter()
            .map(|e| {
                (
                    graph.nodes[e.from].id.as_str(),
                    graph.nodes[e.to].id.as_str(),
                    e.label.as_str(),
                )
            })
            .collect();
        let expected = vec![
            ("db-1", "replica-1", "7 days"),
            ("db-2", "replica-2", "retention unknown"),
            ("trail-1", "bucket-1", "365 days · AWSLogs/"),
            ("trail-1", "log-group-1", "never expire"),
            ("repo-1", "workflow-1", "kept 90 days"),
            ("repo-2", "workflow-2", "kept 30 days"),
            ("workflow-1", "bucket-2", "kept 90 days · acme/api/"),
            ("workflow-2", "bucket-2", "kept 30 days · acme/web/"),
        ];
        assert_eq!(labels, expected);
        assert!(graph.edges.iter().all(|e| e.flows == 1));
    }

    #[test]
    fn a_shared_bucket_is_one_node_in_drift_when_any_writer_is() {
        let mut estate = fixtures::small();
        let graph = build(&estate);
        let buckets: Vec<&Node> = graph
            .nodes
            .iter()
            .filter(|n| n.label == "s3://acme-backups")
            .collect();
        assert_eq!(buckets.len(), 1);
        let into = |g: &Graph, id: &str| g.edges.iter().filter(|e| g.nodes[e.to].id == id).count();
        assert_eq!(into(&graph, "bucket-2"), 2);
        assert!(buckets[0].title.contains("objects: ci/api, ci/web"));

        estate
            .repositories
            .push(fixtures::repository("ci/zz", "acme/zz", Compliance::Drift));
        let graph = build(&estate);
        assert_eq!(node(&graph, "bucket-2").compliance, Compliance::Drift);
        assert_eq!(into(&graph, "bucket-2"), 3);
    }

    #[test]
    fn worst_compliance_orders_drift_over_unknown_over_compliant() {
        use Compliance::*;
        assert_eq!(worst(Compliant, Unknown), Unknown);
        assert_eq!(worst(Unknown, Drift), Drift);
        assert_eq!(worst(Drift, Compliant), Drift);
        assert_eq!(worst(Compliant, Compliant), Compliant);
    }

    #[test]
    fn a_trail_without_an_observed_bucket_still_has_a_labelled_edge() {
        let mut estate = fixtures::small();
        estate.trails[0].bucket = None;
        estate.trails[0].bucket_retention = None;
        estate.trails[0].log_group = None;
        let graph = build(&estate);
        let bucket = node(&graph, "bucket-1");
        assert_eq!(bucket.label, "bucket not observed yet");
        assert_eq!(bucket.object, "audit/main");
        assert_eq!(
            edge_label_between(&graph, "trail-1", "bucket-1"),
            "retention unknown · AWSLogs/"
        );
        assert!(!graph.nodes.iter().any(|n| n.kind == NodeKind::LogGroup));
    }

    #[test]
    fn twelve_of_a_kind_stay_individual() {
        let graph = build(&fixtures::large(AGGREGATE_ABOVE));
        assert!(graph.nodes.iter().all(|n| n.aggregate.is_none()));
        assert_eq!(graph.nodes.len(), 2 * AGGREGATE_ABOVE);
    }

    #[test]
    fn a_large_group_folds_its_compliant_nodes_and_keeps_drift_in_sight() {
        let estate = fixtures::large(300);
        let drift = estate
            .databases
            .iter()
            .filter(|d| d.compliance == Compliance::Drift)
            .count();
        assert_eq!(drift, 20);
        let graph = build(&estate);
        let databases: Vec<&Node> = graph
            .nodes
            .iter()
            .filter(|n| n.kind == NodeKind::Database)
            .collect();
        assert_eq!(databases.len(), AGGREGATE_ABOVE + 1);
        // The twelve kept are the first twelve in drift, by name.
        let kept: Vec<&str> = databases
            .iter()
            .filter(|n| n.aggregate.is_none())
            .map(|n| n.label.as_str())
            .collect();
        let first_drift: Vec<String> = (0..300)
            .step_by(15)
            .take(12)
            .map(|i| format!("db-{i:03}"))
            .collect();
        assert_eq!(kept, first_drift);
        assert!(
            databases
                .iter()
                .filter(|n| n.aggregate.is_none())
                .all(|n| n.compliance == Compliance::Drift)
        );
        let aggregate = node(&graph, "agg-db-1");
        let counts = aggregate.aggregate.unwrap_or_default();
        assert_eq!(
            counts,
            Counts {
                compliant: 272,
                drift: 8,
                unknown: 8
            }
        );
        assert_eq!(aggregate.label, "288 RDS instances");
        assert_eq!(aggregate.detail, "272 compliant, 8 in drift, 8 unknown");
        assert_eq!(aggregate.compliance, Compliance::Drift);
        assert_eq!(aggregate.object, "");
        assert_eq!(fixtures::total_of(&graph, NodeKind::Database), 300);
        assert_eq!(fixtures::total_of(&graph, NodeKind::Replica), 300);
        // The aggregates' edge: one, for the 288 flows, with the range of their retentions.
        assert_eq!(
            edge_label_between(&graph, "agg-db-1", "agg-replica-1"),
            "retention 7–14 days"
        );
        let folded = graph.edges.iter().find(|e| graph.nodes[e.from].id == "agg-db-1");
        assert_eq!(folded.map(|e| e.flows), Some(288));
        assert_eq!(graph.edges.len(), AGGREGATE_ABOVE + 1);
    }

    #[test]
    fn unknown_ones_are_kept_after_drift_up_to_the_threshold() {
        let mut estate = fixtures::large(40);
        for (i, db) in estate.databases.iter_mut().enumerate() {
            db.compliance = match i {
                0..3 => Compliance::Drift,
                3..20 => Compliance::Unknown,
                _ => Compliance::Compliant,
            };
        }
        let graph = build(&estate);
        let kept: Vec<Compliance> = graph
            .nodes
            .iter()
            .filter(|n| n.kind == NodeKind::Database && n.aggregate.is_none())
            .map(|n| n.compliance)
            .collect();
        assert_eq!(kept.len(), AGGREGATE_ABOVE);
        assert_eq!(kept.iter().filter(|c| **c == Compliance::Drift).count(), 3);
        let counts = node(&graph, "agg-db-1").aggregate.unwrap_or_default();
        assert_eq!(
            counts,
            Counts {
                compliant: 20,
                drift: 0,
                unknown: 8
            }
        );
        assert_eq!(node(&graph, "agg-db-1").compliance, Compliance::Unknown);
    }

    #[test]
    fn folded_retentions_say_their_range_and_their_unknowns() {
        let days = [Retention::Days(14), Retention::Days(7), Retention::Unknown];
        assert_eq!(
            merged_retention(&days.iter().collect::<Vec<_>>()),
            "retention 7–14 days, 1 unknown"
        );
        let same = [Retention::Days(7), Retention::Days(7)];
        assert_eq!(
            merged_retention(&same.iter().collect::<Vec<_>>()),
            "retention 7 days"
        );
        let none = [Retention::Unknown, Retention::Unknown];
        assert_eq!(
            merged_retention(&none.iter().collect::<Vec<_>>()),
            "retention unknown"
        );
        let text = [
            Retention::text(Some("365 days")),
            Retention::text(Some("never expire")),
        ];
        assert_eq!(
            merged_retention(&text.iter().collect::<Vec<_>>()),
            "retention 365 days, never expire"
        );
        assert_eq!(Retention::text(Some("1 day")).single(false), "1 day");
        assert_eq!(Retention::text(Some("  ")), Retention::Unknown);
    }

    #[test]
    fn many_repositories_fold_and_their_shared_bucket_stays_one_node() {
        let repositories = (0..50)
            .map(|i| {
                let compliance = if i == 7 {
                    Compliance::Drift
                } else {
                    Compliance::Compliant
                };
                fixtures::repository(&format!("ci/r{i:02}"), &format!("acme/r{i:02}"), compliance)
            })
            .collect();
        let graph = build(&Estate {
            repositories,
            ..Estate::default()
        });
        let ids: Vec<&str> = graph.nodes.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(
            ids,
            ["repo-1", "agg-repo-1", "workflow-1", "agg-workflow-1", "bucket-1"]
        );
        assert_eq!(node(&graph, "bucket-1").compliance, Compliance::Drift);
        assert_eq!(
            edge_label_between(&graph, "agg-workflow-1", "bucket-1"),
            "retention 90 days · 49 prefixes"
        );
        assert_eq!(
            edge_label_between(&graph, "workflow-1", "bucket-1"),
            "kept 90 days · acme/r07/"
        );
    }

    #[test]
    fn the_same_estate_in_any_order_gives_the_same_graph() {
        let estate = fixtures::small();
        let mut shuffled = estate.clone();
        shuffled.databases.reverse();
        shuffled.repositories.reverse();
        assert_eq!(build(&estate), build(&shuffled));
        assert_eq!(build(&fixtures::large(300)), build(&fixtures::large(300)));
    }

    #[test]
    fn ids_are_safe_and_unique() {
        let graph = build(&fixtures::large(300));
        let ids: BTreeSet<&str> = graph.nodes.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(ids.len(), graph.nodes.len());
        let safe = |id: &str| {
            id.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        };
        assert!(
            ids.iter()
                .all(|id| safe(id) && id.starts_with(|c: char| c.is_ascii_lowercase()))
        );
    }

    #[test]
    fn keys_are_shortened_for_labels() {
        assert_eq!(
            short_key("arn:aws:kms:us-west-2:1:key/abcdef0123"),
            "key/abcdef01…"
        );
        assert_eq!(short_key("arn:aws:kms:us-west-2:1:alias/mine"), "alias/mine");
        assert_eq!(short_key("alias/backup-warden/us-east-1/db"), "alias/…/db");
        assert_eq!(short_trail("arn:aws:cloudtrail:us-east-1:1:trail/org"), "org");
    }

    #[test]
    fn a_trail_named_by_arn_is_labelled_by_name_and_titled_by_arn() {
        let mut estate = fixtures::small();
        let arn = "arn:aws:cloudtrail:us-east-1:123456789012:trail/org-trail";
        let graph = build(&estate);
        assert!(!node(&graph, "trail-1").title.contains("arn:"));
        estate.trails[0].trail = arn.to_string();
        let graph = build(&estate);
        let trail = node(&graph, "trail-1");
        assert_eq!(trail.label, "org-trail");
        assert!(trail.title.lines().any(|l| l == arn), "{}", trail.title);
    }

    #[test]
    fn the_controllers_own_account_is_named_so() {
        assert_eq!(
            GroupKey::aws("self", "eu-west-1").label(),
            "controller's account · eu-west-1"
        );
    }
}
