use serde_json::{Value, json};

use kube::CustomResourceExt;

use super::*;

fn validator() -> ManifestValidator {
    ManifestValidator::new().expect("the generated CRDs are supported")
}

fn database(spec: Value) -> Value {
    json!({"apiVersion": "backupwarden.io/v1alpha1", "kind": "BackedUpDatabase",
           "metadata": {"name": "orders", "namespace": "team"}, "spec": spec})
}

fn repository(spec: Value) -> Value {
    json!({"apiVersion": "backupwarden.io/v1alpha1", "kind": "BackedUpRepository",
           "metadata": {"name": "orders", "namespace": "team"}, "spec": spec})
}

fn db_spec() -> Value {
    json!({"instance": {"identifier": "orders-db", "region": "us-east-1"}})
}

/// The fields named by the errors for `manifest`, in order.
fn refused(manifest: &Value) -> Vec<String> {
    match validator().validate(manifest) {
        Ok(_) => Vec::new(),
        // Without the API server's closing note on the rules it skipped.
        Err(errors) => errors
            .into_iter()
            .map(|e| e.field)
            .filter(|f| f != "<root>")
            .collect(),
    }
}

#[test]
fn a_minimal_manifest_gets_every_default_down_the_tree() {
    let object = validator().validate(&database(db_spec())).expect("valid");
    // The default of `replication` is itself defaulted: `allowReplicationRestart` comes from
    // the field default, inside the parent's default.
    assert_eq!(object["spec"]["replication"]["kmsKey"], json!({"create": true}));
    assert_eq!(
        object["spec"]["replication"]["allowReplicationRestart"],
        json!(false)
    );
    assert_eq!(object["spec"]["mode"], json!("Enforce"));
    let typed: crate::api::BackedUpDatabase = serde_json::from_value(object).expect("typed");
    assert_eq!(typed.spec.freshness.max_replica_lag.to_string(), "2h");
}

#[test]
fn nulls_are_pruned_or_defaulted_like_the_api_server_does() {
    let object = validator()
        .validate(&database(
            json!({"instance": {"identifier": "a", "region": "us-east-1", "roleArn": null},
                                   "mode": null, "backups": {"applyImmediately": null}}),
        ))
        .expect("valid");
    assert_eq!(object["spec"]["mode"], json!("Enforce"));
    assert_eq!(object["spec"]["backups"]["applyImmediately"], json!(false));
    // roleArn is nullable: kept as written.
    assert_eq!(object["spec"]["instance"]["roleArn"], Value::Null);
    // A required field given as null is pruned, then missing.
    assert_eq!(refused(&database(json!({"instance": null}))), ["spec.instance"]);
}

#[test]
fn status_is_dropped_but_its_unknown_fields_are_refused() {
    let mut manifest = database(db_spec());
    manifest["status"] = json!({"observedGeneration": "not a number"});
    let object = validator()
        .validate(&manifest)
        .expect("a create drops the status");
    assert!(object.get("status").is_none());
    manifest["status"] = json!({"bogus": 1});
    assert_eq!(refused(&manifest), ["status.bogus"]);
}

#[test]
fn unknown_fields_are_refused_before_anything_else() {
    let mut manifest = database(
        json!({"instance": {"identifier": "a", "region": "us-east-1", "role": "x"},
                                       "backups": {"retentionDays": 99}}),
    );
    manifest["metadata"]["labelz"] = json!({});
    manifest["extra"] = json!(1);
    let mut fields = refused(&manifest);
    fields.sort();
    assert_eq!(fields, ["extra", "metadata.labelz", "spec.instance.role"]);
}

#[test]
fn schema_errors_name_the_field() {
    let cases = [
        (
            database(
                json!({"instance": {"identifier": "a", "region": "us-east-1"}, "backups": {"retentionDays": 36}}),
            ),
            "spec.backups.retentionDays",
        ),
        (
            database(
                json!({"instance": {"identifier": "a", "region": "us-east-1"}, "backups": {"retentionDays": "7"}}),
            ),
            "spec.backups.retentionDays",
        ),
        (
            database(json!({"instance": {"identifier": "a", "region": "us-east-1"}, "mode": "Sometimes"})),
            "spec.mode",
        ),
        (
            database(json!({"instance": {"identifier": "a"}})),
            "spec.instance.region",
        ),
        (
            repository(json!({"repository": "o/r", "storage": {"bucket": "ab"}})),
            "spec.storage.bucket",
        ),
        (
            repository(
                json!({"repository": "o/r", "storage": {"bucket": "abc"}, "workflow": {"allowedRefs": []}}),
            ),
            "spec.workflow.allowedRefs",
        ),
        (
            repository(
                json!({"repository": "o/r", "storage": {"bucket": "abc"}, "workflow": {"allowedRefs": ["a b"]}}),
            ),
            "spec.workflow.allowedRefs[0]",
        ),
    ];
    for (manifest, field) in cases {
        assert_eq!(
            refused(&manifest).first().map(String::as_str),
            Some(field),
            "{manifest}"
        );
    }
}

#[test]
fn cel_rules_run_on_the_defaulted_object_and_name_their_field() {
    // The destination region defaults to us-west-2, the instance's own region here.
    let same = database(json!({"instance": {"identifier": "a", "region": "us-west-2"}}));
    assert_eq!(refused(&same), ["spec.replication.destinationRegion"]);
    let arn = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let other_region = database(json!({"instance": {"identifier": "a", "region": "us-east-1"},
                                       "replication": {"kmsKey": {"arn": arn}}}));
    assert_eq!(refused(&other_region), ["spec.replication.kmsKey.arn"]);
    // `kmsKey: {}` defaults `create` to false: neither create nor arn.
    let neither = database(json!({"instance": {"identifier": "a", "region": "us-east-1"},
                                  "replication": {"kmsKey": {}}}));
    assert_eq!(refused(&neither), ["spec.replication.kmsKey"]);
    // A shared lifecycle rule's prefix must cover the backups' prefix (default <owner>/<name>/).
    let rule = |storage: Value| repository(json!({"repository": "o/r", "storage": storage}));
    for covering in ["", "o/", "o/r/"] {
        assert_eq!(
            refused(&rule(json!({"bucket": "abc", "lifecycleRulePrefix": covering}))),
            Vec::<String>::new()
        );
    }
    let elsewhere = rule(json!({"bucket": "abc", "lifecycleRulePrefix": "other/"}));
    assert_eq!(refused(&elsewhere), ["spec.storage.lifecycleRulePrefix"]);
    let own_prefix = rule(json!({"bucket": "abc", "prefix": "backups/r/", "lifecycleRulePrefix": "o/"}));
    assert_eq!(refused(&own_prefix), ["spec.storage.lifecycleRulePrefix"]);
    let fine = rule(json!({"bucket": "abc", "prefix": "backups/r/", "lifecycleRulePrefix": "backups/"}));
    assert_eq!(refused(&fine), Vec::<String>::new());
}

#[test]
fn blocking_errors_stop_the_rules_as_in_the_api_server() {
    let errors = validator()
        .validate(&database(
            json!({"instance": {"identifier": "a", "region": "us-west-2"}, "mode": 3}),
        ))
        .expect_err("invalid");
    assert_eq!(errors[0].field, "spec.mode");
    assert!(
        errors
            .iter()
            .all(|e| e.field != "spec.replication.destinationRegion"),
        "{errors:?}"
    );
    assert!(
        errors
            .last()
            .is_some_and(|e| e.message.contains("some validation rules were not checked"))
    );
}

#[test]
fn metadata_names_follow_the_dns_subdomain_rule() {
    let named = |name: Value| {
        let mut manifest = database(db_spec());
        manifest["metadata"]["name"] = name;
        refused(&manifest)
    };
    for bad in [
        json!("Orders"),
        json!("orders_db"),
        json!("-orders"),
        json!("a..b"),
        json!("x".repeat(254)),
        json!(7),
    ] {
        assert_eq!(named(bad.clone()), ["metadata.name"], "{bad}");
    }
    for good in ["orders", "orders.db-1", "0", &"x".repeat(253)] {
        assert!(named(json!(good)).is_empty(), "{good}");
    }
    let mut unnamed = database(db_spec());
    unnamed["metadata"] = json!({"generateName": "orders-"});
    assert!(refused(&unnamed).is_empty());
    unnamed["metadata"] = json!({"labels": {"a": "b"}});
    assert_eq!(refused(&unnamed), ["metadata.name"]);
    let mut labelled = database(db_spec());
    labelled["metadata"]["labels"] = json!({"team": "a b"});
    assert_eq!(refused(&labelled), ["metadata.labels"]);
}

#[test]
fn a_schema_keyword_the_validator_does_not_implement_is_refused_when_it_is_built() {
    let mut crd = crate::api::BackedUpDatabase::crd();
    let schema = crd.spec.versions[0]
        .schema
        .as_mut()
        .and_then(|s| s.open_api_v3_schema.as_mut())
        .expect("schema");
    schema.one_of = Some(vec![Default::default()]);
    let error = ManifestValidator::from_crds(&[crd]).expect_err("oneOf is not implemented");
    assert!(error.to_string().contains("oneOf"), "{error}");
}

#[test]
fn rules_are_not_evaluated_on_null_values() {
    let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "lag": {"type": "string", "nullable": true,
                "x-kubernetes-validations": [{"rule": "duration(self) > duration('0s')"}]}}}}});
    let rules = rules::Rules::compile(&schema).expect("compiles");
    assert_eq!(
        rules.evaluate(&json!({"spec": {"lag": "0s"}}))[0].field,
        "spec.lag"
    );
    assert!(rules.evaluate(&json!({"spec": {"lag": "1h"}})).is_empty());
    assert!(rules.evaluate(&json!({"spec": {"lag": null}})).is_empty());
}

#[test]
fn a_null_field_is_unset_for_the_rules_as_in_the_api_server() {
    let arn = "arn:aws:kms:us-west-2:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let spec = |key: Value| {
        json!({"instance": {"identifier": "a", "region": "us-east-1"},
                                  "replication": {"kmsKey": key}})
    };
    assert!(refused(&database(spec(json!({"create": true, "arn": null})))).is_empty());
    assert_eq!(
        refused(&database(spec(json!({"create": false, "arn": null})))),
        ["spec.replication.kmsKey"]
    );
    assert!(refused(&database(spec(json!({"create": null, "arn": arn})))).is_empty());
}

#[test]
fn a_panic_in_the_cel_engine_is_contained_and_silent() {
    assert_eq!(rules::quietly(|| 7), Some(7));
    assert_eq!(rules::quietly(|| -> i32 { panic!("the engine failed") }), None);
    // Panics outside stay as they were (the hook only keeps quiet inside `quietly`).
    assert!(std::panic::catch_unwind(|| panic!("outside")).is_err());
}

#[test]
fn the_examples_are_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).expect("examples/") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read");
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text).expect("yaml");
        for doc in docs.iter().filter(|d| validator().knows(d)) {
            validator()
                .validate(doc)
                .unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
            seen += 1;
        }
    }
    assert_eq!(seen, 5);
}

#[test]
fn a_coverage_selector_names_one_thing_and_an_exemption_needs_a_reason() {
    let coverage = |databases: Value, exemptions: Value| {
        json!({"apiVersion": "backupwarden.io/v1alpha1", "kind": "BackupCoverage",
               "metadata": {"name": "company"},
               "spec": {"namespace": "team", "databases": databases, "exemptions": exemptions}})
    };
    let accounts = json!([{"regions": ["us-east-1"]}]);
    let ok = validator()
        .validate(&coverage(
            json!({"accounts": accounts, "include": [{"identifier": "prod-*"}, {"tag": {"key": "env"}}]}),
            json!({}),
        ))
        .expect("valid");
    assert_eq!(ok["spec"]["mode"], "Report");
    assert_eq!(ok["spec"]["listLimit"], 50);
    assert_eq!(ok["spec"]["exemptions"]["tag"], "backupwarden.io/exempt");

    let both = validator().validate(&coverage(
        json!({"accounts": accounts, "exclude": [{"identifier": "a", "tag": {"key": "env"}}]}),
        json!({}),
    ));
    let errors = format!("{both:?}");
    assert!(
        errors.contains("a selector names exactly one of identifier or tag"),
        "{errors}"
    );

    let no_reason = validator().validate(&coverage(
        json!({"accounts": accounts}),
        json!({"databases": [{"instance": {"identifier": "legacy", "region": "us-east-1"}}]}),
    ));
    assert!(format!("{no_reason:?}").contains("reason"), "{no_reason:?}");

    let no_region = validator().validate(&coverage(json!({"accounts": [{"regions": []}]}), json!({})));
    assert!(no_region.is_err(), "an account scans at least one region");
    let bad_region = validator().validate(&coverage(
        json!({"accounts": [{"regions": ["mars-1"]}]}),
        json!({}),
    ));
    assert!(bad_region.is_err(), "a region is a region name");
}

#[test]
fn the_values_derived_from_a_valid_repository_are_valid_too() {
    let longest = format!("{}/{}", "a".repeat(39), "r".repeat(100));
    for name in [
        "a/b",
        "narrative-io/...",
        "x/.github",
        "o-w-n-e-r/_.-",
        longest.as_str(),
    ] {
        let object = validator()
            .validate(&repository(
                json!({"repository": name, "storage": {"bucket": "abc"}}),
            ))
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let typed: crate::api::BackedUpRepository = serde_json::from_value(object).expect("typed");
        let explicit = repository(json!({"repository": name, "storage": {"bucket": "abc",
            "prefix": typed.spec.storage_prefix()}, "workflow": {"uses": typed.spec.reusable_workflow()}}));
        validator()
            .validate(&explicit)
            .unwrap_or_else(|e| panic!("the defaults of {name} are refused: {e:?}"));
    }
}
