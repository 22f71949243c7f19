//! Table tests of adoption and of the cleanup's choice: every reason a key is kept.

use super::*;

const NO_BACKUPS: &[ReplicaFacts] = &[];

const SOURCE: &str = "arn:aws:rds:us-east-1:123456789012:db:orders-db";
const OTHER: &str = "arn:aws:rds:us-east-1:123456789012:db:billing-db";
const NOW: i64 = 1_800_000_000;
const GRACE: Duration = Duration::from_secs(24 * 3600);

fn at(secs_ago: i64) -> Timestamp {
    Timestamp::from_second(NOW - secs_ago).expect("timestamp")
}

fn arn(id: &str) -> String {
    format!("arn:aws:kms:us-west-2:123456789012:key/{id}")
}

/// A key backup-warden made for SOURCE, two days ago, enabled, never aliased.
fn ours(id: &str) -> KnownKey {
    KnownKey {
        tagged: TaggedKey {
            arn: arn(id),
            tags: ownership_tags(SOURCE)
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        },
        facts: KeyFacts {
            arn: arn(id),
            key_id: id.to_string(),
            state: "Enabled".into(),
            key_spec: "SYMMETRIC_DEFAULT".into(),
            key_usage: "ENCRYPT_DECRYPT".into(),
            key_manager: "CUSTOMER".into(),
            created: Some(at(2 * 24 * 3600)),
        },
    }
}

fn backup(source: &str, key_id: &str, status: &str) -> ReplicaFacts {
    ReplicaFacts {
        arn: format!("arn:aws:rds:us-west-2:123456789012:auto-backup:ab-{key_id}"),
        source_arn: source.to_string(),
        status: status.into(),
        kms_key_arn: Some(arn(key_id)),
        ..Default::default()
    }
}

fn none() -> HashSet<String> {
    HashSet::new()
}

#[test]
fn key_ids_come_from_arns_or_ids() {
    assert_eq!(key_id_of(&arn("k-1")), "k-1");
    assert_eq!(key_id_of("k-1"), "k-1");
}

#[test]
fn only_keys_with_both_tags_are_ours() {
    let mut k = ours("k-1").tagged;
    assert_eq!(k.made_for(), Some(SOURCE));
    k.tags.insert("managed-by".into(), "terraform".into());
    assert_eq!(k.made_for(), None);
    let mut k = ours("k-1").tagged;
    k.tags.remove(SOURCE_TAG);
    assert_eq!(k.made_for(), None);
    let mut k = ours("k-1").tagged;
    k.tags.insert(SOURCE_TAG.into(), String::new());
    assert_eq!(k.made_for(), None);
}

#[test]
fn the_oldest_fit_key_made_for_the_source_is_adopted() {
    let mut younger = ours("k-young");
    younger.facts.created = Some(at(60));
    let keys = [younger, ours("k-old")];
    assert_eq!(
        adoptable(SOURCE, &keys, &none(), NO_BACKUPS).map(|k| k.key_id.as_str()),
        Some("k-old")
    );
    // The same answer whatever the order: two racing controllers pick the same key.
    let reversed = [keys[1].clone(), keys[0].clone()];
    assert_eq!(
        adoptable(SOURCE, &reversed, &none(), NO_BACKUPS).map(|k| k.key_id.as_str()),
        Some("k-old")
    );
    // A replica of this very source already using it does not prevent adoption.
    let mine = [backup(SOURCE, "k-old", "retained")];
    assert_eq!(
        adoptable(SOURCE, &keys, &none(), &mine).map(|k| k.key_id.as_str()),
        Some("k-old")
    );
}

#[test]
fn unfit_keys_are_never_adopted() {
    type Change = fn(&mut KnownKey);
    let cases: Vec<(&str, Change)> = vec![
        ("made for another source", |k| {
            k.tagged.tags.insert(SOURCE_TAG.into(), OTHER.into());
        }),
        ("not tagged by backup-warden", |k| {
            k.tagged.tags.remove(MANAGED_BY.0);
        }),
        ("pending deletion", |k| k.facts.state = "PendingDeletion".into()),
        ("disabled", |k| k.facts.state = "Disabled".into()),
        ("AWS managed", |k| k.facts.key_manager = "AWS".into()),
        ("asymmetric", |k| k.facts.key_spec = "RSA_2048".into()),
        ("for signing", |k| k.facts.key_usage = "SIGN_VERIFY".into()),
    ];
    for (what, change) in cases {
        let mut key = ours("k-1");
        change(&mut key);
        assert_eq!(adoptable(SOURCE, &[key], &none(), NO_BACKUPS), None, "{what}");
    }
    let aliased: HashSet<String> = ["k-1".to_string()].into();
    assert_eq!(
        adoptable(SOURCE, &[ours("k-1")], &aliased, NO_BACKUPS),
        None,
        "aliased elsewhere"
    );
    let theirs = [backup(OTHER, "k-1", "replicating")];
    assert_eq!(
        adoptable(SOURCE, &[ours("k-1")], &none(), &theirs),
        None,
        "encrypts another source's backups"
    );
}

#[test]
fn an_old_unaliased_unused_key_of_ours_is_an_orphan() {
    assert_eq!(orphan(&ours("k-1"), &none(), NO_BACKUPS, at(0), GRACE), Ok(()));
}

#[test]
fn the_cleanup_keeps_every_other_key() {
    type Change = fn(&mut KnownKey);
    let cases: Vec<(Change, Keep)> = vec![
        (|k| k.tagged.tags.clear(), Keep::NotOurs),
        (
            |k| {
                k.tagged.tags.insert(MANAGED_BY.0.into(), "someone-else".into());
            },
            Keep::NotOurs,
        ),
        (|k| k.facts.key_manager = "AWS".into(), Keep::AwsManaged),
        (|k| k.facts.key_manager = "".into(), Keep::AwsManaged),
        (|k| k.facts.state = "PendingDeletion".into(), Keep::NotEnabled),
        (|k| k.facts.state = "Disabled".into(), Keep::NotEnabled),
        (|k| k.facts.created = Some(at(3600)), Keep::YoungerThanGrace),
        (|k| k.facts.created = None, Keep::YoungerThanGrace),
    ];
    for (change, keep) in cases {
        let mut key = ours("k-1");
        change(&mut key);
        assert_eq!(orphan(&key, &none(), NO_BACKUPS, at(0), GRACE), Err(keep));
    }
    let aliased: HashSet<String> = ["k-1".to_string()].into();
    assert_eq!(
        orphan(&ours("k-1"), &aliased, NO_BACKUPS, at(0), GRACE),
        Err(Keep::Aliased)
    );
    for status in ["replicating", "pending", "retained", "deleting"] {
        for source in [SOURCE, OTHER] {
            let backups = [backup(source, "k-1", status)];
            assert_eq!(
                orphan(&ours("k-1"), &none(), &backups, at(0), GRACE),
                Err(Keep::ProtectsBackup),
                "{status} backup of {source}"
            );
        }
    }
    // Exactly at the grace period it is old enough.
    let mut key = ours("k-1");
    key.facts.created = Some(at(GRACE.as_secs() as i64));
    assert_eq!(orphan(&key, &none(), NO_BACKUPS, at(0), GRACE), Ok(()));
}
