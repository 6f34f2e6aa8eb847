//! The start of a verification: its checks in order, the atomic store step, and the first
//! delivery try.

use uuid::Uuid;

use super::protections::{budget_key, cooldown_passed, over_budget, refusal_reason, seconds_until};
use super::pumping::PumpingCheck;
use super::{DeliveryJob, MAX_SENDS, StartError, StartRequest, Started, Verifier};
use crate::abuse::{LimitScope, Spend};
use crate::clock::{Clock, Timestamp};
use crate::code::{CodeSeed, OtpCode};
use crate::delivery::DeliveryAttempt;
use crate::ids::VerificationId;
use crate::phone::CountryIso;
use crate::recipient::Recipient;
use crate::settings::{DO_NOT_SHARE_WARNING, MaxAttempts, Template};
use crate::sms::segment_count;
use crate::store::{
    DeliveryStore, EventStore, LimitStore, ResendOutcome, StartDecision, StartPlan, StoreError,
    TenantStore, VerificationStore,
};
use crate::tenants::ServiceRecord;
use crate::verification::{Channel, Verification, VerificationStatus};

/// The service's route for `channel` to `country`: `sms:GB` before `sms`.
pub(super) fn service_route(
    service: &ServiceRecord,
    channel: Channel,
    country: Option<CountryIso>,
) -> Option<Vec<String>> {
    let routes = &service.settings.provider_routes;
    country
        .and_then(|c| routes.get(&format!("{}:{}", channel.as_str(), c.as_str())))
        .or_else(|| routes.get(channel.as_str()))
        .filter(|names| !names.is_empty())
        .cloned()
}

pub(super) fn new_delivery(
    id: VerificationId,
    channel: Channel,
    now: Timestamp,
) -> DeliveryAttempt {
    DeliveryAttempt::queued(id, channel, now)
}

impl<S, C> Verifier<S, C>
where
    S: VerificationStore + DeliveryStore + TenantStore + LimitStore + EventStore + Clone,
    C: Clock + Clone,
{
    /// The code of a verification, when it can be re-derived (not a custom code).
    pub(super) fn code_of(&self, verification: &Verification) -> Option<OtpCode> {
        verification.code_seed.map(|seed| {
            self.hasher.derive_stored(
                verification.id,
                &seed,
                verification.pin_type,
                verification.pin_length,
                &verification.code_hash,
            )
        })
    }

    pub(super) fn job(
        &self,
        service: &ServiceRecord,
        verification: &Verification,
        delivery: &DeliveryAttempt,
        code: &OtpCode,
    ) -> DeliveryJob {
        let chain = &service.settings.fallback_channels;
        let fallback = match chain.iter().position(|c| *c == delivery.channel) {
            Some(index) => chain[index + 1..].to_vec(),
            None if delivery.channel == verification.channel => chain.clone(),
            None => Vec::new(),
        }
        .into_iter()
        .filter(|c| *c != delivery.channel && c.reaches(&verification.to))
        .collect();
        DeliveryJob {
            delivery_id: delivery.id,
            verification_id: verification.id,
            service_id: verification.service_id,
            channel: delivery.channel,
            to: verification.to.clone(),
            from: verification.from.clone(),
            body: verification.template.render(code),
            code: code.clone(),
            validity_seconds: u32::try_from(
                (verification.expires_at.0 - self.clock.now().0).max(0) / 1000,
            )
            .unwrap_or(0),
            country: verification.country,
            locale: verification.locale.clone().unwrap_or_else(|| "en".into()),
            service_name: service.name.clone(),
            expires_at: verification.expires_at,
            fallback,
            providers: service_route(service, delivery.channel, verification.country),
        }
    }

    /// Starts a verification: derives a code from a fresh CSPRNG seed (or takes the caller's
    /// custom code), stores its hash with the first delivery attempt in one transaction, then
    /// hands the message to the delivery worker. With `resend_pending`, a pending
    /// verification to the same recipient is sent again instead (same code).
    pub async fn start(
        &self,
        service: &ServiceRecord,
        request: StartRequest,
    ) -> Result<Started, StartError> {
        let request_to = request.to.as_ref().map(|(to, _)| to.as_str().to_string());
        let request_channel = request.channel.unwrap_or(Channel::Sms);
        // Boxed: the start's future is many kilobytes (store, limits, the first delivery try),
        // and every caller's future would carry it and be copied whole at each move.
        let started = Box::pin(self.start_inner(service, request)).await;
        match &started {
            Ok(started) => self
                .observer
                .verification("started", started.verification()),
            Err(error) => {
                if let Some(reason) = refusal_reason(error) {
                    self.observer.refused(reason);
                    let event = crate::events::Event {
                        id: Uuid::now_v7(),
                        service_id: service.id,
                        verification_id: None,
                        kind: "verification.blocked".into(),
                        data: {
                            let mut data = serde_json::json!({
                                "reason": reason,
                                // The rule with its numbers ("at most 5 per window"), never
                                // the destination.
                                "detail": error.to_string(),
                                "to": request_to,
                                "channel": request_channel.as_str(),
                            });
                            crate::events::seal_destination(&mut data, &self.vault);
                            if data.get("toSealed").is_none() {
                                // No destination: readers see `"to": null`.
                                data["toSealed"] = serde_json::Value::Null;
                            }
                            data
                        },
                        created_at: self.clock.now(),
                    };
                    if let Err(store) = self.store.record_event(&event).await {
                        tracing::warn!(error = %store, "could not record a blocked start");
                    }
                }
            }
        }
        started
    }

    async fn start_inner(
        &self,
        service: &ServiceRecord,
        request: StartRequest,
    ) -> Result<Started, StartError> {
        let settings = &service.settings;
        let (to, country) = request.to.clone().ok_or(StartError::MissingRecipient)?;
        let channel = request.channel.unwrap_or(Channel::Sms);
        if !channel.reaches(&to) {
            return Err(StartError::ChannelMismatch);
        }
        let route = service_route(service, channel, country);
        if !self.dispatch.serves(
            channel,
            country.as_ref().map(|c| c.as_str()),
            route.as_deref(),
        ) {
            return Err(StartError::ChannelUnavailable(channel));
        }
        if request.custom_code.is_some() && !settings.options.custom_code_enabled {
            return Err(StartError::CustomCodeNotAllowed);
        }
        if (request.amount.is_some() || request.payee.is_some()) && !settings.options.psd2_enabled {
            return Err(StartError::Psd2NotEnabled);
        }
        // Safe-listed numbers (the service's list or the account's SafeList) skip the fraud
        // checks: geo and number rules, rate limits, lockout and the pumping defence.
        let safe = match &to {
            Recipient::Phone(phone) => {
                settings.safe_list.iter().any(|n| n == phone.as_str())
                    || self
                        .store
                        .safe_number(service.account_id, phone.as_str())
                        .await?
                        .is_some()
            }
            Recipient::Email(_) => false,
        };
        // The number ranges, parsed once for the destination rules and the pumping prefix.
        let unsafe_phone = match &to {
            Recipient::Phone(phone) if !safe => Some((phone, phone.ranges())),
            _ => None,
        };
        if let Some((phone, ranges)) = &unsafe_phone {
            self.check_destination(settings, phone, ranges, country, channel)?;
        }
        let now = self.clock.now();
        let cooldown = settings.resend_cooldown_seconds;
        let mut hits = self.limit_hits(
            service,
            &to,
            country,
            request.client_ip.as_deref(),
            &request.rate_limit_values,
            !safe,
        );
        let lockout = self.lockout_hit(service.id, &to).filter(|_| !safe);
        let latest = if request.resend_pending {
            self.store.latest_for(service.id, to.as_str(), now).await?
        } else {
            None
        };
        if let Some(pending) = latest.filter(|v| v.status == VerificationStatus::Pending) {
            // A resend: the same checks as a new start, one store call at a time.
            if cooldown > 0 {
                let last_send = self
                    .store
                    .deliveries(pending.id)
                    .await?
                    .iter()
                    .map(|d| d.created_at)
                    .max()
                    .unwrap_or(pending.created_at);
                cooldown_passed(last_send.plus_seconds(i64::from(cooldown)), now)?;
            }
            self.count_limits(lockout.as_ref(), &hits, now).await?;
            let pumping = match &unsafe_phone {
                Some((phone, ranges)) => {
                    let mut pumping = self
                        .check_pumping(service.id, phone, ranges, request.client_ip.as_deref(), now)
                        .await?;
                    for hit in std::mem::take(&mut pumping.hits) {
                        self.store
                            .rate_hit(&hit.key, hit.window_ms, hit.max, now)
                            .await?;
                    }
                    pumping
                }
                None => PumpingCheck::default(),
            };
            let new_hash = request
                .custom_code
                .as_ref()
                .map(|code| self.hasher.hash(pending.id, code));
            let code = match (&request.custom_code, self.code_of(&pending)) {
                (Some(custom), _) => custom.clone(),
                (None, Some(derived)) => derived,
                (None, None) => return Err(StartError::CustomCodeRequired),
            };
            let delivery = new_delivery(pending.id, channel, now);
            self.charge(service, pending.cost, now).await?;
            match self
                .store
                .resend(pending.id, &delivery, new_hash, MAX_SENDS, now)
                .await?
            {
                ResendOutcome::Queued(verification) => {
                    let attempt = self
                        .first_try(service, &verification, delivery, &code, &pumping, now)
                        .await?;
                    return Ok(Started::Resent(*verification, attempt));
                }
                ResendOutcome::TooManySends => return Err(StartError::TooManySends),
                // Ended between the lookup and the resend: start afresh below (its
                // counters were counted already).
                ResendOutcome::NotPending => hits.clear(),
            }
        }
        let pumping = match &unsafe_phone {
            Some((phone, ranges)) => {
                let mut pumping = self
                    .check_pumping(service.id, phone, ranges, request.client_ip.as_deref(), now)
                    .await?;
                // The pumping counts have no maximum, so their scope is never reported.
                hits.extend(
                    std::mem::take(&mut pumping.hits)
                        .into_iter()
                        .map(|hit| (LimitScope::Programmable, hit)),
                );
                pumping
            }
            None => PumpingCheck::default(),
        };
        let pin_type = request.pin_type.unwrap_or(settings.pin_type);
        let pin_length = request.pin_length.unwrap_or(settings.pin_length);
        let ttl = request.ttl.unwrap_or(settings.ttl);
        let id = VerificationId::generate();
        let (code, code_seed) = match request.custom_code {
            Some(custom) => (custom, None),
            None => {
                let seed = CodeSeed::generate();
                (
                    self.hasher.derive(id, &seed, pin_type, pin_length),
                    Some(seed),
                )
            }
        };
        let name = request.friendly_name.as_deref().unwrap_or(&service.name);
        let by_locale = request.locale.as_deref().and_then(|locale| {
            settings.locale_templates.get(locale).cloned().or_else(|| {
                crate::messages::builtin_template(locale).and_then(|t| Template::new(t).ok())
            })
        });
        let mut template = request
            .template
            .or(by_locale)
            .unwrap_or_else(|| settings.template_for(&to).clone())
            .with_name(name)
            .with_ttl(ttl);
        if settings.options.do_not_share_warning_enabled && channel != Channel::Call {
            template = template.with_suffix(DO_NOT_SHARE_WARNING);
        }
        if let Some(hash) = &request.app_hash {
            template = template
                .with_prefix("<#> ")
                .with_suffix(&format!("\n{hash}"));
        }
        if let (Some(origin), Recipient::Phone(_)) = (&settings.web_origin, &to) {
            template = template.with_suffix(&crate::messages::origin_bound_suffix(origin));
        }
        let parts = segment_count(&template.render(&code));
        let max_attempts = if settings.options.do_force_check_once {
            MaxAttempts::new(1).expect("1 is within bounds")
        } else {
            request.max_attempts.unwrap_or(settings.max_attempts)
        };
        let verification = Verification {
            id,
            service_id: service.id,
            to,
            country,
            channel,
            status: VerificationStatus::Pending,
            attempts: 0,
            max_attempts,
            ttl,
            code_hash: self.hasher.hash(id, &code),
            code_seed,
            pin_type,
            pin_length,
            template,
            from: request.from.unwrap_or_else(|| {
                country
                    .and_then(|c| settings.country_senders.get(c.as_str()))
                    .unwrap_or(&settings.from)
                    .clone()
            }),
            track_id: request.track_id,
            callback_url: request
                .callback_url
                .or_else(|| settings.callback_url.clone()),
            amount: request.amount,
            payee: request.payee,
            locale: request.locale.or_else(|| settings.locale.clone()),
            cost: self.prices.cost(country, parts),
            parts,
            created_at: now,
            expires_at: now.plus_seconds(ttl.get() as i64),
            updated_at: now,
        };
        let delivery = new_delivery(id, channel, now);
        let spend = service.settings.daily_budget.map(|cap| Spend {
            key: budget_key(service.id, now),
            amount: verification.cost,
            cap,
        });
        let plan = StartPlan {
            verification,
            delivery,
            cooldown_seconds: cooldown,
            lockout,
            limits: hits.iter().map(|(_, hit)| hit.clone()).collect(),
            spend,
        };
        match self.store.start_verification(&plan).await? {
            StartDecision::Created => {}
            StartDecision::Cooldown { allowed_at } => cooldown_passed(allowed_at, now)?,
            StartDecision::LockedOut { frees_at } => {
                return Err(StartError::LockedOut {
                    retry_after_seconds: seconds_until(frees_at, now),
                });
            }
            StartDecision::Limited { index, frees_at } => {
                let (scope, hit) = &hits[index];
                return Err(StartError::RateLimited {
                    scope: *scope,
                    limit: hit.max,
                    retry_after_seconds: seconds_until(frees_at, now),
                });
            }
            StartDecision::OverBudget => return Err(over_budget(service)),
        }
        let StartPlan {
            verification,
            delivery,
            ..
        } = plan;
        let attempt = self
            .first_try(service, &verification, delivery, &code, &pumping, now)
            .await?;
        Ok(Started::Created(verification, attempt))
    }

    /// Hands a queued attempt to its first try (or records it shadow-blocked) and returns it
    /// as that try left it; still `queued` when the try outlasts the start's wait. A start
    /// the pumping defence flagged has the decision recorded first.
    async fn first_try(
        &self,
        service: &ServiceRecord,
        verification: &Verification,
        delivery: DeliveryAttempt,
        code: &OtpCode,
        pumping: &PumpingCheck,
        now: Timestamp,
    ) -> Result<DeliveryAttempt, StartError> {
        if let Some(flagged) = &pumping.flagged {
            self.record_flag(verification, flagged, now).await;
        }
        let first_try = if pumping.shadow {
            Some((self.shadow_block(&delivery, now).await?, now))
        } else {
            self.dispatch
                .dispatch(self.job(service, verification, &delivery, code))
                .await
        };
        Ok(match first_try {
            Some((update, at)) => delivery.updated(&update, at),
            None => delivery,
        })
    }

    /// Adds a send's cost to the service's spend of the day, refusing it past the budget.
    async fn charge(
        &self,
        service: &ServiceRecord,
        cost: f64,
        now: Timestamp,
    ) -> Result<(), StartError> {
        let Some(budget) = service.settings.daily_budget else {
            return Ok(());
        };
        let key = budget_key(service.id, now);
        if self.store.add_spend(&key, cost, budget).await?.is_none() {
            return Err(over_budget(service));
        }
        Ok(())
    }

    /// Records a shadow-blocked send: answered as if sent, never handed to a provider.
    async fn shadow_block(
        &self,
        delivery: &DeliveryAttempt,
        now: Timestamp,
    ) -> Result<crate::store::DeliveryUpdate, StoreError> {
        let update = crate::store::DeliveryUpdate {
            provider: Some("shadow".into()),
            error: Some("not sent: the destination prefix is quarantined (shadow mode)".into()),
            error_code: Some("shadow_blocked".into()),
            ..crate::store::DeliveryUpdate::status(crate::DeliveryStatus::Failed)
        };
        self.store
            .update_delivery(delivery.id, &update, now)
            .await?;
        Ok(update)
    }
}
