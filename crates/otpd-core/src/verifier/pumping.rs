//! The SMS-pumping defence a start passes: quarantines of destination prefixes and of source
//! networks, the rules that decide them, and the records of every decision.

use super::{StartError, Verifier};
use crate::abuse::{LimitHit, PumpingPolicy, QuarantineMode, pumping_key, source_key};
use crate::clock::{Clock, Timestamp};
use crate::ids::ServiceId;
use crate::store::{
    DeliveryStore, EventStore, LimitStore, Quarantine, TenantStore, VerificationStore,
};

/// What the pumping defence says of a start it lets through.
#[derive(Debug, Default)]
pub(super) struct PumpingCheck {
    /// Answer as if sent, send nothing (shadow mode).
    pub shadow: bool,
    /// The refusal block mode would have made, with the mode that did not make it and why:
    /// recorded once the verification exists.
    pub flagged: Option<(QuarantineMode, String)>,
    /// The counters the start adds to when it goes through.
    pub hits: Vec<LimitHit>,
}

/// A quarantine a rule decides, with what it is recorded with.
struct Decision {
    quarantine: Quarantine,
    /// `approval_rate` or `source_spread`.
    rule: &'static str,
    /// The figures counted.
    signals: serde_json::Value,
    /// The thresholds they were compared with.
    baseline: serde_json::Value,
}

impl Decision {
    /// The `prefix.quarantined` event: the rule, the figures it was decided on and the
    /// thresholds they were compared with (a prefix identifies a range, a /64 a network;
    /// neither a person).
    fn event(
        &self,
        service: ServiceId,
        mode: QuarantineMode,
        now: Timestamp,
    ) -> crate::events::Event {
        crate::events::Event {
            id: uuid::Uuid::now_v7(),
            service_id: service,
            verification_id: None,
            kind: "prefix.quarantined".into(),
            data: serde_json::json!({
                "prefix": self.quarantine.prefix,
                "rule": self.rule,
                "signals": self.signals,
                "baseline": self.baseline,
                "mode": mode.as_str(),
                "until": self.quarantine.until.unix_seconds(),
            }),
            created_at: now,
        }
    }
}

/// What block mode does with a start `quarantine` holds, and what the other modes record
/// instead; the start is then not counted (as a refused one is not), so every mode takes the
/// same decisions on the same traffic.
fn refuse(mode: QuarantineMode, quarantine: &Quarantine) -> Result<PumpingCheck, StartError> {
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
    match mode {
        QuarantineMode::Block => Err(StartError::Quarantined(detail)),
        mode => Ok(PumpingCheck {
            shadow: mode == QuarantineMode::Shadow,
            flagged: Some((mode, detail)),
            hits: Vec::new(),
        }),
    }
}

impl<S, C> Verifier<S, C>
where
    S: VerificationStore + DeliveryStore + TenantStore + LimitStore + EventStore + Clone,
    C: Clock + Clone,
{
    /// The SMS-pumping defence for a start of `service` to `phone` from `client_ip`: refuses
    /// it when its prefix or its source network is quarantined for this service (or
    /// server-wide), or quarantines one of them for this service now — the source's IPv6
    /// /64 when it reaches more prefixes than allowed (the source first: a range is
    /// quarantined only on its own record), the prefix when the service's volume to it is
    /// high and its approval rate low — in block mode; shadow and monitor modes let the
    /// start through with the decision to record ([`PumpingCheck`]). Every new quarantine is
    /// recorded as a `prefix.quarantined` event with the figures it was decided on.
    pub(super) async fn check_pumping(
        &self,
        service: ServiceId,
        phone: &crate::E164Phone,
        ranges: &crate::phone::NumberRanges,
        client_ip: Option<&str>,
        now: Timestamp,
    ) -> Result<PumpingCheck, StartError> {
        let Some(policy) = self.abuse.pumping else {
            return Ok(PumpingCheck::default());
        };
        let prefix = crate::abuse::prefix_of(phone, ranges, policy.prefix_digits);
        let source = client_ip
            .filter(|_| policy.source_max_prefixes > 0)
            .and_then(crate::abuse::source_network);
        for held in std::iter::once(&prefix).chain(source.as_ref()) {
            if let Some(quarantine) = self.store.active_quarantine(held, service, now).await? {
                return refuse(policy.mode, &quarantine);
            }
        }
        let mut hits = Vec::new();
        if let Some(network) = &source {
            match self
                .source_rule(&policy, service, network, &prefix, now)
                .await?
            {
                Ok(counted) => hits.extend(counted),
                Err(decision) => return self.decide(&policy, service, decision, now).await,
            }
        }
        match self.approval_rule(&policy, service, &prefix, now).await? {
            Ok(counted) => hits.push(counted),
            Err(decision) => return self.decide(&policy, service, decision, now).await,
        }
        Ok(PumpingCheck {
            shadow: false,
            flagged: None,
            hits,
        })
    }

    /// A source network may start verifications to `source_max_prefixes` prefixes of a
    /// service in the window: the quarantine of the network that reaches one more, or the
    /// counters this start adds to.
    async fn source_rule(
        &self,
        policy: &PumpingPolicy,
        service: ServiceId,
        network: &str,
        prefix: &str,
        now: Timestamp,
    ) -> Result<Result<Vec<LimitHit>, Decision>, StartError> {
        let window = i64::from(policy.window_seconds) * 1000;
        let counted = |key| LimitHit {
            key,
            window_ms: window,
            max: u32::MAX,
        };
        let seen = source_key("seen", service, network, Some(prefix));
        if self.store.rate_count(&seen, window, now).await?.count > 0 {
            return Ok(Ok(vec![counted(seen)]));
        }
        let reached = source_key("prefixes", service, network, None);
        let count = self.store.rate_count(&reached, window, now).await?.count;
        if count < policy.source_max_prefixes {
            return Ok(Ok(vec![counted(reached), counted(seen)]));
        }
        Ok(Err(Decision {
            quarantine: Quarantine {
                prefix: network.to_string(),
                service: Some(service),
                reason: format!(
                    "it started verifications to {count} prefixes in {} s, and this start is to another",
                    policy.window_seconds
                ),
                until: now.plus_seconds(i64::from(policy.quarantine_seconds)),
                created_at: now,
            },
            rule: "source_spread",
            signals: serde_json::json!({"prefixes": count + 1}),
            baseline: serde_json::json!({
                "maxPrefixes": policy.source_max_prefixes,
                "windowSeconds": policy.window_seconds,
            }),
        }))
    }

    /// Past `min_volume` starts of a service to a prefix in the window, fewer than
    /// `min_approval_rate` of them approved: the quarantine of the prefix, or the counter
    /// this start adds to.
    async fn approval_rule(
        &self,
        policy: &PumpingPolicy,
        service: ServiceId,
        prefix: &str,
        now: Timestamp,
    ) -> Result<Result<LimitHit, Decision>, StartError> {
        let window = i64::from(policy.window_seconds) * 1000;
        let sent_key = pumping_key("sent", service, prefix);
        let sent = self.store.rate_count(&sent_key, window, now).await?.count;
        let counted = LimitHit {
            key: sent_key,
            window_ms: window,
            max: u32::MAX,
        };
        if sent < policy.min_volume {
            return Ok(Ok(counted));
        }
        let approved = self
            .store
            .rate_count(&pumping_key("ok", service, prefix), window, now)
            .await?
            .count;
        let rate = f64::from(approved) / f64::from(sent);
        if rate >= policy.min_approval_rate {
            return Ok(Ok(counted));
        }
        Ok(Err(Decision {
            quarantine: Quarantine {
                prefix: prefix.to_string(),
                service: Some(service),
                reason: format!(
                    "{sent} starts, {approved} approved ({:.0} %) in {} s",
                    rate * 100.0,
                    policy.window_seconds
                ),
                until: now.plus_seconds(i64::from(policy.quarantine_seconds)),
                created_at: now,
            },
            rule: "approval_rate",
            signals: serde_json::json!({"starts": sent, "approved": approved}),
            baseline: serde_json::json!({
                "minVolume": policy.min_volume,
                "minApprovalRate": policy.min_approval_rate,
                "windowSeconds": policy.window_seconds,
            }),
        }))
    }

    /// Stores a rule's quarantine and, when it is new (not one another node stored first),
    /// logs it and records its event; then treats the start as the quarantine says.
    async fn decide(
        &self,
        policy: &PumpingPolicy,
        service: ServiceId,
        decision: Decision,
        now: Timestamp,
    ) -> Result<PumpingCheck, StartError> {
        let quarantine = &decision.quarantine;
        if self.store.quarantine(quarantine).await? {
            tracing::warn!(held = %quarantine.prefix, service = %service, rule = decision.rule, reason = %quarantine.reason, until = quarantine.until.unix_seconds(), mode = policy.mode.as_str(), "quarantined");
            let event = decision.event(service, policy.mode, now);
            if let Err(error) = self.store.record_event(&event).await {
                tracing::warn!(%error, "could not record a quarantine");
            }
        }
        refuse(policy.mode, quarantine)
    }

    /// Records what the pumping defence decided about a start it let through (shadow mode:
    /// answered, not sent; monitor mode: sent, block mode would have refused it).
    pub(super) async fn record_flag(
        &self,
        verification: &crate::Verification,
        flagged: &(QuarantineMode, String),
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
}
