//! The request ids of the calls an action makes, for its evidence record: the AWS clients'
//! interceptor (and the GitHub client) note each response's id while an action runs inside
//! [`collect`].

use std::{cell::RefCell, future::Future};

tokio::task_local! {
    static IDS: RefCell<Vec<String>>;
}

/// Runs `action`, returning its output and "Operation request-id" for every call it made.
pub async fn collect<T>(action: impl Future<Output = T>) -> (T, Vec<String>) {
    IDS.scope(RefCell::new(Vec::new()), async move {
        let out = action.await;
        let ids = IDS.with(|ids| ids.take());
        (out, ids)
    })
    .await
}

/// Notes one call's request id, when an action is collecting (otherwise nothing).
pub fn note(operation: &str, request_id: &str) {
    let _ = IDS.try_with(|ids| ids.borrow_mut().push(format!("{operation} {request_id}")));
}

/// The request id of an AWS response: RDS, KMS and most services send `x-amzn-RequestId`
/// (or `x-amz-request-id`), S3 `x-amz-request-id` with `x-amz-id-2`.
pub fn aws_request_id(headers: &aws_smithy_runtime_api::http::Headers) -> Option<String> {
    ["x-amzn-requestid", "x-amz-request-id"]
        .iter()
        .find_map(|name| headers.get(*name))
        .map(|id| match headers.get("x-amz-id-2") {
            Some(extended) => format!("{id} ({extended})"),
            None => id.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ids_noted_inside_collect_are_returned_and_nothing_leaks_outside() {
        note("Outside", "0");
        let ((), ids) = collect(async {
            note("ModifyDBInstance", "1");
            tokio::task::yield_now().await;
            note("DescribeDBInstances", "2");
        })
        .await;
        assert_eq!(ids, ["ModifyDBInstance 1", "DescribeDBInstances 2"]);
        let ((), again) = collect(async {}).await;
        assert!(again.is_empty());
    }

    #[test]
    fn the_aws_header_names_are_found_whatever_their_case() {
        let mut headers = aws_smithy_runtime_api::http::Headers::new();
        headers.insert("X-Amzn-RequestId", "abc");
        assert_eq!(aws_request_id(&headers).as_deref(), Some("abc"));
        let mut s3 = aws_smithy_runtime_api::http::Headers::new();
        s3.insert("x-amz-request-id", "R1");
        s3.insert("x-amz-id-2", "X2");
        assert_eq!(aws_request_id(&s3).as_deref(), Some("R1 (X2)"));
    }
}
