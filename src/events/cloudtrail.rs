//! CloudTrail management events as EventBridge delivers them ("AWS API Call via
//! CloudTrail"), to what they changed. Pure: the SQS consumer hands each message body here.

use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

use super::Target;

/// What one message says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A change to these, made at this time.
    Changed(Vec<Target>, Timestamp),
    /// A well-formed event that changes nothing backup-warden keeps (another call, or one
    /// AWS refused); its name, for the log.
    Ignored(String),
}

fn text<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// An RDS instance ARN (`arn:aws:rds:REGION:ACCOUNT:db:IDENTIFIER`) as a target.
fn instance_arn(arn: &str) -> Option<Target> {
    let parts: Vec<&str> = arn.split(':').collect();
    match parts.as_slice() {
        ["arn", _, "rds", region, account, "db", identifier] => Some(Target::Instance {
            account: Some(account.to_string()),
            region: region.to_string(),
            identifier: identifier.to_ascii_lowercase(),
        }),
        _ => None,
    }
}

/// Parses one message body; `Err` says why it cannot be read (a poison message).
pub fn parse(body: &str) -> Result<Parsed, String> {
    let event: Value = serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
    let detail = event
        .get("detail")
        .filter(|d| d.is_object())
        .ok_or("no detail: not an EventBridge event")?;
    let name = text(detail, "/eventName").ok_or("no detail.eventName")?;
    let source = text(detail, "/eventSource").ok_or("no detail.eventSource")?;
    let region = text(detail, "/awsRegion")
        .or_else(|| text(&event, "/region"))
        .ok_or("no detail.awsRegion")?
        .to_string();
    let at = text(detail, "/eventTime")
        .or_else(|| text(&event, "/time"))
        .ok_or("no detail.eventTime")?
        .parse::<Timestamp>()
        .map_err(|e| format!("detail.eventTime: {e}"))?;
    // A call AWS refused changed nothing.
    if text(detail, "/errorCode").is_some() {
        return Ok(Parsed::Ignored(format!("{name} (refused)")));
    }
    let account = text(detail, "/recipientAccountId")
        .or_else(|| text(&event, "/account"))
        .map(str::to_string);
    let param = |key: &str| text(detail, &format!("/requestParameters/{key}"));
    let missing = |key: &str| format!("{name}: no requestParameters.{key}");
    let targets = match (source, name) {
        ("rds.amazonaws.com", "ModifyDBInstance" | "CreateDBInstance" | "DeleteDBInstance") => {
            let identifier = param("dBInstanceIdentifier").ok_or_else(|| missing("dBInstanceIdentifier"))?;
            let mut targets = vec![Target::Instance {
                account: account.clone(),
                region: region.clone(),
                identifier: identifier.to_ascii_lowercase(),
            }];
            // A rename: the objects naming the new identifier too.
            if let Some(new) = param("newDBInstanceIdentifier") {
                targets.push(Target::Instance {
                    account: account.clone(),
                    region: region.clone(),
                    identifier: new.to_ascii_lowercase(),
                });
            }
            // One more or one fewer: the coverages of the region count again.
            if name != "ModifyDBInstance" || param("newDBInstanceIdentifier").is_some() {
                targets.push(Target::Instances { account, region });
            }
            targets
        }
        (
            "rds.amazonaws.com",
            "StartDBInstanceAutomatedBackupsReplication" | "StopDBInstanceAutomatedBackupsReplication",
        ) => {
            let arn = param("sourceDBInstanceArn").ok_or_else(|| missing("sourceDBInstanceArn"))?;
            vec![instance_arn(arn).ok_or_else(|| format!("{name}: not an instance ARN: {arn}"))?]
        }
        ("rds.amazonaws.com", "DeleteDBInstanceAutomatedBackup") => {
            vec![Target::ReplicasIn { account, region }]
        }
        ("kms.amazonaws.com", "DisableKey" | "ScheduleKeyDeletion" | "PutKeyPolicy") => {
            let key = param("keyId").ok_or_else(|| missing("keyId"))?;
            vec![Target::Key {
                account,
                region,
                key: key.to_string(),
            }]
        }
        ("kms.amazonaws.com", "DeleteAlias" | "UpdateAlias") => {
            let alias = param("aliasName").ok_or_else(|| missing("aliasName"))?;
            vec![Target::Alias {
                account,
                region,
                alias: alias.to_string(),
            }]
        }
        // CloudTrail names PutBucketLifecycleConfiguration "PutBucketLifecycle".
        (
            "s3.amazonaws.com",
            "PutBucketLifecycle" | "PutBucketLifecycleConfiguration" | "DeleteBucketLifecycle",
        ) => {
            let bucket = param("bucketName").ok_or_else(|| missing("bucketName"))?;
            vec![Target::Bucket {
                name: bucket.to_string(),
            }]
        }
        ("cloudtrail.amazonaws.com", "StopLogging" | "DeleteTrail" | "UpdateTrail") => {
            let trail = param("name").ok_or_else(|| missing("name"))?;
            vec![Target::Trail {
                account,
                region,
                name: trail.to_string(),
            }]
        }
        _ => return Ok(Parsed::Ignored(name.to_string())),
    };
    Ok(Parsed::Changed(targets, at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// An event as EventBridge sends it to SQS (AWS's documented shape).
    fn event(source: &str, name: &str, parameters: Value) -> String {
        json!({
            "version": "0",
            "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
            "detail-type": "AWS API Call via CloudTrail",
            "source": format!("aws.{}", source.split('.').next().unwrap_or_default()),
            "account": "111122223333",
            "time": "2026-12-01T10:00:01Z",
            "region": "us-east-1",
            "resources": [],
            "detail": {
                "eventVersion": "1.09",
                "eventTime": "2026-12-01T10:00:00Z",
                "eventSource": source,
                "eventName": name,
                "awsRegion": "us-east-1",
                "requestParameters": parameters,
                "recipientAccountId": "111122223333",
            }
        })
        .to_string()
    }

    fn changed(body: &str) -> Vec<Target> {
        match parse(body) {
            Ok(Parsed::Changed(targets, at)) => {
                assert_eq!(at.to_string(), "2026-12-01T10:00:00Z");
                targets
            }
            other => panic!("{other:?}"),
        }
    }

    fn account() -> Option<String> {
        Some("111122223333".into())
    }

    #[test]
    fn each_event_names_what_it_changed() {
        let instance = |id: &str| Target::Instance {
            account: account(),
            region: "us-east-1".into(),
            identifier: id.into(),
        };
        assert_eq!(
            changed(&event(
                "rds.amazonaws.com",
                "ModifyDBInstance",
                json!({"dBInstanceIdentifier": "Orders-DB", "backupRetentionPeriod": 1})
            )),
            [instance("orders-db")]
        );
        let region = Target::Instances {
            account: account(),
            region: "us-east-1".into(),
        };
        assert_eq!(
            changed(&event(
                "rds.amazonaws.com",
                "ModifyDBInstance",
                json!({"dBInstanceIdentifier": "old", "newDBInstanceIdentifier": "new"})
            )),
            [instance("old"), instance("new"), region.clone()]
        );
        assert_eq!(
            changed(&event(
                "rds.amazonaws.com",
                "CreateDBInstance",
                json!({"dBInstanceIdentifier": "new-db", "engine": "postgres"})
            )),
            [instance("new-db"), region]
        );
        assert_eq!(
            changed(&event(
                "rds.amazonaws.com",
                "StopDBInstanceAutomatedBackupsReplication",
                json!({"sourceDBInstanceArn": "arn:aws:rds:eu-west-1:444455556666:db:orders-db"})
            )),
            [Target::Instance {
                account: Some("444455556666".into()),
                region: "eu-west-1".into(),
                identifier: "orders-db".into(),
            }]
        );
        assert_eq!(
            changed(&event(
                "rds.amazonaws.com",
                "DeleteDBInstanceAutomatedBackup",
                json!({"dbiResourceId": "db-ABC"})
            )),
            [Target::ReplicasIn {
                account: account(),
                region: "us-east-1".into()
            }]
        );
        assert_eq!(
            changed(&event(
                "kms.amazonaws.com",
                "DisableKey",
                json!({"keyId": "1234abcd"})
            )),
            [Target::Key {
                account: account(),
                region: "us-east-1".into(),
                key: "1234abcd".into()
            }]
        );
        assert_eq!(
            changed(&event(
                "kms.amazonaws.com",
                "DeleteAlias",
                json!({"aliasName": "alias/backup-warden/us-east-1/orders-db"})
            )),
            [Target::Alias {
                account: account(),
                region: "us-east-1".into(),
                alias: "alias/backup-warden/us-east-1/orders-db".into()
            }]
        );
        assert_eq!(
            changed(&event(
                "s3.amazonaws.com",
                "PutBucketLifecycle",
                json!({"bucketName": "backups", "LifecycleConfiguration": {}})
            )),
            [Target::Bucket {
                name: "backups".into()
            }]
        );
        assert_eq!(
            changed(&event(
                "cloudtrail.amazonaws.com",
                "StopLogging",
                json!({"name": "org"})
            )),
            [Target::Trail {
                account: account(),
                region: "us-east-1".into(),
                name: "org".into()
            }]
        );
    }

    #[test]
    fn other_calls_and_refused_ones_are_ignored() {
        assert_eq!(
            parse(&event("rds.amazonaws.com", "DescribeDBInstances", json!({}))),
            Ok(Parsed::Ignored("DescribeDBInstances".into()))
        );
        let mut refused: Value =
            serde_json::from_str(&event("kms.amazonaws.com", "DisableKey", json!({"keyId": "k"})))
                .expect("json");
        refused["detail"]["errorCode"] = json!("AccessDenied");
        assert_eq!(
            parse(&refused.to_string()),
            Ok(Parsed::Ignored("DisableKey (refused)".into()))
        );
    }

    #[test]
    fn what_cannot_be_read_says_why() {
        assert!(parse("{not json").unwrap_err().starts_with("not JSON"));
        assert_eq!(
            parse(r#"{"detail-type": "Scheduled Event"}"#),
            Err("no detail: not an EventBridge event".into())
        );
        assert_eq!(
            parse(&event("kms.amazonaws.com", "DisableKey", json!({}))),
            Err("DisableKey: no requestParameters.keyId".into())
        );
        assert!(
            parse(&event(
                "rds.amazonaws.com",
                "StartDBInstanceAutomatedBackupsReplication",
                json!({"sourceDBInstanceArn": "arn:aws:s3:::bucket"})
            ))
            .unwrap_err()
            .contains("not an instance ARN")
        );
    }
}
