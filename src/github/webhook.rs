//! GitHub webhook deliveries: which are genuine, fresh and small enough to read. Genuine:
//! `X-Hub-Signature-256` is `sha256=` and the HMAC-SHA256 of the body under the shared
//! secret, compared in constant time. Fresh: a delivery id (`X-GitHub-Delivery`) already
//! accepted is a replay. Small: GitHub caps payloads at 25 MB; we read far less. The
//! receiver (issue 15) builds on this; no I/O here.

use std::{
    collections::{HashSet, VecDeque},
    sync::Mutex,
};

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Why a delivery was refused; each a label of the refusals metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    TooLarge,
    MissingSignature,
    BadSignature,
    MissingDeliveryId,
    Replayed,
}

impl Refused {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TooLarge => "too_large",
            Self::MissingSignature => "missing_signature",
            Self::BadSignature => "bad_signature",
            Self::MissingDeliveryId => "missing_delivery_id",
            Self::Replayed => "replayed",
        }
    }
}

/// Checks deliveries against one secret, remembering the last `remembered` accepted ids.
pub struct Gate {
    secret: Vec<u8>,
    max_body: usize,
    remembered: usize,
    seen: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    ids: HashSet<String>,
    order: VecDeque<String>,
}

impl Gate {
    pub fn new(secret: &[u8], max_body: usize, remembered: usize) -> Self {
        Self {
            secret: secret.to_vec(),
            max_body,
            remembered: remembered.max(1),
            seen: Mutex::new(Seen::default()),
        }
    }

    /// Accepts a delivery once. The signature is checked before the id is looked at, so a
    /// forged delivery can neither be accepted nor make a genuine one look replayed.
    pub fn admit(&self, signature: Option<&str>, delivery: Option<&str>, body: &[u8]) -> Result<(), Refused> {
        if body.len() > self.max_body {
            return Err(Refused::TooLarge);
        }
        let signature = signature
            .and_then(|s| s.strip_prefix("sha256="))
            .ok_or(Refused::MissingSignature)?;
        let expected = hex::decode(signature).map_err(|_| Refused::BadSignature)?;
        // Any key length is valid for HMAC: this cannot fail.
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.secret).map_err(|_| Refused::BadSignature)?;
        mac.update(body);
        mac.verify_slice(&expected).map_err(|_| Refused::BadSignature)?;
        let id = delivery
            .filter(|d| !d.is_empty())
            .ok_or(Refused::MissingDeliveryId)?;
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if !seen.ids.insert(id.to_string()) {
            return Err(Refused::Replayed);
        }
        seen.order.push_back(id.to_string());
        while seen.order.len() > self.remembered {
            if let Some(old) = seen.order.pop_front() {
                seen.ids.remove(&old);
            }
        }
        Ok(())
    }
}

impl Gate {
    /// Forgets an admitted delivery that could not be handled (no replica to act on it):
    /// GitHub's redelivery keeps the delivery id, and must not be refused as a replay.
    pub fn forget(&self, delivery: &str) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.ids.remove(delivery) {
            seen.order.retain(|d| d != delivery);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GitHub's own example ("Validating webhook deliveries").
    const SECRET: &[u8] = b"It's a Secret to Everybody";
    const BODY: &[u8] = b"Hello, World!";
    const SIGNATURE: &str = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    #[test]
    fn githubs_example_is_accepted_once() {
        let gate = Gate::new(SECRET, 1024, 10);
        assert_eq!(gate.admit(Some(SIGNATURE), Some("d-1"), BODY), Ok(()));
        assert_eq!(
            gate.admit(Some(SIGNATURE), Some("d-1"), BODY),
            Err(Refused::Replayed)
        );
        assert_eq!(gate.admit(Some(SIGNATURE), Some("d-2"), BODY), Ok(()));
    }

    #[test]
    fn forged_altered_oversized_and_unsigned_deliveries_are_refused() {
        let gate = Gate::new(SECRET, 8, 10);
        assert_eq!(
            gate.admit(Some(SIGNATURE), Some("d"), BODY),
            Err(Refused::TooLarge)
        );
        let gate = Gate::new(SECRET, 1024, 10);
        assert_eq!(
            gate.admit(Some(SIGNATURE), Some("d"), b"Hello, World?"),
            Err(Refused::BadSignature)
        );
        let other = Gate::new(b"another secret", 1024, 10);
        assert_eq!(
            other.admit(Some(SIGNATURE), Some("d"), BODY),
            Err(Refused::BadSignature)
        );
        for bad in [None, Some("sha1=757107ea"), Some("757107ea0eb2509f")] {
            assert_eq!(gate.admit(bad, Some("d"), BODY), Err(Refused::MissingSignature));
        }
        assert_eq!(
            gate.admit(Some("sha256=not-hex"), Some("d"), BODY),
            Err(Refused::BadSignature)
        );
        assert_eq!(
            gate.admit(Some(SIGNATURE), None, BODY),
            Err(Refused::MissingDeliveryId)
        );
        // A forged delivery reusing a genuine id did not burn it.
        assert_eq!(
            gate.admit(Some(SIGNATURE), Some("d"), b"forged"),
            Err(Refused::BadSignature)
        );
        assert_eq!(gate.admit(Some(SIGNATURE), Some("d"), BODY), Ok(()));
    }

    #[test]
    fn a_delivery_forgotten_may_come_again() {
        let gate = Gate::new(SECRET, 1024, 10);
        assert_eq!(gate.admit(Some(SIGNATURE), Some("d"), BODY), Ok(()));
        gate.forget("d");
        assert_eq!(gate.admit(Some(SIGNATURE), Some("d"), BODY), Ok(()));
        assert_eq!(
            gate.admit(Some(SIGNATURE), Some("d"), BODY),
            Err(Refused::Replayed)
        );
    }

    #[test]
    fn the_memory_of_ids_is_bounded() {
        let gate = Gate::new(SECRET, 1024, 2);
        for id in ["a", "b", "c"] {
            assert_eq!(gate.admit(Some(SIGNATURE), Some(id), BODY), Ok(()));
        }
        let seen = gate.seen.lock().expect("seen");
        assert_eq!(seen.order.len(), 2);
        assert!(!seen.ids.contains("a"));
    }
}
