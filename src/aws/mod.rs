//! AWS adapters: one SDK client set per (role, region), reused; every call counted by
//! service and operation; errors classified once for retry and reporting decisions.

pub mod budget;
pub mod calls;
pub mod cloudtrail;
pub mod drill;
pub mod inventory;
pub mod kms;
pub mod rds;
pub mod s3;

use std::{collections::HashMap, sync::Arc};

use aws_config::{BehaviorVersion, Region, SdkConfig, sts::AssumeRoleProvider};
use tokio::sync::{Mutex, Semaphore};

pub use calls::ApiCalls;

/// Where a call goes: a region, and the role to assume (None: the controller's own identity).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope {
    pub role_arn: Option<String>,
    pub region: String,
}

impl Scope {
    pub fn new(role_arn: Option<&str>, region: &str) -> Self {
        Self {
            role_arn: role_arn.map(str::to_string),
            region: region.to_string(),
        }
    }

    /// The account and region whose request budgets the scope's calls draw from: the
    /// role's account (arn:aws:iam::ACCOUNT:role/NAME), or "" for the controller's own.
    fn account_region(&self) -> (String, String) {
        let account = self
            .role_arn
            .as_deref()
            .and_then(|arn| arn.split(':').nth(4))
            .unwrap_or_default();
        (account.to_string(), self.region.clone())
    }
}

/// Settings of the AWS side, from the command line.
#[derive(Clone, Debug)]
pub struct AwsSettings {
    /// Send every call here instead of AWS (an emulator in tests and the demo).
    pub endpoint_url: Option<String>,
    /// Calls in flight per (role, region).
    pub concurrency: usize,
    pub timeouts: crate::timeouts::Timeouts,
    /// RDS requests per account and region, shared by every RDS call made there.
    pub rds_rate: budget::Rate,
    /// KMS key writes (CreateKey, CreateAlias, ScheduleKeyDeletion, CancelKeyDeletion) per
    /// account and region, each operation its own budget, as KMS's quotas are.
    pub kms_write_rate: budget::Rate,
}

/// A client set for one scope, and the permits that bound its calls in flight.
#[derive(Clone, Debug)]
pub struct Clients {
    pub rds: aws_sdk_rds::Client,
    pub kms: aws_sdk_kms::Client,
    /// Resource Groups Tagging API: finds backup-warden's keys by their tags in one call.
    pub tagging: aws_sdk_resourcegroupstagging::Client,
    pub s3: aws_sdk_s3::Client,
    pub cloudtrail: aws_sdk_cloudtrail::Client,
    /// CloudWatch Logs: the audit trail's log group.
    pub logs: aws_sdk_cloudwatchlogs::Client,
    /// SQS: the queue of change events.
    pub sqs: aws_sdk_sqs::Client,
    pub limit: Arc<Semaphore>,
    /// The RDS request budget of the scope's account and region.
    pub rds_budget: Arc<budget::Budget>,
}

/// Builds clients lazily and keeps one set per scope.
#[derive(Debug)]
pub struct AwsClients {
    base: SdkConfig,
    settings: AwsSettings,
    calls: Arc<ApiCalls>,
    cache: Mutex<HashMap<Scope, Clients>>,
    /// The request budgets every call draws from.
    budgets: Arc<budget::Budgets>,
}

impl AwsClients {
    /// Credentials come from the default chain (environment, IRSA / EKS Pod Identity, profile).
    pub async fn from_env(settings: AwsSettings, calls: Arc<ApiCalls>) -> Self {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(url) = &settings.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        Self::new(loader.load().await, settings, calls)
    }

    /// Every client built from `base` (and the STS calls behind an assumed role) gives up
    /// after the settings' timeouts.
    pub fn new(base: SdkConfig, settings: AwsSettings, calls: Arc<ApiCalls>) -> Self {
        let t = settings.timeouts;
        let base = base
            .to_builder()
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(t.connect)
                    .read_timeout(t.attempt)
                    .operation_attempt_timeout(t.attempt)
                    .operation_timeout(t.operation)
                    .build(),
            )
            .build();
        Self {
            base,
            budgets: Arc::new(budget::Budgets::new(settings.rds_rate, settings.kms_write_rate)),
            settings,
            calls,
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub fn calls(&self) -> &Arc<ApiCalls> {
        &self.calls
    }

    /// The request budgets (RDS, KMS writes) of every account and region.
    pub fn budgets(&self) -> &Arc<budget::Budgets> {
        &self.budgets
    }

    /// Waits for a KMS key write (`operation`) in the scope's account and region.
    pub async fn kms_write(&self, scope: &Scope, operation: &'static str) {
        self.budgets.kms_write(scope, operation).await;
    }

    pub async fn for_scope(&self, scope: &Scope) -> Clients {
        let mut cache = self.cache.lock().await;
        if let Some(clients) = cache.get(scope) {
            return clients.clone();
        }
        let mut config = self.base.to_builder().region(Region::new(scope.region.clone()));
        if let Some(role) = &scope.role_arn {
            let provider = AssumeRoleProvider::builder(role.clone())
                .session_name("backup-warden")
                .region(Region::new(scope.region.clone()))
                .configure(&self.base)
                .build()
                .await;
            config =
                config.credentials_provider(aws_sdk_rds::config::SharedCredentialsProvider::new(provider));
        }
        let config = config.build();
        let counter = calls::CallCounter::new(self.calls.clone());
        let clients = Clients {
            rds: aws_sdk_rds::Client::from_conf(
                aws_sdk_rds::config::Builder::from(&config)
                    .interceptor(counter.clone())
                    .build(),
            ),
            kms: aws_sdk_kms::Client::from_conf(
                aws_sdk_kms::config::Builder::from(&config)
                    .interceptor(counter.clone())
                    .build(),
            ),
            tagging: aws_sdk_resourcegroupstagging::Client::from_conf(
                aws_sdk_resourcegroupstagging::config::Builder::from(&config)
                    .interceptor(counter.clone())
                    .build(),
            ),
            cloudtrail: aws_sdk_cloudtrail::Client::from_conf(
                aws_sdk_cloudtrail::config::Builder::from(&config)
                    .interceptor(counter.clone())
                    .build(),
            ),
            logs: aws_sdk_cloudwatchlogs::Client::from_conf(
                aws_sdk_cloudwatchlogs::config::Builder::from(&config)
                    .interceptor(counter.clone())
                    .build(),
            ),
            sqs: aws_sdk_sqs::Client::from_conf(
                aws_sdk_sqs::config::Builder::from(&config)
                    .interceptor(counter.clone())
                    .build(),
            ),
            // Path-style addressing: bucket names with dots, and emulators on 127.0.0.1.
            s3: aws_sdk_s3::Client::from_conf(
                aws_sdk_s3::config::Builder::from(&config)
                    .interceptor(counter)
                    .force_path_style(self.settings.endpoint_url.is_some())
                    .build(),
            ),
            limit: Arc::new(Semaphore::new(self.settings.concurrency.max(1))),
            rds_budget: self.budgets.rds(scope),
        };
        cache.insert(scope.clone(), clients.clone());
        clients
    }
}

/// What went wrong with an AWS call, in the terms that decide what happens next.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{operation}: {code}: {message}")]
pub struct AwsError {
    pub operation: &'static str,
    pub kind: AwsErrorKind,
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsErrorKind {
    /// Throttled or a server-side error: back off and retry.
    Transient,
    /// Missing permission: a human must grant it.
    AccessDenied,
    /// The named thing does not exist.
    NotFound,
    /// Refused for another reason (invalid state, parameters): reported as is.
    Refused,
    /// The account's quota (automated-backup replications, keys, aliases) is reached: a
    /// human must raise it in Service Quotas.
    QuotaExceeded,
    /// The region's endpoint does not resolve: a region that does not exist or that the
    /// network cannot reach. A human must fix the spec or the network.
    Unreachable,
}

impl AwsError {
    /// What a person must do about an access-denied error.
    pub fn denied_message(&self) -> String {
        format!(
            "AWS refused {} ({}): {}; grant it to backup-warden's role",
            self.operation, self.code, self.message
        )
    }

    pub fn from_sdk<E>(
        operation: &'static str,
        err: &aws_sdk_rds::error::SdkError<E, aws_smithy_runtime_api::http::Response>,
    ) -> Self
    where
        E: aws_sdk_rds::error::ProvideErrorMetadata + std::error::Error + 'static,
    {
        use aws_sdk_rds::{error::SdkError, operation::RequestId};
        let (code, message) = match err {
            SdkError::ServiceError(service) => {
                let status = service.raw().status().as_u16();
                let code = service.err().code().unwrap_or_default();
                let message = service.err().message().unwrap_or_default();
                // Some answers carry no code or message (a proxy's or an emulator's HTML
                // page): say what is known instead of "Unknown: ".
                let request = err
                    .request_id()
                    .map(|id| format!(", request id {id}"))
                    .unwrap_or_default();
                let message = if message.is_empty() {
                    format!(
                        "HTTP {status}, error code {}{request}",
                        if code.is_empty() { "none" } else { code }
                    )
                } else {
                    format!("{message} (HTTP {status}{request})")
                };
                let code = match code {
                    "" if status >= 500 => "ServerError",
                    "" => "UnknownError",
                    code => code,
                };
                (code.to_string(), message)
            }
            SdkError::TimeoutError(_) => ("Timeout".to_string(), "the request timed out".to_string()),
            SdkError::DispatchFailure(failure) => {
                let cause = error_chain(err);
                // A region that does not exist has no endpoint: its name does not resolve
                // (hyper's "dns error", for the call itself or the STS call behind it).
                let code = if cause.contains("dns error") {
                    "EndpointNotFound"
                } else if failure.is_timeout() {
                    "Timeout"
                } else {
                    "DispatchFailure"
                };
                (
                    code.to_string(),
                    format!("could not reach the AWS endpoint: {cause}"),
                )
            }
            SdkError::ResponseError(_) => (
                "ResponseError".to_string(),
                format!("the response could not be read: {}", error_chain(err)),
            ),
            _ => ("Unknown".to_string(), error_chain(err)),
        };
        let kind = classify(&code, matches!(err, SdkError::ServiceError(_)));
        Self {
            operation,
            kind,
            code,
            message,
        }
    }
}

/// An error and its sources, as one line.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(e) = source {
        let text = e.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        source = e.source();
    }
    parts.join(": ")
}

/// Classifies by error code, as documented across RDS, KMS and STS.
fn classify(code: &str, answered: bool) -> AwsErrorKind {
    match code {
        "Throttling"
        | "ThrottlingException"
        | "RequestLimitExceeded"
        | "TooManyRequestsException"
        | "ServiceUnavailable"
        | "InternalFailure"
        | "InternalError"
        | "RequestTimeout"
        | "ServerError" => AwsErrorKind::Transient,
        "EndpointNotFound" => AwsErrorKind::Unreachable,
        "AccessDenied"
        | "AccessDeniedException"
        | "UnauthorizedOperation"
        | "NotAuthorized"
        | "InvalidClientTokenId"
        | "UnrecognizedClientException"
        | "ExpiredToken" => AwsErrorKind::AccessDenied,
        // RDS: DBInstanceAutomatedBackupQuotaExceeded, ...; KMS: LimitExceededException.
        c if c.ends_with("QuotaExceeded")
            || c.ends_with("QuotaExceededFault")
            || c == "LimitExceededException" =>
        {
            AwsErrorKind::QuotaExceeded
        }
        // CloudTrail: TrailNotFoundException; CloudWatch Logs: ResourceNotFoundException.
        c if c.ends_with("NotFound") || c.ends_with("NotFoundFault") || c.ends_with("NotFoundException") => {
            AwsErrorKind::NotFound
        }
        _ if !answered => AwsErrorKind::Transient,
        _ => AwsErrorKind::Refused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_classified() {
        assert_eq!(classify("Throttling", true), AwsErrorKind::Transient);
        assert_eq!(classify("AccessDenied", true), AwsErrorKind::AccessDenied);
        assert_eq!(
            classify("AccessDeniedException", true),
            AwsErrorKind::AccessDenied
        );
        assert_eq!(classify("DBInstanceNotFound", true), AwsErrorKind::NotFound);
        assert_eq!(classify("NotFoundException", true), AwsErrorKind::NotFound);
        assert_eq!(classify("TrailNotFoundException", true), AwsErrorKind::NotFound);
        assert_eq!(classify("InvalidDBInstanceState", true), AwsErrorKind::Refused);
        assert_eq!(classify("DispatchFailure", false), AwsErrorKind::Transient);
        assert_eq!(classify("ServerError", true), AwsErrorKind::Transient);
        assert_eq!(classify("EndpointNotFound", false), AwsErrorKind::Unreachable);
        assert_eq!(
            classify("DBInstanceAutomatedBackupQuotaExceeded", true),
            AwsErrorKind::QuotaExceeded
        );
        assert_eq!(
            classify("LimitExceededException", true),
            AwsErrorKind::QuotaExceeded
        );
        assert_eq!(classify("RequestLimitExceeded", true), AwsErrorKind::Transient);
    }

    #[tokio::test]
    async fn the_roles_of_one_account_share_its_rds_budget_in_a_region() {
        let settings = AwsSettings {
            endpoint_url: Some("http://127.0.0.1:9".into()),
            concurrency: 1,
            timeouts: crate::timeouts::Timeouts::default(),
            rds_rate: budget::Rate::default(),
            kms_write_rate: budget::Rate::KMS_WRITES,
        };
        let base = aws_config::defaults(BehaviorVersion::latest())
            .no_credentials()
            .region(Region::new("eu-west-1"))
            .load()
            .await;
        let clients = AwsClients::new(base, settings, Arc::new(ApiCalls::default()));
        let budget = |role: Option<&'static str>, region: &'static str| {
            let clients = &clients;
            async move { clients.for_scope(&Scope::new(role, region)).await.rds_budget }
        };
        let a = budget(Some("arn:aws:iam::111111111111:role/a"), "eu-west-1").await;
        let b = budget(Some("arn:aws:iam::111111111111:role/b"), "eu-west-1").await;
        let other_account = budget(Some("arn:aws:iam::222222222222:role/a"), "eu-west-1").await;
        let other_region = budget(Some("arn:aws:iam::111111111111:role/a"), "eu-west-2").await;
        let own = budget(None, "eu-west-1").await;
        assert!(Arc::ptr_eq(&a, &b));
        for other in [&other_account, &other_region, &own] {
            assert!(!Arc::ptr_eq(&a, other));
        }
    }
}
