//! The protections a start passes: destination rules, the lockout and rate limits, the
//! cooldown and the daily budget (the SMS-pumping defence is in `pumping.rs`).

use super::{StartError, Verifier};
use crate::abuse::{LimitHit, LimitScope, failure_key};
use crate::clock::{Clock, Timestamp};
use crate::ids::ServiceId;
use crate::phone::CountryIso;
use crate::recipient::Recipient;
use crate::store::{DeliveryStore, EventStore, LimitStore, TenantStore, VerificationStore};
use crate::tenants::ServiceRecord;
use crate::verification::Channel;

/// The metric label of a refusal, `None` when the error is not a protection.
pub(super) fn refusal_reason(error: &StartError) -> Option<&'static str> {
    use crate::abuse::{Blocked, LimitScope};
    Some(match error {
        StartError::RateLimited { scope, .. } => match scope {
            LimitScope::Destination => "destination",
            LimitScope::ClientIp => "client_ip",
            LimitScope::Country => "country",
            LimitScope::Programmable => "programmable",
        },
        StartError::LockedOut { .. } => "lockout",
        StartError::Cooldown { .. } => "cooldown",
        StartError::TooManySends => "max_sends",
        StartError::BudgetExceeded { .. } => "budget",
        StartError::Blocked(blocked) => match blocked {
            Blocked::Country => "blocked_country",
            Blocked::BlockList => "block_list",
            Blocked::CostlyNumber => "costly_number",
            Blocked::Landline => "landline",
        },
        StartError::Quarantined(_) => "pumping",
        _ => return None,
    })
}

/// The spend counter of a service's UTC day.
pub(crate) fn budget_key(service: ServiceId, now: Timestamp) -> String {
    format!("budget:{service}:{}", now.0.div_euclid(86_400_000))
}

/// The refusal of a start past the service's daily budget.
pub(super) fn over_budget(service: &ServiceRecord) -> StartError {
    let budget = service.settings.daily_budget.unwrap_or(0.0);
    tracing::warn!(service = %service.id, budget, "daily budget reached");
    StartError::BudgetExceeded { budget }
}

/// Refuses a send before `allowed_at` (the resend cooldown).
pub(super) fn cooldown_passed(allowed_at: Timestamp, now: Timestamp) -> Result<(), StartError> {
    if now < allowed_at {
        let retry_after_seconds = ((allowed_at.0 - now.0) as u64).div_ceil(1000) as u32;
        return Err(StartError::Cooldown {
            retry_after_seconds,
        });
    }
    Ok(())
}

/// Whole seconds from `now` until `at` (at least 1).
pub(super) fn seconds_until(at: Option<Timestamp>, now: Timestamp) -> u32 {
    at.map_or(1, |at| {
        ((at.0 - now.0).max(0) as u64).div_ceil(1000).max(1) as u32
    })
}

impl<S, C> Verifier<S, C>
where
    S: VerificationStore + DeliveryStore + TenantStore + LimitStore + EventStore + Clone,
    C: Clock + Clone,
{
    /// Refuses destinations the service may not reach (geo permissions, block list, costly
    /// numbers, landlines when SMS skips them).
    pub(super) fn check_destination(
        &self,
        settings: &crate::settings::OtpSettings,
        phone: &crate::E164Phone,
        ranges: &crate::phone::NumberRanges,
        country: Option<CountryIso>,
        channel: Channel,
    ) -> Result<(), StartError> {
        use crate::abuse::Blocked;
        let number = phone.as_str();
        if let Some(country) = country {
            let iso = country.as_str();
            let allowed = settings.allowed_countries.is_empty()
                || settings
                    .allowed_countries
                    .iter()
                    .any(|c| c.eq_ignore_ascii_case(iso));
            if !allowed
                || settings
                    .blocked_countries
                    .iter()
                    .any(|c| c.eq_ignore_ascii_case(iso))
            {
                return Err(StartError::Blocked(Blocked::Country));
            }
        }
        if settings
            .blocked_prefixes
            .iter()
            .any(|prefix| number.starts_with(prefix.as_str()))
        {
            return Err(StartError::Blocked(Blocked::BlockList));
        }
        let line = ranges.line_type;
        if line.is_costly() && !settings.allow_costly_numbers {
            return Err(StartError::Blocked(Blocked::CostlyNumber));
        }
        if channel == Channel::Sms
            && settings.options.skip_sms_to_landlines
            && line == crate::phone::LineType::FixedLine
        {
            return Err(StartError::Blocked(Blocked::Landline));
        }
        Ok(())
    }

    /// The counters a start to `to` must pass, in the order they are checked: client
    /// address, destination, country, then the service's programmable rate limits (each
    /// bucket of each named limit, under the value given).
    pub(super) fn limit_hits(
        &self,
        service: &ServiceRecord,
        to: &Recipient,
        country: Option<CountryIso>,
        client_ip: Option<&str>,
        values: &[(String, String)],
        fraud_checks: bool,
    ) -> Vec<(LimitScope, LimitHit)> {
        let hit = |key: String, limit: crate::abuse::Limit| LimitHit {
            key,
            window_ms: limit.window_ms(),
            max: limit.max,
        };
        let mut hits = Vec::new();
        if fraud_checks {
            if let (Some(ip), Some(limit)) = (client_ip, self.abuse.per_client_ip) {
                hits.push((LimitScope::ClientIp, hit(format!("ip:{ip}"), limit)));
            }
            if let Some(limit) = self.abuse.per_destination {
                let key = format!(
                    "dest:{}:{}",
                    service.id,
                    self.vault.blind(to.as_str()).to_hex()
                );
                hits.push((LimitScope::Destination, hit(key, limit)));
            }
            let country_limit = country.and_then(|c| {
                self.abuse
                    .per_country
                    .get(c.as_str())
                    .copied()
                    .or(self.abuse.per_country_default)
                    .map(|limit| (c, limit))
            });
            if let Some((c, limit)) = country_limit {
                let key = format!("country:{}:{}", service.id, c.as_str());
                hits.push((LimitScope::Country, hit(key, limit)));
            }
        }
        for (name, value) in values {
            let Some(limit) = service
                .settings
                .rate_limits
                .iter()
                .find(|l| &l.unique_name == name)
            else {
                continue;
            };
            for bucket in &limit.buckets {
                hits.push((
                    LimitScope::Programmable,
                    LimitHit {
                        key: format!(
                            "rl:{}:{}:{}:{}",
                            service.id,
                            limit.id,
                            bucket.id,
                            self.vault.blind(value).to_hex()
                        ),
                        window_ms: i64::from(bucket.interval) * 1000,
                        max: bucket.max,
                    },
                ));
            }
        }
        hits
    }

    /// The wrong-code lockout's counter for `to` (read before a start, never counted by it).
    pub(super) fn lockout_hit(&self, service: ServiceId, to: &Recipient) -> Option<LimitHit> {
        self.abuse.failed_checks.map(|limit| LimitHit {
            key: failure_key(service, to, &self.vault),
            window_ms: limit.window_ms(),
            max: limit.max,
        })
    }

    /// Applies the lockout and counts the limits one store call at a time (a resend; a new
    /// verification does all of it in its atomic start step).
    pub(super) async fn count_limits(
        &self,
        lockout: Option<&LimitHit>,
        hits: &[(LimitScope, LimitHit)],
        now: Timestamp,
    ) -> Result<(), StartError> {
        if let Some(lockout) = lockout {
            let failures = self
                .store
                .rate_count(&lockout.key, lockout.window_ms, now)
                .await?;
            if failures.count >= lockout.max {
                return Err(StartError::LockedOut {
                    retry_after_seconds: seconds_until(failures.frees_at, now),
                });
            }
        }
        for (scope, hit) in hits {
            let counted = self
                .store
                .rate_hit(&hit.key, hit.window_ms, hit.max, now)
                .await?;
            if !counted.allowed {
                return Err(StartError::RateLimited {
                    scope: *scope,
                    limit: hit.max,
                    retry_after_seconds: seconds_until(counted.frees_at, now),
                });
            }
        }
        Ok(())
    }
}
