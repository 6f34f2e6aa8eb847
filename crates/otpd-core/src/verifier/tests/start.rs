//! A new verification's start: the request's own checks, then the order of checks of
//! docs/security.md (destination rules, pumping, the atomic step's plan and its decisions).

use super::*;

// ---- Before any protection: what the request asks for ----

#[test]
fn channel_no_provider_serves_is_refused_before_anything_is_written() {
    let h = harness_serving(OtpSettings::default(), AbusePolicy::default(), false);
    let refused = h.start(to(MOBILE));
    assert!(matches!(
        refused,
        Err(StartError::ChannelUnavailable(Channel::Sms))
    ));
    let state = h.store.state();
    assert!(state.plans.is_empty() && state.rates.is_empty() && state.events.is_empty());
    drop(state);
    h.assert_nothing_sent();
}

#[test]
fn custom_code_needs_the_option() {
    let custom = StartRequest {
        custom_code: Some(OtpCode::from_user_input("424242")),
        ..to(MOBILE)
    };
    let h = harness(OtpSettings::default(), no_protections());
    let refused = h.start(custom.clone());
    assert!(matches!(refused, Err(StartError::CustomCodeNotAllowed)));
    h.assert_nothing_sent();

    let mut settings = OtpSettings::default();
    settings.options.custom_code_enabled = true;
    let allowing = harness(settings, no_protections());
    assert!(allowing.start(custom).is_ok());
    assert_eq!(allowing.dispatch.jobs()[0].code.expose(), "424242");
}

#[test]
fn psd2_details_need_the_option() {
    let h = harness(OtpSettings::default(), no_protections());
    let refused = h.start(StartRequest {
        amount: Some("12.00".into()),
        payee: Some("Acme".into()),
        ..to(MOBILE)
    });
    assert!(matches!(refused, Err(StartError::Psd2NotEnabled)));
    h.assert_nothing_sent();
}

#[test]
fn email_channel_to_a_phone_is_a_mismatch() {
    let h = harness(OtpSettings::default(), no_protections());
    let refused = h.start(StartRequest {
        channel: Some(Channel::Email),
        ..to(MOBILE)
    });
    assert!(matches!(refused, Err(StartError::ChannelMismatch)));
    let email = Email::parse("user@example.com").expect("a valid address");
    let refused = h.start(StartRequest {
        to: Some((Recipient::Email(email), None)),
        channel: Some(Channel::Sms),
        ..Default::default()
    });
    assert!(matches!(refused, Err(StartError::ChannelMismatch)));
    h.assert_nothing_sent();
}

#[test]
fn start_without_a_recipient_is_refused() {
    let h = harness(OtpSettings::default(), no_protections());
    let refused = h.start(StartRequest::default());
    assert!(matches!(refused, Err(StartError::MissingRecipient)));
}

// ---- 1. Destination rules (safe-listed numbers skip them) ----

#[test]
fn blocked_country_is_refused_before_the_pumping_defence() {
    let h = harness(
        OtpSettings {
            blocked_countries: vec!["GB".into()],
            ..Default::default()
        },
        with_pumping(QuarantineMode::Block),
    );
    h.quarantine("+44740");
    let refused = h.start(to(MOBILE));
    assert!(matches!(
        refused,
        Err(StartError::Blocked(Blocked::Country))
    ));
    assert!(h.store.state().plans.is_empty());
    h.assert_nothing_sent();
}

#[test]
fn country_outside_the_allowed_list_is_refused() {
    let h = harness(
        OtpSettings {
            allowed_countries: vec!["FR".into()],
            ..Default::default()
        },
        no_protections(),
    );
    let refused = h.start(to(MOBILE));
    assert!(matches!(
        refused,
        Err(StartError::Blocked(Blocked::Country))
    ));
    assert!(h.start(to("+33612345678")).is_ok());
}

#[test]
fn blocked_prefix_is_refused() {
    let h = harness(
        OtpSettings {
            blocked_prefixes: vec!["+4474".into()],
            ..Default::default()
        },
        no_protections(),
    );
    let refused = h.start(to(MOBILE));
    assert!(matches!(
        refused,
        Err(StartError::Blocked(Blocked::BlockList))
    ));
    h.assert_nothing_sent();
}

#[test]
fn costly_number_is_refused_unless_the_service_allows_them() {
    let h = harness(OtpSettings::default(), no_protections());
    let refused = h.start(to("+449098765432"));
    assert!(matches!(
        refused,
        Err(StartError::Blocked(Blocked::CostlyNumber))
    ));
    h.assert_nothing_sent();
    let allowing = harness(
        OtpSettings {
            allow_costly_numbers: true,
            ..Default::default()
        },
        no_protections(),
    );
    assert!(allowing.start(to("+449098765432")).is_ok());
}

#[test]
fn sms_to_a_landline_is_refused_when_the_service_skips_them() {
    let mut settings = OtpSettings::default();
    settings.options.skip_sms_to_landlines = true;
    let h = harness(settings, no_protections());
    let refused = h.start(to("+441212345678"));
    assert!(matches!(
        refused,
        Err(StartError::Blocked(Blocked::Landline))
    ));
    let call = StartRequest {
        channel: Some(Channel::Call),
        ..to("+441212345678")
    };
    assert!(h.start(call).is_ok(), "only SMS skips landlines");
}

#[test]
fn safe_listed_number_skips_destination_rules_pumping_lockout_and_limits_not_the_cooldown() {
    let h = harness(
        OtpSettings {
            blocked_countries: vec!["GB".into()],
            safe_list: vec![MOBILE.into()],
            resend_cooldown_seconds: 30,
            ..Default::default()
        },
        AbusePolicy {
            failed_checks: limit(3),
            ..AbusePolicy::default()
        },
    );
    h.quarantine("+44740");
    let request = StartRequest {
        client_ip: Some("192.0.2.1".into()),
        ..to(MOBILE)
    };
    assert!(h.start(request).is_ok());
    let state = h.store.state();
    let plan = state.plans.last().expect("a plan");
    assert!(plan.limits.is_empty(), "limits: {:?}", plan.limits);
    assert_eq!(plan.lockout, None);
    assert_eq!(
        plan.cooldown_seconds, 30,
        "the cooldown applies to safe numbers too"
    );
}

#[test]
fn account_safe_list_counts_like_the_services() {
    let h = harness(
        OtpSettings {
            blocked_countries: vec!["GB".into()],
            ..Default::default()
        },
        AbusePolicy::default(),
    );
    h.store.state().safe_numbers.push((
        h.service.account_id,
        SafeNumber {
            id: uuid::Uuid::nil(),
            phone: MOBILE.into(),
            created_at: Timestamp(0),
        },
    ));
    assert!(h.start(to(MOBILE)).is_ok());
    assert!(h.store.state().plans[0].limits.is_empty());
}

// ---- 2. SMS-pumping defence ----

#[test]
fn quarantined_prefix_is_refused_in_block_mode() {
    let h = harness(OtpSettings::default(), with_pumping(QuarantineMode::Block));
    h.quarantine("+44740");
    let refused = h.start(to(MOBILE));
    assert!(matches!(refused, Err(StartError::Quarantined(_))));
    assert!(h.store.state().plans.is_empty());
    h.assert_nothing_sent();
    let blocked = &h.store.state().events;
    assert_eq!(blocked.len(), 1);
    assert_eq!(blocked[0].kind, "verification.blocked");
    assert_eq!(blocked[0].data["reason"], "pumping");
}

#[test]
fn quarantined_prefix_in_shadow_mode_answers_without_dispatching() {
    let h = harness(OtpSettings::default(), with_pumping(QuarantineMode::Shadow));
    h.quarantine("+44740");
    let started = h.start(to(MOBILE)).expect("answered as if sent");
    assert!(
        h.dispatch.jobs().is_empty(),
        "a shadow-blocked code was sent"
    );
    assert_eq!(started.attempt().status, DeliveryStatus::Failed);
    assert_eq!(
        started.attempt().error_code.as_deref(),
        Some("shadow_blocked")
    );
    let updates = &h.store.state().delivery_updates;
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].1.provider.as_deref(), Some("shadow"));
}

#[test]
fn low_approval_rate_quarantines_the_prefix_now() {
    let h = harness(OtpSettings::default(), with_pumping(QuarantineMode::Block));
    let key = crate::abuse::pumping_key("sent", h.service.id, "+44740");
    let now = h.clock.now();
    h.store.state().rates.insert(key, vec![now; 20]);
    let refused = h.start(to(MOBILE));
    assert!(matches!(refused, Err(StartError::Quarantined(_))));
    let quarantines = &h.store.state().quarantines;
    assert_eq!(quarantines.len(), 1);
    assert_eq!(quarantines[0].prefix, "+44740");
    assert_eq!(quarantines[0].service, Some(h.service.id));
}

/// The starts of an unconverted run to one prefix that `mode` refuses (block) or flags
/// (shadow, monitor), by their place in the run, with the harness.
fn pumping_decisions(mode: QuarantineMode) -> (Vec<usize>, Harness) {
    let h = harness(OtpSettings::default(), with_pumping(mode));
    let mut decided = Vec::new();
    for n in 0..30 {
        let number = format!("+4474001234{n:02}");
        match h.start(to(&number)) {
            Err(StartError::Quarantined(_)) => decided.push(n),
            Err(other) => panic!("start {n}: {other}"),
            Ok(started) => {
                let id = started.verification().id;
                let flagged = h
                    .store
                    .state()
                    .events
                    .iter()
                    .any(|e| e.kind == "verification.flagged" && e.verification_id == Some(id));
                if flagged {
                    decided.push(n);
                }
            }
        }
    }
    (decided, h)
}

#[test]
fn monitor_mode_sends_everything_and_records_what_block_mode_refuses() {
    let (refused, _) = pumping_decisions(QuarantineMode::Block);
    assert_eq!(
        refused,
        (20..30).collect::<Vec<_>>(),
        "block mode refuses from the start that finds 20 unconverted ones"
    );
    let (flagged, h) = pumping_decisions(QuarantineMode::Monitor);
    assert_eq!(flagged, refused, "the same decisions, recorded");
    assert_eq!(h.dispatch.jobs().len(), 30, "every code sent");
    let state = h.store.state();
    let flag = state
        .events
        .iter()
        .find(|e| e.kind == "verification.flagged")
        .unwrap();
    assert_eq!(flag.data["mode"], "monitor");
    assert_eq!(flag.data["decision"], "block");
    assert!(
        flag.data["detail"]
            .as_str()
            .unwrap()
            .contains("the prefix +44740 is quarantined until"),
        "{}",
        flag.data
    );
    let quarantined: Vec<_> = state
        .events
        .iter()
        .filter(|e| e.kind == "prefix.quarantined")
        .collect();
    assert_eq!(quarantined.len(), 1, "one quarantine, one record");
    assert_eq!(quarantined[0].data["prefix"], "+44740");
    assert_eq!(quarantined[0].data["signals"]["starts"], 20);
    assert_eq!(quarantined[0].data["signals"]["approved"], 0);
    assert_eq!(quarantined[0].data["baseline"]["minVolume"], 20);
    assert_eq!(quarantined[0].data["mode"], "monitor");
}

#[test]
fn shadow_mode_records_the_start_it_did_not_send() {
    let (flagged, h) = pumping_decisions(QuarantineMode::Shadow);
    assert_eq!(flagged, (20..30).collect::<Vec<_>>());
    assert_eq!(
        h.dispatch.jobs().len(),
        20,
        "the flagged ones were not sent"
    );
    let state = h.store.state();
    let flag = state
        .events
        .iter()
        .find(|e| e.kind == "verification.flagged")
        .unwrap();
    assert_eq!(flag.data["mode"], "shadow");
}

#[test]
fn a_network_reaching_too_many_prefixes_is_quarantined_not_the_ranges() {
    let h = harness(OtpSettings::default(), with_pumping(QuarantineMode::Block));
    let from = |number: &str, ip: &str| StartRequest {
        client_ip: Some(ip.to_string()),
        ..to(number)
    };
    let sweeper = "2a0e:1234:5678:9abc::17";
    for d in 0..5 {
        let number = format!("+4474{d}0123456");
        assert!(h.start(from(&number, sweeper)).is_ok(), "prefix {d} of 5");
        // Again to a prefix it reached: not another one.
        let again = format!("+4474{d}0123457");
        assert!(h.start(from(&again, sweeper)).is_ok());
    }
    let refused = h.start(from("+447450123456", "2a0e:1234:5678:9abc::99"));
    let Err(StartError::Quarantined(detail)) = refused else {
        panic!("a sixth prefix from the /64: {refused:?}")
    };
    assert!(
        detail.starts_with("the network 2a0e:1234:5678:9abc::/64 is quarantined until"),
        "{detail}"
    );
    assert!(
        detail.ends_with(
            " UTC: it started verifications to 5 prefixes in 3600 s, and this start is to another"
        ),
        "{detail}"
    );
    assert!(
        matches!(
            h.start(from("+447400123458", sweeper)),
            Err(StartError::Quarantined(_))
        ),
        "the network is held, whatever its next prefix"
    );
    assert!(
        h.start(from("+447450123459", "2a0e:1234:5678:9abd::1"))
            .is_ok(),
        "another network still reaches the prefix"
    );
    for d in 0..8 {
        let number = format!("+4475{d}0123456");
        assert!(
            h.start(from(&number, "203.0.113.7")).is_ok(),
            "an IPv4 address may be shared: not judged by its spread"
        );
    }
    let state = h.store.state();
    let held: Vec<&str> = state
        .quarantines
        .iter()
        .map(|q| q.prefix.as_str())
        .collect();
    assert_eq!(held, ["2a0e:1234:5678:9abc::/64"], "no range quarantined");
    let event = state
        .events
        .iter()
        .find(|e| e.kind == "prefix.quarantined")
        .unwrap();
    assert_eq!(event.data["rule"], "source_spread");
    assert_eq!(event.data["signals"]["prefixes"], 6);
    assert_eq!(event.data["baseline"]["maxPrefixes"], 5);
}

// ---- 3. The plan of the atomic store step ----

#[test]
fn plan_carries_cooldown_lockout_limits_in_order_then_the_spend() {
    let rate_limit = ProgrammableRateLimit {
        id: uuid::Uuid::from_u128(1),
        unique_name: "end_user".into(),
        description: None,
        created_at: 0,
        updated_at: 0,
        buckets: vec![RateBucket {
            id: uuid::Uuid::from_u128(2),
            max: 4,
            interval: 60,
            created_at: 0,
            updated_at: 0,
        }],
    };
    let h = harness(
        OtpSettings {
            resend_cooldown_seconds: 30,
            rate_limits: vec![rate_limit],
            daily_budget: Some(10.0),
            ..Default::default()
        },
        AbusePolicy {
            per_client_ip: limit(120),
            per_destination: limit(5),
            per_country_default: limit(50),
            failed_checks: limit(20),
            pumping: Some(PumpingPolicy::default()),
            ..no_protections()
        },
    );
    let request = StartRequest {
        client_ip: Some("192.0.2.1".into()),
        rate_limit_values: vec![("end_user".into(), "u-1".into())],
        ..to(MOBILE)
    };
    assert!(h.start(request).is_ok());
    let state = h.store.state();
    let plan = &state.plans[0];
    assert_eq!(plan.cooldown_seconds, 30);
    let lockout = plan.lockout.as_ref().expect("the lockout is on");
    assert_eq!(
        lockout.key,
        failure_key(
            h.service.id,
            &plan.verification.to,
            &super::super::fake::test_vault()
        )
    );
    assert_eq!(lockout.max, 20);
    let kinds: Vec<&str> = plan
        .limits
        .iter()
        .map(|hit| hit.key.split(':').next().unwrap_or_default())
        .collect();
    assert_eq!(kinds, ["ip", "dest", "country", "rl", "pump"]);
    assert_eq!(
        plan.limits.iter().map(|hit| hit.max).collect::<Vec<_>>(),
        [120, 5, 50, 4, u32::MAX]
    );
    let spend = plan.spend.as_ref().expect("the service has a budget");
    assert_eq!(spend.cap, 10.0);
    assert!(spend.key.starts_with(&format!("budget:{}:", h.service.id)));
}

#[test]
fn cooldown_refuses_a_start_too_soon_after_the_last_send() {
    let h = harness(
        OtpSettings {
            resend_cooldown_seconds: 30,
            ..Default::default()
        },
        no_protections(),
    );
    assert!(h.start(to(MOBILE)).is_ok());
    h.clock.advance_seconds(10);
    let refused = h.start(to(MOBILE));
    assert!(
        matches!(
            refused,
            Err(StartError::Cooldown {
                retry_after_seconds: 20
            })
        ),
        "{refused:?}"
    );
    assert_eq!(h.dispatch.jobs().len(), 1, "the refused start dispatched");
    h.clock.advance_seconds(20);
    assert!(h.start(to(MOBILE)).is_ok());
}

#[test]
fn lockout_decision_refuses_with_the_time_it_lifts() {
    let h = harness(OtpSettings::default(), no_protections());
    let frees_at = h.clock.now().plus_seconds(90);
    h.store.state().scripted = Some(StartDecision::LockedOut {
        frees_at: Some(frees_at),
    });
    let refused = h.start(to(MOBILE));
    assert!(
        matches!(
            refused,
            Err(StartError::LockedOut {
                retry_after_seconds: 90
            })
        ),
        "{refused:?}"
    );
    h.assert_nothing_sent();
}

#[test]
fn wrong_codes_lock_the_destination_out() {
    let h = harness(
        OtpSettings::default(),
        AbusePolicy {
            failed_checks: limit(2),
            ..no_protections()
        },
    );
    let (id, _) = h.started();
    h.check(id, "000000");
    h.check(id, "000001");
    let refused = h.start(to(MOBILE));
    assert!(
        matches!(refused, Err(StartError::LockedOut { .. })),
        "{refused:?}"
    );
}

#[test]
fn limited_decision_names_the_scope_of_the_limit_at_that_index() {
    let expected = [
        (LimitScope::ClientIp, 120),
        (LimitScope::Destination, 5),
        (LimitScope::Country, 50),
    ];
    for (index, (scope, max)) in expected.into_iter().enumerate() {
        let h = harness(
            OtpSettings::default(),
            AbusePolicy {
                per_client_ip: limit(120),
                per_destination: limit(5),
                per_country_default: limit(50),
                ..no_protections()
            },
        );
        h.store.state().scripted = Some(StartDecision::Limited {
            index,
            frees_at: None,
        });
        let request = StartRequest {
            client_ip: Some("192.0.2.1".into()),
            ..to(MOBILE)
        };
        match h.start(request) {
            Err(StartError::RateLimited {
                scope: refused,
                limit,
                retry_after_seconds: 1,
            }) => assert_eq!((refused, limit), (scope, max)),
            other => panic!("limit {index}: {other:?}"),
        }
        h.assert_nothing_sent();
    }
}

#[test]
fn destination_limit_refuses_the_start_past_its_maximum_and_records_why() {
    let h = harness(
        OtpSettings::default(),
        AbusePolicy {
            per_destination: limit(2),
            ..no_protections()
        },
    );
    assert!(h.start(to(MOBILE)).is_ok());
    assert!(h.start(to(MOBILE)).is_ok());
    let refused = h.start(to(MOBILE));
    assert!(
        matches!(
            refused,
            Err(StartError::RateLimited {
                scope: LimitScope::Destination,
                limit: 2,
                retry_after_seconds: 600,
            })
        ),
        "{refused:?}"
    );
    assert_eq!(h.dispatch.jobs().len(), 2);
    let state = h.store.state();
    assert_eq!(state.events.len(), 1);
    assert_eq!(state.events[0].data["reason"], "destination");
}

#[test]
fn over_budget_decision_is_budget_exceeded() {
    let h = harness(
        OtpSettings {
            daily_budget: Some(0.5),
            ..Default::default()
        },
        no_protections(),
    );
    h.store.state().scripted = Some(StartDecision::OverBudget);
    let refused = h.start(to(MOBILE));
    assert!(
        matches!(refused, Err(StartError::BudgetExceeded { budget: 0.5 })),
        "{refused:?}"
    );
    h.assert_nothing_sent();
}
