//! Retention with the controllable clock: a purge removes the rows of a day past the window,
//! and that day still answers the Attempts Summary and the admin report as before (from its
//! rollups), while the next day is untouched. Runs on SQLite, or PostgreSQL with
//! `OTPD_TEST_BACKEND=postgres`.

mod common;

use common::TestApp;
use otpd_core::retention::{DAY_MS, day_start};
use otpd_core::store::{DeliveryStore, EventStore, VerificationStore};
use otpd_core::{Clock, Timestamp, VerificationId};
use serde_json::{Value, json};

/// `2026-12-04T00:00:00Z` for a day-aligned time (the Summary's date filters are RFC 3339).
fn rfc3339_day(at: Timestamp) -> String {
    // Howard Hinnant's civil-from-days.
    let z = at.0.div_euclid(DAY_MS) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T00:00:00Z")
}

struct Reader<'a> {
    app: &'a TestApp,
    user: String,
    password: String,
}

impl Reader<'_> {
    async fn get(&self, path: &str) -> Value {
        let response = self
            .app
            .client
            .get(self.app.url(path))
            .basic_auth(&self.user, Some(&self.password))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        response.json().await.unwrap()
    }

    /// The Summary and the report (by channel and by provider) of `since..until`, without
    /// their `url`s.
    async fn figures(&self, since: Timestamp, until: Timestamp) -> Vec<Value> {
        let mut summary = self
            .get(&format!(
                "/v2/Attempts/Summary?DateCreatedAfter={}&DateCreatedBefore={}",
                rfc3339_day(since),
                rfc3339_day(until)
            ))
            .await;
        summary.as_object_mut().unwrap().remove("url");
        let range = format!("since={}&until={}", since.0 / 1000, until.0 / 1000);
        vec![
            summary,
            self.get(&format!("/admin/v1/report?groupBy=channel&{range}"))
                .await,
            self.get(&format!("/admin/v1/report?groupBy=provider&{range}"))
                .await,
            self.get(&format!("/admin/v1/report?groupBy=country&{range}"))
                .await,
        ]
    }
}

/// Starts one verification to `to`; approves it after `approve_after` seconds when given.
async fn verification(app: &TestApp, to: &str, approve_after: Option<i64>) -> VerificationId {
    let token = app.token().await;
    let (status, created) = app.create(&token, json!({"phoneNumber": to})).await;
    assert_eq!(status, 201, "{created}");
    let id = created["otpId"].as_str().unwrap().to_string();
    if let Some(seconds) = approve_after {
        app.clock.advance_seconds(seconds);
        let code = app.last_code(to).await;
        assert_eq!(app.check(&token, &id, &code).await.0, 200);
    }
    VerificationId::from_uuid(id.parse().unwrap())
}

#[tokio::test]
async fn a_purged_day_keeps_its_summary_and_report_figures_and_the_next_day_is_untouched() {
    let app = TestApp::spawn_configured(|config| {
        config.retention.verifications_days = 1;
        config.retention.events_days = 1;
        config.retention.delivery_logs_days = 1;
        config.retention.counters_days = 1;
        config.retention.batch = 2;
        // Alerts judge a day of live sends, more than a one-day window keeps.
        config.alerts.enabled = false;
        // The test runs the pass itself.
        config.retention.purge_every_seconds = 86_400;
    })
    .await;
    let server = app.server.as_ref().unwrap();
    let store = server.store.clone();
    // Day D-2 starts an hour from now on the test's clock.
    let now = app.clock.now();
    app.clock
        .advance_seconds((day_start(now).0 + DAY_MS - now.0) / 1000 + 3600);
    let d2 = day_start(app.clock.now());
    let d1 = Timestamp(d2.0 + DAY_MS);

    let mut old = Vec::new();
    old.push(verification(&app, "+33612345601", Some(20)).await);
    old.push(verification(&app, "+33612345602", Some(40)).await);
    old.push(verification(&app, "+33612345603", None).await);
    old.push(verification(&app, "+447400123456", Some(7)).await);
    // The unapproved one expires (as the sweep records it).
    app.clock.advance_seconds(601);
    store.expire_due(app.clock.now(), 500).await.unwrap();
    app.clock.advance_seconds(86_400);
    let recent = verification(&app, "+33612345604", Some(9)).await;
    assert!(app.clock.now() >= d1);

    let user = format!("AC{}", app.credentials.application.account_id.simple());
    let password = app.credentials.account_token.clone().unwrap();
    let reader = Reader {
        app: &app,
        user,
        password,
    };
    let d2_before = reader.figures(d2, d1).await;
    let both_before = reader.figures(d2, Timestamp(d1.0 + DAY_MS)).await;
    assert_eq!(d2_before[0]["total_attempts"], 4, "{:?}", d2_before[0]);
    assert_eq!(d2_before[0]["total_converted"], 3);
    let sms = &d2_before[1]["groups"][0];
    assert_eq!(
        (&sms["SUCCESS"], &sms["SENT"]),
        (&json!(3), &json!(1)),
        "{sms}"
    );

    // A day later a pass purges D-2, which is past the one-day window; D-1 is not yet.
    app.clock.advance_seconds(86_400 + 3600);
    let metrics = otpd_delivery::Metrics::new();
    let counts = otpd::purge_once(
        &store,
        &app.config.retention.policy(),
        app.clock.now(),
        &metrics,
    )
    .await
    .unwrap();
    assert_eq!(counts.rolled_up_days, 1, "{counts:?}");
    assert!(
        metrics
            .render()
            .contains("otpd_purged_rows_total{kind=\"verifications\"} 4"),
        "{}",
        metrics.render()
    );

    for id in &old {
        assert!(store.verification(*id).await.unwrap().is_none());
        assert!(store.deliveries(*id).await.unwrap().is_empty());
    }
    let account = app.credentials.application.account_id;
    let events = store
        .events(&otpd_core::events::EventFilter {
            account,
            service: None,
            verification: Some(old[0]),
            kind: None,
            since: None,
            until: None,
            after: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert!(events.is_empty(), "{events:?}");
    assert!(store.verification(recent).await.unwrap().is_some());
    assert_eq!(store.deliveries(recent).await.unwrap().len(), 1);

    assert_eq!(reader.figures(d2, d1).await, d2_before);
    assert_eq!(
        reader.figures(d2, Timestamp(d1.0 + DAY_MS)).await,
        both_before
    );
    let all = reader.get("/v2/Attempts/Summary").await;
    assert_eq!(
        (&all["total_attempts"], &all["total_converted"]),
        (&json!(5), &json!(4))
    );
    // Another pass (another node) changes nothing.
    otpd::purge_once(
        &store,
        &app.config.retention.policy(),
        app.clock.now(),
        &metrics,
    )
    .await
    .unwrap();
    assert_eq!(reader.figures(d2, d1).await, d2_before);
}
