//! The protections a start passes: destination rules, the SMS-pumping defence, the lockout
//! and rate limits, the cooldown and the daily budget.

use super::{StartError, Verifier};
use crate::abuse::{LimitHit, LimitScope, failure_key, pumping_key};
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

/// What the pumping defence says of a start it lets through.
#[derive(Debug, Default)]
pub(super) struct PumpingCheck {
    /// Answer as if sent, send nothing (shadow mode).
    pub shadow: bool,
    /// The refusal block mode would have made, with the mode that did not make it and why:
    /// recorded once the verification exists.
    pub flagged: Option<(crate::abuse::QuarantineMode, String)>,
    /// The counters the start adds to when it goes through.
    pub hits: Vec<LimitHit>,
}

/// The `prefix.quarantined` event of a new quarantine: the rule, the figures it was decided
/// on and the thresholds they were compared with (a prefix identifies a range, a /64 a
/// network; neither a person).
fn quarantine_event(
    service: ServiceId,
    quarantine: &crate::store::Quarantine,
    rule: &str,
    signals: serde_json::Value,
    baseline: serde_json::Value,
    mode: crate::abuse::QuarantineMode,
    now: Timestamp,
) -> crate::events::Event {
    crate::events::Event {
        id: uuid::Uuid::now_v7(),
        service_id: service,
        verification_id: None,
        kind: "prefix.quarantined".into(),
        data: serde_json::json!({
            "prefix": quarantine.prefix,
            "rule": rule,
            "signals": signals,
            "baseline": baseline,
            "mode": mode.as_str(),
            "until": quarantine.until.unix_seconds(),
        }),
        created_at: now,
    }
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

    /// The SMS-pumping defence for a start of `service` to `phone` from `client_ip`: refuses
    /// it when its prefix or its source network is quarantined for this service (or
    /// server-wide), or quarantines one of them for this service now — the prefix when the
    /// service's volume to it is high and its approval rate low, the source's IPv6 /64 when
    /// it reaches more prefixes than allowed (the source first: a range is quarantined only
    /// on its own record) — in block mode; shadow and monitor modes let the start through
    /// with the decision to record ([`PumpingCheck`]). Every new quarantine is recorded as a
    /// `prefix.quarantined` event with the figures it was decided on.
    pub(super) async fn check_pumping(
        &self,
        service: ServiceId,
        phone: &crate::E164Phone,
        ranges: &crate::phone::NumberRanges,
        client_ip: Option<&str>,
        now: Timestamp,
    ) -> Result<PumpingCheck, StartError> {
        use crate::abuse::QuarantineMode;
        let Some(policy) = self.abuse.pumping else {
            return Ok(PumpingCheck::default());
        };
        let prefix = crate::abuse::prefix_of(phone, ranges, policy.prefix_digits);
        // What block mode does, the other modes record; the start is then not counted (as a
        // refused one is not), so every mode takes the same decisions on the same traffic.
        let refuse = |quarantine: &crate::store::Quarantine| {
            let what = if quarantine.prefix.starts_with('+') {
                "the prefix"
            } else {
                "the network"
            };
            let detail = format!(
                "{what} {} is quarantined until {}: {}",
                quarantine.prefix,
                quarantine.until.utc_text(),
                quarantine.reason
            );
            match policy.mode {
                QuarantineMode::Block => Err(StartError::Quarantined(detail)),
                mode => Ok(PumpingCheck {
                    shadow: mode == QuarantineMode::Shadow,
                    flagged: Some((mode, detail)),
                    hits: Vec::new(),
                }),
            }
        };
        let window = i64::from(policy.window_seconds) * 1000;
        let until = now.plus_seconds(i64::from(policy.quarantine_seconds));
        let source = client_ip
            .filter(|_| policy.source_max_prefixes > 0)
            .and_then(crate::abuse::source_network);
        for held in std::iter::once(&prefix).chain(source.as_ref()) {
            if let Some(quarantine) = self.store.active_quarantine(held, service, now).await? {
                return refuse(&quarantine);
            }
        }
        let mut hits = Vec::new();
        if let Some(network) = &source {
            let seen = crate::abuse::source_key("seen", service, network, Some(&prefix));
            let reached = crate::abuse::source_key("prefixes", service, network, None);
            let new_prefix = self.store.rate_count(&seen, window, now).await?.count == 0;
            if new_prefix {
                let count = self.store.rate_count(&reached, window, now).await?.count;
                if count >= policy.source_max_prefixes {
                    let quarantine = crate::store::Quarantine {
                        prefix: network.clone(),
                        service: Some(service),
                        reason: format!(
                            "it started verifications to {count} prefixes in {} s, and this start is to another",
                            policy.window_seconds
                        ),
                        until,
                        created_at: now,
                    };
                    let event = |q: &crate::store::Quarantine| {
                        quarantine_event(
                            service,
                            q,
                            "source_spread",
                            serde_json::json!({"prefixes": count + 1}),
                            serde_json::json!({
                                "maxPrefixes": policy.source_max_prefixes,
                                "windowSeconds": policy.window_seconds,
                            }),
                            policy.mode,
                            now,
                        )
                    };
                    self.hold(&quarantine, event).await?;
                    return refuse(&quarantine);
                }
                hits.push(LimitHit {
                    key: reached,
                    window_ms: window,
                    max: u32::MAX,
                });
            }
            hits.push(LimitHit {
                key: seen,
                window_ms: window,
                max: u32::MAX,
            });
        }
        let sent = self
            .store
            .rate_count(&pumping_key("sent", service, &prefix), window, now)
            .await?
            .count;
        if sent >= policy.min_volume {
            let approved = self
                .store
                .rate_count(&pumping_key("ok", service, &prefix), window, now)
                .await?
                .count;
            let rate = f64::from(approved) / f64::from(sent);
            if rate < policy.min_approval_rate {
                let quarantine = crate::store::Quarantine {
                    prefix: prefix.clone(),
                    service: Some(service),
                    reason: format!(
                        "{sent} starts, {approved} approved ({:.0} %) in {} s",
                        rate * 100.0,
                        policy.window_seconds
                    ),
                    until,
                    created_at: now,
                };
                let event = |q: &crate::store::Quarantine| {
                    quarantine_event(
                        service,
                        q,
                        "approval_rate",
                        serde_json::json!({"starts": sent, "approved": approved}),
                        serde_json::json!({
                            "minVolume": policy.min_volume,
                            "minApprovalRate": policy.min_approval_rate,
                            "windowSeconds": policy.window_seconds,
                        }),
                        policy.mode,
                        now,
                    )
                };
                self.hold(&quarantine, event).await?;
                return refuse(&quarantine);
            }
        }
        hits.push(LimitHit {
            key: pumping_key("sent", service, &prefix),
            window_ms: window,
            max: u32::MAX,
        });
        Ok(PumpingCheck {
            shadow: false,
            flagged: None,
            hits,
        })
    }

    /// Stores a new quarantine and, when it is new (not one another node stored first),
    /// logs it and records its event.
    async fn hold(
        &self,
        quarantine: &crate::store::Quarantine,
        event: impl Fn(&crate::store::Quarantine) -> crate::events::Event,
    ) -> Result<(), StartError> {
        if self.store.quarantine(quarantine).await? {
            let mode = self.abuse.pumping.map_or("block", |p| p.mode.as_str());
            tracing::warn!(held = %quarantine.prefix, service = ?quarantine.service, reason = %quarantine.reason, until = quarantine.until.unix_seconds(), mode, "quarantined");
            if let Err(error) = self.store.record_event(&event(quarantine)).await {
                tracing::warn!(%error, "could not record a quarantine");
            }
        }
        Ok(())
    }

    /// Records what the pumping defence decided about a start it let through (shadow mode:
    /// answered, not sent; monitor mode: sent, block mode would have refused it).
    pub(super) async fn record_flag(
        &self,
        verification: &crate::Verification,
        flagged: &(crate::abuse::QuarantineMode, String),
        now: Timestamp,
    ) {
        let (mode, detail) = flagged;
        let event = crate::events::Event {
            id: uuid::Uuid::now_v7(),
            service_id: verification.service_id,
            verification_id: Some(verification.id),
            kind: "verification.flagged".into(),
            data: serde_json::json!({
                "reason": "pumping",
                "decision": "block",
                "mode": mode.as_str(),
                "detail": detail,
                "channel": verification.channel.as_str(),
            }),
            created_at: now,
        };
        if let Err(error) = self.store.record_event(&event).await {
            tracing::warn!(%error, "could not record a flagged start");
        }
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
