//! Reconciles asked for by a person: an annotation whose new value makes the controller
//! look at the object at once, reading everything afresh, and echo the value in
//! `status.lastHandledReconcileAt` (Flux's convention, so `flux reconcile`-style tooling and
//! scripts can wait for it).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// backup-warden's own annotation: `kubectl annotate --overwrite bdb/x backupwarden.io/reconcile-requested-at="$(date +%s)"`.
pub const REQUESTED_AT: &str = "backupwarden.io/reconcile-requested-at";
/// Flux's, which its users already set by habit (and `flux reconcile` sets on its own kinds).
pub const FLUX_REQUESTED_AT: &str = "reconcile.fluxcd.io/requestedAt";

/// The request the object carries, ours first.
pub fn requested_at(meta: &ObjectMeta) -> Option<String> {
    let annotations = meta.annotations.as_ref()?;
    [REQUESTED_AT, FLUX_REQUESTED_AT]
        .iter()
        .find_map(|key| annotations.get(*key))
        .filter(|value| !value.is_empty())
        .cloned()
}

/// What wakes a controller: a new generation (a spec change) or a new request. A status
/// write changes neither, so it does not wake the controller again.
pub fn generation_or_request(meta: &ObjectMeta) -> Option<u64> {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut hasher = DefaultHasher::new();
    meta.generation.hash(&mut hasher);
    requested_at(meta).hash(&mut hasher);
    Some(hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(annotations: &[(&str, &str)], generation: i64) -> ObjectMeta {
        ObjectMeta {
            generation: Some(generation),
            annotations: Some(
                annotations
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn our_annotation_wins_over_fluxs_and_empty_is_none() {
        assert_eq!(requested_at(&meta(&[], 1)), None);
        assert_eq!(
            requested_at(&meta(&[(FLUX_REQUESTED_AT, "a")], 1)).as_deref(),
            Some("a")
        );
        let both = meta(&[(FLUX_REQUESTED_AT, "a"), (REQUESTED_AT, "b")], 1);
        assert_eq!(requested_at(&both).as_deref(), Some("b"));
        assert_eq!(requested_at(&meta(&[(REQUESTED_AT, "")], 1)), None);
    }

    #[test]
    fn a_new_request_or_generation_wakes_the_controller_and_nothing_else_does() {
        let base = generation_or_request(&meta(&[(REQUESTED_AT, "1")], 1));
        assert_eq!(
            base,
            generation_or_request(&meta(&[(REQUESTED_AT, "1"), ("other", "x")], 1))
        );
        assert_ne!(base, generation_or_request(&meta(&[(REQUESTED_AT, "2")], 1)));
        assert_ne!(base, generation_or_request(&meta(&[(REQUESTED_AT, "1")], 2)));
    }
}
