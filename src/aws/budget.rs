//! A request budget per account and region: a token bucket every RDS request (each page of
//! a listing included) draws from, so that backup-warden stays inside the share of RDS's
//! request rate it is given, however many objects are busy at once. A caller that finds
//! the bucket empty waits its turn instead of being refused, in the order it came.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use super::Scope;

/// How fast the bucket refills and how much it holds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: u32,
}

impl Rate {
    /// KMS's quota for each of CreateKey, CreateAlias, ScheduleKeyDeletion and
    /// CancelKeyDeletion in an account and region.
    pub const KMS_WRITES: Self = Self {
        per_second: 5.0,
        burst: 5,
    };
}

impl Default for Rate {
    /// RDS's own default for the Describe calls of one account and region.
    fn default() -> Self {
        Self {
            per_second: 12.0,
            burst: 300,
        }
    }
}

#[derive(Debug)]
pub struct Budget {
    rate: Rate,
    /// Tokens left (negative: owed by callers already waiting) as of the instant, and this
    /// replica's part of the rate (its shards' share; 1 unsharded).
    state: Mutex<(f64, Instant, f64)>,
}

impl Budget {
    pub fn new(rate: Rate) -> Self {
        Self {
            rate,
            state: Mutex::new((f64::from(rate.burst), Instant::now(), 1.0)),
        }
    }

    /// Draws `share` (0-1] of the rate and the burst: replicas that split the shards split
    /// the account-region's budget as well.
    pub fn set_share(&self, share: f64) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).2 = share.clamp(f64::MIN_POSITIVE, 1.0);
    }

    /// Reserves one request and returns how long to wait before sending it.
    pub fn reserve(&self) -> Duration {
        self.reserve_at(Instant::now())
    }

    fn reserve_at(&self, now: Instant) -> Duration {
        self.draw(now, |available, per_second| {
            let left = available - 1.0;
            let wait = if left >= 0.0 {
                Duration::ZERO
            } else {
                Duration::from_secs_f64(-left / per_second)
            };
            (left, wait)
        })
    }

    /// Takes one request if the bucket holds it now (never running into debt): how AWS
    /// itself answers, refusing with a throttling error when it does not.
    pub fn try_take(&self) -> bool {
        self.draw(Instant::now(), |available, _| {
            if available >= 1.0 {
                (available - 1.0, true)
            } else {
                (available, false)
            }
        })
    }

    /// Refills the bucket up to `now` at this replica's share of the rate, then lets `take`
    /// say, from the tokens available and the rate per second, what is left and the answer.
    fn draw<T>(&self, now: Instant, take: impl FnOnce(f64, f64) -> (f64, T)) -> T {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, at, share) = *state;
        let per_second = self.rate.per_second * share;
        let burst = (f64::from(self.rate.burst) * share).max(1.0);
        let refilled = now.saturating_duration_since(at).as_secs_f64() * per_second;
        let (left, answer) = take((tokens + refilled).min(burst), per_second);
        *state = (left, now.max(at), share);
        answer
    }

    /// Waits until one request may be sent.
    pub async fn take(&self) {
        let wait = self.reserve();
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// What a budget is for, and its account and region.
type Budgeted = (&'static str, String, String);

/// Every budget of the replica, one per (what, account, region) whichever roles reach it:
/// "RDS" for every RDS call, a KMS write operation's name for its own. It sits with the
/// callers, not inside one client, so whatever answers the calls (AWS through the SDK, or
/// the benchmarks' model) is asked at the same rate.
#[derive(Debug)]
pub struct Budgets {
    rds_rate: Rate,
    kms_write_rate: Rate,
    budgets: Mutex<HashMap<Budgeted, Arc<Budget>>>,
    /// This replica's share of every budget (its shards' share; 1 unsharded).
    share: Mutex<f64>,
}

impl Budgets {
    pub fn new(rds_rate: Rate, kms_write_rate: Rate) -> Self {
        Self {
            rds_rate,
            kms_write_rate,
            budgets: Mutex::new(HashMap::new()),
            share: Mutex::new(1.0),
        }
    }

    /// Every budget, now and later, draws `share` of its rate (the replica's shards).
    pub fn set_share(&self, share: f64) {
        *self.share.lock().unwrap_or_else(|p| p.into_inner()) = share;
        for budget in self.budgets.lock().unwrap_or_else(|p| p.into_inner()).values() {
            budget.set_share(share);
        }
    }

    /// The RDS budget of the scope's account and region.
    pub fn rds(&self, scope: &Scope) -> Arc<Budget> {
        self.budget("RDS", self.rds_rate, scope)
    }

    /// Waits for a KMS key write (`operation`) in the scope's account and region.
    pub async fn kms_write(&self, scope: &Scope, operation: &'static str) {
        self.budget(operation, self.kms_write_rate, scope).take().await;
    }

    fn budget(&self, what: &'static str, rate: Rate, scope: &Scope) -> Arc<Budget> {
        let (account, region) = scope.account_region();
        let share = *self.share.lock().unwrap_or_else(|p| p.into_inner());
        self.budgets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((what, account, region))
            .or_insert_with(|| {
                let budget = Budget::new(rate);
                budget.set_share(share);
                Arc::new(budget)
            })
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_free_then_requests_are_spaced_at_the_rate() {
        let budget = Budget::new(Rate {
            per_second: 10.0,
            burst: 3,
        });
        let start = Instant::now();
        let waits: Vec<Duration> = (0..6).map(|_| budget.reserve_at(start)).collect();
        assert_eq!(&waits[..3], &[Duration::ZERO; 3]);
        // Each caller after the burst waits one more tenth of a second than the one before.
        for (n, wait) in waits[3..].iter().enumerate() {
            let expected = 0.1 * (n + 1) as f64;
            assert!(
                (wait.as_secs_f64() - expected).abs() < 1e-9,
                "{wait:?} != {expected}"
            );
        }
    }

    #[test]
    fn a_replica_with_a_third_of_the_shards_draws_a_third_of_the_rate() {
        let budget = Budget::new(Rate {
            per_second: 12.0,
            burst: 3,
        });
        budget.set_share(1.0 / 3.0);
        let start = Instant::now();
        // The burst becomes one request, and then one every quarter of a second.
        assert_eq!(budget.reserve_at(start), Duration::ZERO);
        let wait = budget.reserve_at(start);
        assert!((wait.as_secs_f64() - 0.25).abs() < 1e-9, "{wait:?}");
    }

    #[test]
    fn the_bucket_refills_with_time_up_to_the_burst() {
        let budget = Budget::new(Rate {
            per_second: 2.0,
            burst: 2,
        });
        let start = Instant::now();
        budget.reserve_at(start);
        budget.reserve_at(start);
        // A second later two tokens are back, and no more than the burst after an hour.
        assert_eq!(budget.reserve_at(start + Duration::from_secs(1)), Duration::ZERO);
        let later = start + Duration::from_secs(3600);
        assert_eq!(budget.reserve_at(later), Duration::ZERO);
        assert_eq!(budget.reserve_at(later), Duration::ZERO);
        assert!(budget.reserve_at(later) > Duration::ZERO);
    }

    #[test]
    fn a_share_set_applies_to_the_budgets_made_before_it_and_after() {
        let budgets = Budgets::new(
            Rate {
                per_second: 10.0,
                burst: 10,
            },
            Rate::KMS_WRITES,
        );
        let before = budgets.rds(&Scope::new(None, "eu-west-1"));
        budgets.set_share(0.5);
        let after = budgets.rds(&Scope::new(None, "eu-west-2"));
        let start = Instant::now() + Duration::from_secs(3600);
        for budget in [&before, &after] {
            // Half the burst is free, the next request waits a fifth of a second.
            let waits: Vec<Duration> = (0..6).map(|_| budget.reserve_at(start)).collect();
            assert_eq!(&waits[..5], &[Duration::ZERO; 5]);
            assert!((waits[5].as_secs_f64() - 0.2).abs() < 1e-9, "{waits:?}");
        }
    }
}
