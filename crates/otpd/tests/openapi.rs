//! The generated OpenAPI document (`/openapi.json`) and its page (`/docs`): every native and
//! admin operation is there with its responses, and live answers match the declared schemas.

mod common;

use common::TestApp;
use otpd_core::Clock;
use reqwest::Method;
use serde_json::{Value, json};

const FR: &str = "+33612345678";
const FR2: &str = "+33612345679";

/// Every operation the document must describe.
const OPERATIONS: &[(&str, &str)] = &[
    ("/oauth/token", "post"),
    ("/oauth/revoke", "post"),
    ("/otp", "post"),
    ("/otp/{otpId}", "get"),
    ("/otp/{otpId}", "post"),
    ("/otp/{otpId}", "delete"),
    ("/admin/v1/quarantines", "get"),
    ("/admin/v1/quarantines/{prefix}", "delete"),
    ("/admin/v1/account/token", "post"),
    ("/admin/v1/keys", "get"),
    ("/admin/v1/keys/{sid}", "delete"),
    ("/admin/v1/events", "get"),
    ("/admin/v1/report", "get"),
    ("/admin/v1/services/{sid}/protection", "get"),
    ("/admin/v1/services/{sid}/protection", "put"),
    ("/admin/v1/services/{sid}/webhooks", "get"),
    ("/admin/v1/services/{sid}/webhooks", "post"),
    ("/admin/v1/services/{sid}/webhooks/{id}", "delete"),
    ("/admin/v1/services/{sid}/webhooks/{id}/deliveries", "get"),
];

async fn document(app: &TestApp) -> Value {
    let response = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    response.json().await.unwrap()
}

/// Every `$ref` anywhere in `value`.
fn refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, item) in map {
                match (key.as_str(), item) {
                    ("$ref", Value::String(target)) => out.push(target.clone()),
                    _ => refs(item, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| refs(item, out)),
        _ => {}
    }
}

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(target) => {
            let name = target.rsplit('/').next().unwrap();
            let found = &doc["components"]["schemas"][name];
            assert!(!found.is_null(), "{target} does not exist");
            resolve(doc, found)
        }
        None => schema,
    }
}

fn type_matches(kind: &str, value: &Value) -> bool {
    match kind {
        "null" => value.is_null(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        _ => true,
    }
}

/// Checks `value` against `schema`: types, required properties, enums, nested objects and
/// arrays, `oneOf` alternatives. Returns what is wrong, with its JSON path.
fn violations(doc: &Value, schema: &Value, value: &Value, at: &str) -> Vec<String> {
    let schema = resolve(doc, schema);
    let mut wrong = Vec::new();
    if let Some(alternatives) = schema
        .get("oneOf")
        .or_else(|| schema.get("anyOf"))
        .and_then(Value::as_array)
    {
        if !alternatives
            .iter()
            .any(|alt| violations(doc, alt, value, at).is_empty())
        {
            wrong.push(format!("{at}: {value} matches no alternative"));
        }
        return wrong;
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(kind) => vec![kind.as_str()],
        Value::Array(kinds) => kinds.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    if !types.is_empty() && !types.iter().any(|kind| type_matches(kind, value)) {
        wrong.push(format!("{at}: {value} is not {types:?}"));
        return wrong;
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        wrong.push(format!("{at}: {value} is not one of {allowed:?}"));
    }
    if let Value::Object(fields) = value {
        for name in schema["required"].as_array().into_iter().flatten() {
            let name = name.as_str().unwrap();
            if !fields.contains_key(name) {
                wrong.push(format!("{at}: required property {name} is missing"));
            }
        }
        if let Some(properties) = schema["properties"].as_object() {
            for (name, property) in properties {
                if let Some(item) = fields.get(name) {
                    wrong.extend(violations(doc, property, item, &format!("{at}.{name}")));
                }
            }
        }
    }
    if let (Value::Array(items), Some(item_schema)) = (value, schema.get("items")) {
        for (i, item) in items.iter().enumerate() {
            wrong.extend(violations(doc, item_schema, item, &format!("{at}[{i}]")));
        }
    }
    wrong
}

/// The schema `doc` declares for `status` answers of `method path`.
fn declared<'a>(doc: &'a Value, path: &str, method: &str, status: u16) -> &'a Value {
    let response = &doc["paths"][path][method]["responses"][status.to_string()];
    assert!(
        !response.is_null(),
        "{method} {path} does not declare {status}"
    );
    &response["content"]["application/json"]["schema"]
}

/// Asserts a live answer matches what the document declares for it.
fn conforms(doc: &Value, path: &str, method: &str, status: u16, body: &Value) {
    let schema = declared(doc, path, method, status);
    assert!(
        !schema.is_null(),
        "{method} {path} {status} declares no JSON body"
    );
    let wrong = violations(doc, schema, body, "$");
    assert!(
        wrong.is_empty(),
        "{method} {path} {status}: {wrong:#?}\nbody: {body}"
    );
}

#[tokio::test]
async fn the_document_describes_every_native_and_admin_operation() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["title"], "otpd");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert!(doc["info"]["description"].as_str().unwrap().contains(
        "https://github.com/twilio/twilio-oai/blob/main/spec/json/twilio_verify_v2.json"
    ));
    for (path, method) in OPERATIONS {
        let operation = &doc["paths"][path][method];
        assert!(operation.is_object(), "{method} {path} is missing");
        assert!(
            operation["summary"].as_str().is_some_and(|s| !s.is_empty()),
            "{method} {path} has no summary"
        );
        let statuses: Vec<&String> = operation["responses"].as_object().unwrap().keys().collect();
        assert!(
            statuses.iter().any(|s| s.starts_with('2')),
            "{method} {path}: {statuses:?}"
        );
        assert!(
            statuses.iter().any(|s| s.starts_with('4')),
            "{method} {path} declares no 4xx: {statuses:?}"
        );
        assert!(
            operation["security"]
                .as_array()
                .is_some_and(|s| !s.is_empty()),
            "{method} {path} declares no security"
        );
        for requirement in operation["security"].as_array().unwrap() {
            for scheme in requirement.as_object().unwrap().keys() {
                assert!(
                    doc["components"]["securitySchemes"][scheme].is_object(),
                    "{method} {path}: security scheme {scheme} does not exist"
                );
            }
        }
        // Every path parameter in the template is declared.
        for segment in path.split('/').filter(|s| s.starts_with('{')) {
            let name = segment.trim_matches(['{', '}']);
            assert!(
                operation["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|p| p["name"] == name && p["in"] == "path"),
                "{method} {path}: path parameter {name} is not declared"
            );
        }
    }
    // Native operations accept a bearer token or an API key; admin ones HTTP Basic.
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearerToken"]["scheme"], "bearer");
    assert_eq!(schemes["apiKey"]["name"], "X-API-KEY");
    assert_eq!(schemes["accountBasic"]["scheme"], "basic");
    assert_eq!(
        doc["paths"]["/otp"]["post"]["security"],
        json!([{"bearerToken": []}, {"apiKey": []}])
    );
    assert_eq!(
        doc["paths"]["/admin/v1/report"]["get"]["security"],
        json!([{"accountBasic": []}])
    );
    // Request bodies are described.
    let new_otp = resolve(
        &doc,
        &doc["paths"]["/otp"]["post"]["requestBody"]["content"]["application/json"]["schema"],
    );
    assert_eq!(new_otp["required"], json!(["phoneNumber"]));
    for field in [
        "countryIso",
        "from",
        "template",
        "ttl",
        "maxAttempts",
        "pinType",
        "pinLength",
        "trackId",
        "otpCallbackUrl",
        "channel",
        "deviceIp",
        "locale",
    ] {
        assert!(new_otp["properties"][field].is_object(), "{field}");
    }
    // Every reference points at a schema that exists.
    let mut targets = Vec::new();
    refs(&doc, &mut targets);
    assert!(!targets.is_empty());
    for target in &targets {
        let name = target
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected reference {target}"));
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "{target} does not exist"
        );
    }
}

#[tokio::test]
async fn the_docs_page_is_self_contained() {
    let app = TestApp::spawn().await;
    let response = app.client.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let page = response.text().await.unwrap().to_lowercase();
    assert!(page.contains("openapi.json"));
    for tag in ["<script", "<link", "<img", "@import", "url("] {
        for (at, _) in page.match_indices(tag) {
            let end = page[at..].find('>').map_or(page.len(), |e| at + e);
            let element = &page[at..end];
            assert!(
                !element.contains("http://") && !element.contains("https://"),
                "external asset: {element}"
            );
        }
    }
    assert!(
        !page.contains("src=\"http") && !page.contains("href=\"http"),
        "external asset"
    );
}

#[tokio::test]
async fn live_answers_match_the_declared_schemas() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    // The checker itself finds what is wrong.
    let otp_object = declared(&doc, "/otp", "post", 201);
    assert!(!violations(&doc, otp_object, &json!({}), "$").is_empty());
    let error = declared(&doc, "/otp", "post", 400);
    let bad = json!({"error": {"type": "x", "message": "m", "uri": "u", "code": "2001"}});
    assert_eq!(
        violations(&doc, error, &bad, "$").len(),
        1,
        "code is a string"
    );

    // The token endpoint.
    let response = app.token_for(&app.credentials, Some("otp")).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    conforms(&doc, "/oauth/token", "post", 200, &body);
    let token = body["access_token"].as_str().unwrap().to_string();
    let response = app
        .client
        .post(app.url("/oauth/token"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    conforms(
        &doc,
        "/oauth/token",
        "post",
        401,
        &response.json().await.unwrap(),
    );

    // A start: 201 with every property the OTP object lists (the extensions included).
    let (status, created) = app.create(&token, json!({"phoneNumber": FR})).await;
    assert_eq!(status, 201, "{created}");
    conforms(&doc, "/otp", "post", 201, &created);
    let otp_object = resolve(&doc, declared(&doc, "/otp", "post", 201));
    let properties = otp_object["properties"].as_object().unwrap();
    assert!(properties.len() >= 15);
    for name in properties.keys() {
        assert!(
            created.get(name).is_some(),
            "the 201 answer lacks {name}: {created}"
        );
    }
    let otp_id = created["otpId"].as_str().unwrap().to_string();
    assert!(!created["deliveries"].as_array().unwrap().is_empty());

    // Mistakes answer the declared error body.
    let (status, body) = app.create(&token, json!({})).await;
    assert_eq!(status, 400);
    conforms(&doc, "/otp", "post", 400, &body);
    let (status, body) = app
        .create(&token, json!({"phoneNumber": FR2, "ttl": 5}))
        .await;
    assert_eq!(status, 400);
    conforms(&doc, "/otp", "post", 400, &body);
    let (status, body) = app.create("not-a-token", json!({"phoneNumber": FR2})).await;
    assert_eq!(status, 401);
    conforms(&doc, "/otp", "post", 401, &body);

    // Read, check, cancel.
    let path = format!("/otp/{otp_id}");
    let (status, body) = app.call(Method::GET, &path, &token, None).await;
    assert_eq!(status, 200);
    conforms(&doc, "/otp/{otpId}", "get", 200, &body);
    let (status, body) = app
        .call(
            Method::GET,
            "/otp/00000000-0000-7000-8000-000000000000",
            &token,
            None,
        )
        .await;
    assert_eq!(status, 404);
    conforms(&doc, "/otp/{otpId}", "get", 404, &body);
    let code = app.last_code(FR).await;
    let wrong = if code.starts_with('0') { "1" } else { "0" }.repeat(code.len());
    let (status, body) = app.check(&token, &otp_id, &wrong).await;
    assert_eq!(status, 400);
    conforms(&doc, "/otp/{otpId}", "post", 400, &body);
    let (status, body) = app.check(&token, &otp_id, &code).await;
    assert_eq!(status, 200, "{body}");
    conforms(&doc, "/otp/{otpId}", "post", 200, &body);
    let (status, body) = app.call(Method::DELETE, &path, &token, None).await;
    assert_eq!(status, 403);
    conforms(&doc, "/otp/{otpId}", "delete", 403, &body);
    let (_, second) = app.create(&token, json!({"phoneNumber": FR2})).await;
    let second = format!("/otp/{}", second["otpId"].as_str().unwrap());
    let (status, body) = app.call(Method::DELETE, &second, &token, None).await;
    assert_eq!(status, 200);
    conforms(&doc, "/otp/{otpId}", "delete", 200, &body);

    // The admin API.
    let user = format!("AC{}", app.credentials.application.account_id.simple());
    let password = app.credentials.account_token.clone().unwrap();
    let sid = format!("VA{}", app.credentials.application.service_id.simple());
    let admin = |method: Method, path: String, body: Option<Value>| {
        let mut request = app
            .client
            .request(method, app.url(&path))
            .basic_auth(&user, Some(&password));
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            (
                status,
                serde_json::from_str::<Value>(&text).unwrap_or(Value::Null),
            )
        }
    };
    // One quarantine of the caller's service and one server-wide.
    let store = app.server.as_ref().unwrap().store.clone();
    let now = app.clock.now();
    for service in [Some(app.credentials.application.service_id), None] {
        let quarantine = otpd_core::store::Quarantine {
            prefix: "+44909".into(),
            service,
            reason: "test".into(),
            until: now.plus_seconds(60),
            created_at: now,
        };
        assert!(
            otpd_core::LimitStore::quarantine(&store, &quarantine)
                .await
                .unwrap()
        );
    }
    let (status, body) = admin(Method::GET, "/admin/v1/quarantines".into(), None).await;
    assert_eq!(status, 200);
    assert_eq!(body["quarantines"].as_array().unwrap().len(), 2, "{body}");
    conforms(&doc, "/admin/v1/quarantines", "get", 200, &body);
    let lift = "/admin/v1/quarantines/%2B44909";
    let (status, body) = admin(Method::DELETE, format!("{lift}?serviceSid=x"), None).await;
    assert_eq!(status, 400);
    conforms(&doc, "/admin/v1/quarantines/{prefix}", "delete", 400, &body);
    let (status, _) = admin(Method::DELETE, lift.into(), None).await;
    assert_eq!(status, 204);
    let (status, body) = admin(Method::DELETE, lift.into(), None).await;
    assert_eq!(status, 404, "the server-wide one is not the account's");
    conforms(&doc, "/admin/v1/quarantines/{prefix}", "delete", 404, &body);
    let (status, body) = admin(Method::GET, "/admin/v1/events".into(), None).await;
    assert_eq!(status, 200);
    assert!(!body["events"].as_array().unwrap().is_empty());
    conforms(&doc, "/admin/v1/events", "get", 200, &body);
    let (status, body) = admin(Method::GET, "/admin/v1/events?pageSize=0".into(), None).await;
    assert_eq!(status, 400);
    conforms(&doc, "/admin/v1/events", "get", 400, &body);
    let (status, body) = admin(Method::GET, "/admin/v1/report".into(), None).await;
    assert_eq!(status, 200);
    assert!(!body["groups"].as_array().unwrap().is_empty(), "{body}");
    conforms(&doc, "/admin/v1/report", "get", 200, &body);
    let protection = format!("/admin/v1/services/{sid}/protection");
    let (status, body) = admin(Method::GET, protection.clone(), None).await;
    assert_eq!(status, 200);
    conforms(
        &doc,
        "/admin/v1/services/{sid}/protection",
        "get",
        200,
        &body,
    );
    let (status, body) = admin(
        Method::PUT,
        protection.clone(),
        Some(json!({"dailyBudget": 10.5})),
    )
    .await;
    assert_eq!(status, 200);
    conforms(
        &doc,
        "/admin/v1/services/{sid}/protection",
        "put",
        200,
        &body,
    );
    let (status, body) = admin(Method::PUT, protection, Some(json!({"nonsense": 1}))).await;
    assert_eq!(status, 400);
    conforms(
        &doc,
        "/admin/v1/services/{sid}/protection",
        "put",
        400,
        &body,
    );
    let webhooks = format!("/admin/v1/services/{sid}/webhooks");
    let (status, body) = admin(
        Method::POST,
        webhooks.clone(),
        Some(json!({"url": "http://127.0.0.1:9/hook"})),
    )
    .await;
    assert_eq!(status, 201);
    conforms(
        &doc,
        "/admin/v1/services/{sid}/webhooks",
        "post",
        201,
        &body,
    );
    let webhook = body["id"].as_str().unwrap().to_string();
    let (status, body) = admin(Method::GET, webhooks.clone(), None).await;
    assert_eq!(status, 200);
    conforms(&doc, "/admin/v1/services/{sid}/webhooks", "get", 200, &body);
    let (status, body) = admin(
        Method::GET,
        format!("{webhooks}/{webhook}/deliveries"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    conforms(
        &doc,
        "/admin/v1/services/{sid}/webhooks/{id}/deliveries",
        "get",
        200,
        &body,
    );
    let (status, _) = admin(Method::DELETE, format!("{webhooks}/{webhook}"), None).await;
    assert_eq!(status, 204);
    assert!(
        doc["paths"]["/admin/v1/services/{sid}/webhooks/{id}"]["delete"]["responses"]["204"]
            .is_object()
    );
    let (status, body) = admin(Method::DELETE, format!("{webhooks}/{webhook}"), None).await;
    assert_eq!(status, 404);
    conforms(
        &doc,
        "/admin/v1/services/{sid}/webhooks/{id}",
        "delete",
        404,
        &body,
    );
    let response = app
        .client
        .get(app.url("/admin/v1/quarantines"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    conforms(
        &doc,
        "/admin/v1/quarantines",
        "get",
        401,
        &response.json().await.unwrap(),
    );

    // Credentials: the key list, a revocation of an unknown key, then (last: the password
    // changes) a rotation of the auth token.
    let auth = otpd::authenticator(&app.config, store, app.clock.clone()).unwrap();
    auth.create_api_key(app.credentials.application.account_id, "ci")
        .await
        .unwrap()
        .unwrap();
    let (status, body) = admin(Method::GET, "/admin/v1/keys".into(), None).await;
    assert_eq!(status, 200);
    assert_eq!(body["keys"].as_array().unwrap().len(), 1, "{body}");
    conforms(&doc, "/admin/v1/keys", "get", 200, &body);
    let unknown = format!("/admin/v1/keys/SK{}", uuid::Uuid::nil().simple());
    let (status, body) = admin(Method::DELETE, unknown, None).await;
    assert_eq!(status, 404);
    conforms(&doc, "/admin/v1/keys/{sid}", "delete", 404, &body);
    let (status, body) = admin(Method::POST, "/admin/v1/account/token".into(), None).await;
    assert_eq!(status, 201);
    conforms(&doc, "/admin/v1/account/token", "post", 201, &body);
    let (status, body) = admin(Method::POST, "/admin/v1/account/token".into(), None).await;
    assert_eq!(status, 401, "the old token is refused");
    conforms(&doc, "/admin/v1/account/token", "post", 401, &body);
}
