use super::*;

fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(secs).expect("valid timestamp")
}

fn instance(identifier: &str, tags: &[(&str, &str)]) -> Discovered {
    Discovered {
        claim: format!("123456789012/us-east-1/{}", identifier.to_ascii_lowercase()),
        name: identifier.to_string(),
        labels: tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        excluded_by_default: None,
    }
}

fn declared(claims: &[&Discovered]) -> HashSet<String> {
    claims.iter().map(|d| d.claim.clone()).collect()
}

fn exempt_tag() -> Exemptions {
    Exemptions {
        label: Some("backupwarden.io/exempt".into()),
        ..Exemptions::default()
    }
}

#[test]
fn three_instances_one_declared_one_tagged_exempt_one_not() {
    let orders = instance("orders", &[]);
    let scratch = instance(
        "scratch",
        &[("backupwarden.io/exempt", "rebuilt nightly from orders")],
    );
    let billing = instance("billing", &[]);
    let resources = [orders.clone(), scratch.clone(), billing];
    let declared = declared(&[&orders]);
    let mut first_seen = BTreeMap::new();
    let t = tally(
        &resources,
        &Selector::default(),
        &exempt_tag(),
        &declared,
        &mut first_seen,
        at(100),
        10,
    );
    assert_eq!((t.discovered, t.declared, t.exempt, t.undeclared), (3, 1, 1, 1));
    assert_eq!(
        t.gaps.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(),
        ["billing"]
    );
    assert_eq!(
        standing(&scratch, &Selector::default(), &exempt_tag(), &declared),
        Standing::Exempt("rebuilt nightly from orders".into())
    );
}

#[test]
fn a_gap_keeps_when_it_was_first_seen_until_it_closes() {
    let billing = instance("billing", &[]);
    let resources = [billing.clone()];
    let mut first_seen = BTreeMap::new();
    let none = HashSet::new();
    let scan = |first_seen: &mut BTreeMap<_, _>, declared: &HashSet<String>, now| {
        tally(
            &resources,
            &Selector::default(),
            &Exemptions::default(),
            declared,
            first_seen,
            at(now),
            10,
        )
    };
    assert_eq!(scan(&mut first_seen, &none, 100).gaps[0].first_seen, at(100));
    assert_eq!(scan(&mut first_seen, &none, 400).gaps[0].first_seen, at(100));
    let closed = scan(&mut first_seen, &declared(&[&billing]), 700);
    assert_eq!((closed.undeclared, closed.gaps.len()), (0, 0));
    assert!(first_seen.is_empty(), "a closed gap is forgotten");
    assert_eq!(
        scan(&mut first_seen, &none, 1000).gaps[0].first_seen,
        at(1000),
        "and counts afresh if it opens again"
    );
}

#[test]
fn the_list_is_bounded_oldest_first_and_the_count_is_whole() {
    let resources: Vec<Discovered> = (0..5).map(|i| instance(&format!("db-{i}"), &[])).collect();
    let mut first_seen: BTreeMap<String, Timestamp> = resources
        .iter()
        .enumerate()
        .map(|(i, r)| (r.claim.clone(), at(50 - i as i64)))
        .collect();
    let t = tally(
        &resources,
        &Selector::default(),
        &Exemptions::default(),
        &HashSet::new(),
        &mut first_seen,
        at(100),
        2,
    );
    assert_eq!(t.undeclared, 5);
    assert_eq!(
        t.gaps.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(),
        ["db-4", "db-3"]
    );
    assert_eq!(first_seen.len(), 5, "every gap is remembered, listed or not");
}

#[test]
fn selectors_include_then_exclude_by_name_and_label() {
    let selector = Selector {
        include: vec![Rule::Label {
            key: "env".into(),
            value: Some("prod".into()),
        }],
        exclude: vec![Rule::Name("tmp-*".into())],
    };
    let cases = [
        (instance("orders", &[("env", "prod")]), Standing::Undeclared),
        (instance("orders-dev", &[("env", "dev")]), Standing::OutOfScope),
        (instance("TMP-load", &[("env", "prod")]), Standing::OutOfScope),
        (instance("untagged", &[]), Standing::OutOfScope),
    ];
    for (resource, expected) in cases {
        assert_eq!(
            standing(&resource, &selector, &Exemptions::default(), &HashSet::new()),
            expected,
            "{}",
            resource.name
        );
    }
    let present = Rule::Label {
        key: "team".into(),
        value: None,
    };
    assert!(present.matches(&instance("a", &[("team", "")])));
    assert!(!present.matches(&instance("a", &[])));
}

#[test]
fn excluded_by_default_is_out_of_scope_and_listed_exemptions_need_the_claim() {
    let mut archived = instance("old", &[]);
    archived.excluded_by_default = Some("archived");
    assert_eq!(
        standing(
            &archived,
            &Selector::default(),
            &Exemptions::default(),
            &HashSet::new()
        ),
        Standing::OutOfScope
    );
    let scratch = instance("scratch", &[]);
    let listed = Exemptions {
        listed: [(scratch.claim.clone(), "a copy of orders".to_string())].into(),
        ..Exemptions::default()
    };
    assert_eq!(
        standing(&scratch, &Selector::default(), &listed, &HashSet::new()),
        Standing::Exempt("a copy of orders".into())
    );
    assert_eq!(
        standing(&scratch, &Selector::default(), &listed, &declared(&[&scratch])),
        Standing::Declared,
        "an object that backs it up counts over an exemption"
    );
}

#[test]
fn a_label_exempts_only_with_a_reason() {
    let repo = Discovered {
        claim: "narrative-io/sandbox".into(),
        name: "narrative-io/sandbox".into(),
        labels: [("backup-exempt".to_string(), String::new())].into(),
        excluded_by_default: None,
    };
    let mut exemptions = Exemptions {
        label: Some("backup-exempt".into()),
        ..Exemptions::default()
    };
    let of = |e: &Exemptions| standing(&repo, &Selector::default(), e, &HashSet::new());
    assert_eq!(
        of(&exemptions),
        Standing::Undeclared,
        "a topic, and no reason given for it"
    );
    exemptions.label_reason = Some("sandboxes hold nothing of value".into());
    assert_eq!(
        of(&exemptions),
        Standing::Exempt("sandboxes hold nothing of value".into())
    );
    let blank_tag = instance("scratch", &[("backupwarden.io/exempt", "  ")]);
    assert_eq!(
        standing(&blank_tag, &Selector::default(), &exempt_tag(), &HashSet::new()),
        Standing::Undeclared,
        "a tag without a reason"
    );
}

#[test]
fn an_adopted_object_is_named_after_its_instance_then_its_region_then_its_account() {
    let claim = "210987654321/eu-west-1/reports";
    assert_eq!(parts(claim), ("210987654321", "eu-west-1", "reports"));
    assert_eq!(object_name(claim, |_| false).as_deref(), Some("reports"));
    assert_eq!(
        object_name(claim, |n| n == "reports").as_deref(),
        Some("reports-eu-west-1")
    );
    assert_eq!(
        object_name(claim, |n| n.starts_with("reports") && n.len() < 20).as_deref(),
        Some("reports-eu-west-1-210987654321")
    );
    assert_eq!(object_name(claim, |_| true), None);
}
