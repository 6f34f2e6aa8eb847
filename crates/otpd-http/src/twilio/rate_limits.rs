//! Programmable Rate Limits and their Buckets (`/v2/Services/{Sid}/RateLimits[/{Sid}/Buckets]`).
//! They live in the service's settings; a start passing `RateLimits={"name": "value"}` is
//! counted per value in every bucket of the named rate limit (see `Verifier::start`).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use otpd_core::abuse::{MAX_BUCKETS_PER_RATE_LIMIT, ProgrammableRateLimit, RateBucket};
use otpd_core::store::ServiceRecord;
use otpd_core::{Clock, Store, Timestamp};
use serde_json::{Value, json};
use uuid::Uuid;

use super::error::{self, TwilioError};
use super::form::{Params, sid_uuid};
use super::wire::{account_sid, date, service_sid};
use super::{Acting, TwilioAccount, base_url, owned_service};
use crate::AppState;
use crate::admin::audit::record;
use otpd_core::audit::before_after;

fn rate_limit_json(base: &str, service: &ServiceRecord, limit: &ProgrammableRateLimit) -> Value {
    let url = format!(
        "{base}/v2/Services/{}/RateLimits/RK{}",
        service_sid(service),
        limit.id.simple()
    );
    json!({
        "sid": format!("RK{}", limit.id.simple()),
        "service_sid": service_sid(service),
        "account_sid": account_sid(service.account_id),
        "unique_name": limit.unique_name,
        "description": limit.description,
        "date_created": date(Timestamp(limit.created_at)),
        "date_updated": date(Timestamp(limit.updated_at)),
        "url": url,
        "links": {"buckets": format!("{url}/Buckets")},
    })
}

fn bucket_json(
    base: &str,
    service: &ServiceRecord,
    limit: &ProgrammableRateLimit,
    bucket: &RateBucket,
) -> Value {
    json!({
        "sid": format!("BL{}", bucket.id.simple()),
        "rate_limit_sid": format!("RK{}", limit.id.simple()),
        "service_sid": service_sid(service),
        "account_sid": account_sid(service.account_id),
        "max": bucket.max,
        "interval": bucket.interval,
        "date_created": date(Timestamp(bucket.created_at)),
        "date_updated": date(Timestamp(bucket.updated_at)),
        "url": format!(
            "{base}/v2/Services/{}/RateLimits/RK{}/Buckets/BL{}",
            service_sid(service),
            limit.id.simple(),
            bucket.id.simple()
        ),
    })
}

/// One page holding every item (a service has few rate limits).
fn page(key: &str, url: &str, items: Vec<Value>) -> Value {
    let page_url = format!("{url}?PageSize=50&Page=0");
    json!({
        key: items,
        "meta": {
            "page": 0, "page_size": 50, "first_page_url": page_url,
            "previous_page_url": null, "next_page_url": null, "key": key, "url": page_url,
        },
    })
}

async fn save<S: Store + Clone, C: Clock + Clone>(
    state: &AppState<S, C>,
    service: &mut ServiceRecord,
) -> Result<(), TwilioError> {
    service.updated_at = state.verifier.clock().now();
    state
        .verifier
        .manage()
        .update_service(service)
        .await
        .map_err(error::internal)?;
    Ok(())
}

fn find_limit(service: &ServiceRecord, sid: &str) -> Option<usize> {
    let id = sid_uuid(sid, "RK")?;
    service.settings.rate_limits.iter().position(|l| l.id == id)
}

/// `POST …/RateLimits`: `UniqueName` (required, unique in the service), `Description`.
pub async fn create<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
    headers: HeaderMap,
    Path(service_sid_path): Path<String>,
    TwilioAccount(account): TwilioAccount,
    Acting(by): Acting,
    body: Bytes,
) -> Result<Response, TwilioError> {
    let path = format!("/Services/{service_sid_path}/RateLimits");
    let mut service = owned_service(&state, account, &service_sid_path, &path).await?;
    let params = Params::parse(&body);
    let unique_name = params.required("UniqueName")?.to_string();
    if unique_name.chars().count() > 191 {
        return Err(error::invalid_because(
            "UniqueName",
            "at most 191 characters",
        ));
    }
    if service
        .settings
        .rate_limits
        .iter()
        .any(|l| l.unique_name == unique_name)
    {
        return Err(error::invalid_because(
            "UniqueName",
            "a rate limit with this name already exists",
        ));
    }
    let now = state.verifier.clock().now().0;
    let limit = ProgrammableRateLimit {
        id: Uuid::now_v7(),
        unique_name,
        description: params.text("Description", 255)?,
        created_at: now,
        updated_at: now,
        buckets: Vec::new(),
    };
    service.settings.rate_limits.push(limit.clone());
    save(&state, &mut service).await?;
    let summary = before_after(None, Some(&rate_limit_json("", &service, &limit)));
    let target = format!("RK{}", limit.id.simple());
    record(&state, &by, account, "rate_limit.create", target, summary).await?;
    let body = rate_limit_json(&base_url(&state, &headers), &service, &limit);
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `GET …/RateLimits`.
pub async fn list<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
    headers: HeaderMap,
    Path(sid): Path<String>,
    TwilioAccount(account): TwilioAccount,
) -> Result<Response, TwilioError> {
    let path = format!("/Services/{sid}/RateLimits");
    let service = owned_service(&state, account, &sid, &path).await?;
    let base = base_url(&state, &headers);
    let items = service
        .settings
        .rate_limits
        .iter()
        .map(|l| rate_limit_json(&base, &service, l))
        .collect();
    let url = format!("{base}/v2/Services/{}/RateLimits", service_sid(&service));
    Ok(Json(page("rate_limits", &url, items)).into_response())
}

/// `GET …/RateLimits/{Sid}`.
pub async fn fetch<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
    headers: HeaderMap,
    Path((sid, limit_sid)): Path<(String, String)>,
    TwilioAccount(account): TwilioAccount,
) -> Result<Response, TwilioError> {
    let path = format!("/Services/{sid}/RateLimits/{limit_sid}");
    let service = owned_service(&state, account, &sid, &path).await?;
    let index = find_limit(&service, &limit_sid).ok_or_else(|| error::not_found(&path))?;
    let limit = &service.settings.rate_limits[index];
    Ok(Json(rate_limit_json(
        &base_url(&state, &headers),
        &service,
        limit,
    ))
    .into_response())
}

/// `POST …/RateLimits/{Sid}`: only `Description` changes.
pub async fn update<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
    headers: HeaderMap,
    Path((sid, limit_sid)): Path<(String, String)>,
    TwilioAccount(account): TwilioAccount,
    Acting(by): Acting,
    body: Bytes,
) -> Result<Response, TwilioError> {
    let path = format!("/Services/{sid}/RateLimits/{limit_sid}");
    let mut service = owned_service(&state, account, &sid, &path).await?;
    let index = find_limit(&service, &limit_sid).ok_or_else(|| error::not_found(&path))?;
    let params = Params::parse(&body);
    let before = rate_limit_json("", &service, &service.settings.rate_limits[index]);
    let now = state.verifier.clock().now().0;
    {
        let limit = &mut service.settings.rate_limits[index];
        if let Some(description) = params.text("Description", 255)? {
            limit.description = Some(description);
        }
        limit.updated_at = now;
    }
    save(&state, &mut service).await?;
    let limit = &service.settings.rate_limits[index];
    let summary = before_after(Some(&before), Some(&rate_limit_json("", &service, limit)));
    let target = format!("RK{}", limit.id.simple());
    record(&state, &by, account, "rate_limit.update", target, summary).await?;
    Ok(Json(rate_limit_json(
        &base_url(&state, &headers),
        &service,
        limit,
    ))
    .into_response())
}

/// `DELETE …/RateLimits/{Sid}` (with its buckets).
pub async fn delete<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
    Path((sid, limit_sid)): Path<(String, String)>,
    TwilioAccount(account): TwilioAccount,
    Acting(by): Acting,
) -> Result<Response, TwilioError> {
    let path = format!("/Services/{sid}/RateLimits/{limit_sid}");
    let mut service = owned_service(&state, account, &sid, &path).await?;
    let index = find_limit(&service, &limit_sid).ok_or_else(|| error::not_found(&path))?;
    let removed = service.settings.rate_limits.remove(index);
    save(&state, &mut service).await?;
    let summary = before_after(Some(&rate_limit_json("", &service, &removed)), None);
    let target = format!("RK{}", removed.id.simple());
    record(&state, &by, account, "rate_limit.delete", target, summary).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn bucket_params(
    params: &Params,
    required: bool,
) -> Result<(Option<u32>, Option<u32>), TwilioError> {
    if required {
        params.required("Max")?;
        params.required("Interval")?;
    }
    let max = params.int("Max", 1, 1_000_000)?.map(|v| v as u32);
    let interval = params.int("Interval", 1, 86_400)?.map(|v| v as u32);
    Ok((max, interval))
}

/// `POST …/RateLimits/{Sid}/Buckets`: `Max` and `Interval` (seconds), both required.
pub async fn create_bucket<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
    headers: HeaderMap,
    Path((sid, limit_sid)): Path<(String, String)>,
    TwilioAccount(account): TwilioAccount,
    Acting(by): Acting,
    body: Bytes,
) -> Result<Response, TwilioError> {
    let path = format!("/Services/{sid}/RateLimits/{limit_sid}/Buckets");
    let mut service = owned_service(&state, account, &sid, &path).await?;
    let index = find_limit(&service, &limit_sid).ok_or_else(|| error::not_found(&path))?;
    let (Some(max), Some(interval)) = bucket_params(&Params::parse(&body), true)? else {
        return Err(error::missing("Max"));
    };
    if service.settings.rate_limits[index].buckets.len() >= MAX_BUCKETS_PER_RATE_LIMIT {
        return Err(error::max_buckets());
    }
    let now = state.verifier.clock().now().0;
    let bucket = RateBucket {
        id: Uuid::now_v7(),
        max,
        interval,
        created_at: now,
        updated_at: now,
    };
    service.settings.rate_limits[index]
        .buckets
        .push(bucket.clone());
    save(&state, &mut service).await?;
    let limit = &service.settings.rate_limits[index];
    let summary = before_after(None, Some(&bucket_json("", &service, limit, &bucket)));
    let target = format!("BL{}", bucket.id.simple());
    record(&state, &by, account, "bucket.create", target, summary).await?;
    let body = bucket_json(&base_url(&state, &headers), &service, limit, &bucket);
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `GET …/RateLimits/{Sid}/Buckets`.
pub async fn list_buckets<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
    headers: HeaderMap,
    Path((sid, limit_sid)): Path<(String, String)>,
    TwilioAccount(account): TwilioAccount,
) -> Result<Response, TwilioError> {
    let path = format!("/Services/{sid}/RateLimits/{limit_sid}/Buckets");
    let service = owned_service(&state, account, &sid, &path).await?;
    let index = find_limit(&service, &limit_sid).ok_or_else(|| error::not_found(&path))?;
    let base = base_url(&state, &headers);
    let limit = &service.settings.rate_limits[index];
    let items = limit
        .buckets
        .iter()
        .map(|b| bucket_json(&base, &service, limit, b))
        .collect();
    let url = format!(
        "{base}/v2/Services/{}/RateLimits/RK{}/Buckets",
        service_sid(&service),
        limit.id.simple()
    );
    Ok(Json(page("buckets", &url, items)).into_response())
}

fn find_bucket(
    service: &ServiceRecord,
    limit_sid: &str,
    bucket_sid: &str,
) -> Option<(usize, usize)> {
    let index = find_limit(service, limit_sid)?;
    let id = sid_uuid(bucket_sid, "BL")?;
    let bucket = service.settings.rate_limits[index]
        .buckets
        .iter()
        .position(|b| b.id == id)?;
    Some((index, bucket))
}

/// `GET …/Buckets/{Sid}`.
pub async fn fetch_bucket<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
    headers: HeaderMap,
    Path((sid, limit_sid, bucket_sid)): Path<(String, String, String)>,
    TwilioAccount(account): TwilioAccount,
) -> Result<Response, TwilioError> {
    let path = format!("/Services/{sid}/RateLimits/{limit_sid}/Buckets/{bucket_sid}");
    let service = owned_service(&state, account, &sid, &path).await?;
    let (l, b) =
        find_bucket(&service, &limit_sid, &bucket_sid).ok_or_else(|| error::not_found(&path))?;
    let limit = &service.settings.rate_limits[l];
    let body = bucket_json(
        &base_url(&state, &headers),
        &service,
        limit,
        &limit.buckets[b],
    );
    Ok(Json(body).into_response())
}

/// `POST …/Buckets/{Sid}`: `Max` and/or `Interval`.
pub async fn update_bucket<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
    headers: HeaderMap,
    Path((sid, limit_sid, bucket_sid)): Path<(String, String, String)>,
    TwilioAccount(account): TwilioAccount,
    Acting(by): Acting,
    body: Bytes,
) -> Result<Response, TwilioError> {
    let path = format!("/Services/{sid}/RateLimits/{limit_sid}/Buckets/{bucket_sid}");
    let mut service = owned_service(&state, account, &sid, &path).await?;
    let (l, b) =
        find_bucket(&service, &limit_sid, &bucket_sid).ok_or_else(|| error::not_found(&path))?;
    let (max, interval) = bucket_params(&Params::parse(&body), false)?;
    let limit = &service.settings.rate_limits[l];
    let before = bucket_json("", &service, limit, &limit.buckets[b]);
    let now = state.verifier.clock().now().0;
    {
        let bucket = &mut service.settings.rate_limits[l].buckets[b];
        bucket.max = max.unwrap_or(bucket.max);
        bucket.interval = interval.unwrap_or(bucket.interval);
        bucket.updated_at = now;
    }
    save(&state, &mut service).await?;
    let limit = &service.settings.rate_limits[l];
    let after = bucket_json("", &service, limit, &limit.buckets[b]);
    let target = format!("BL{}", limit.buckets[b].id.simple());
    let summary = before_after(Some(&before), Some(&after));
    record(&state, &by, account, "bucket.update", target, summary).await?;
    let body = bucket_json(
        &base_url(&state, &headers),
        &service,
        limit,
        &limit.buckets[b],
    );
    Ok(Json(body).into_response())
}

/// `DELETE …/Buckets/{Sid}`.
pub async fn delete_bucket<S: Store + Clone, C: Clock + Clone>(
    State(state): State<AppState<S, C>>,
    Path((sid, limit_sid, bucket_sid)): Path<(String, String, String)>,
    TwilioAccount(account): TwilioAccount,
    Acting(by): Acting,
) -> Result<Response, TwilioError> {
    let path = format!("/Services/{sid}/RateLimits/{limit_sid}/Buckets/{bucket_sid}");
    let mut service = owned_service(&state, account, &sid, &path).await?;
    let (l, b) =
        find_bucket(&service, &limit_sid, &bucket_sid).ok_or_else(|| error::not_found(&path))?;
    let removed = service.settings.rate_limits[l].buckets.remove(b);
    save(&state, &mut service).await?;
    let limit = &service.settings.rate_limits[l];
    let summary = before_after(Some(&bucket_json("", &service, limit, &removed)), None);
    let target = format!("BL{}", removed.id.simple());
    record(&state, &by, account, "bucket.delete", target, summary).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
