//! Behaviours of accounts, API keys, applications, tokens and services.

use otpd_core::auth::{AccessToken, ApiKeyRecord};
use otpd_core::store::ServiceRecord;
use otpd_core::{AccountId, ApiKeyId, ApplicationId, OtpSettings, ServiceId, Store, Timestamp};

use crate::support::*;

/// An account's auth token hash is replaced; its API keys are listed oldest first and
/// revoked only by their own account.
pub(crate) async fn auth_tokens_rotate_and_api_keys_revoke<S: Store>(store: S) {
    let mine = account(&store).await;
    let theirs = account(&store).await;
    assert!(store.rotate_auth_token(mine, [4; 32]).await.unwrap());
    assert_eq!(
        store.account(mine).await.unwrap().unwrap().auth_token_hash,
        [4; 32]
    );
    assert!(
        !store
            .rotate_auth_token(AccountId::generate(), [4; 32])
            .await
            .unwrap()
    );
    let key = |account: AccountId, name: &str, at: Timestamp| ApiKeyRecord {
        id: ApiKeyId::generate(),
        account_id: account,
        name: name.into(),
        secret_hash: unique_hash(),
        created_at: at,
    };
    let first = key(mine, "first", T0);
    let second = key(mine, "second", T0.plus_seconds(1));
    let other = key(theirs, "other", T0);
    for k in [&second, &first, &other] {
        store.create_api_key(k).await.unwrap();
    }
    assert_eq!(
        store.api_keys(mine).await.unwrap(),
        [first.clone(), second.clone()]
    );
    assert!(
        !store.revoke_api_key(mine, other.id).await.unwrap(),
        "another account's key"
    );
    assert_eq!(store.api_key(other.id).await.unwrap(), Some(other));
    assert!(store.revoke_api_key(mine, first.id).await.unwrap());
    assert!(!store.revoke_api_key(mine, first.id).await.unwrap());
    assert_eq!(store.api_key(first.id).await.unwrap(), None);
    assert_eq!(store.api_keys(mine).await.unwrap(), [second]);
}

/// Services are created, listed in pages per account, updated and deleted.
pub(crate) async fn services_are_managed_per_account<S: Store>(store: S) {
    let account_id = account(&store).await;
    let other = account(&store).await;
    let mut ids = Vec::new();
    for n in 0..5 {
        let record = ServiceRecord {
            id: ServiceId::generate(),
            account_id,
            name: format!("service {n}"),
            settings: OtpSettings::default(),
            created_at: T0,
            updated_at: T0,
        };
        store.create_service(&record).await.unwrap();
        ids.push(record.id);
    }
    let first = store.services(account_id, None, 2).await.unwrap();
    assert_eq!(first.iter().map(|s| s.id).collect::<Vec<_>>(), ids[..2]);
    let rest = store.services(account_id, Some(ids[1]), 10).await.unwrap();
    assert_eq!(rest.iter().map(|s| s.id).collect::<Vec<_>>(), ids[2..]);
    assert!(store.services(other, None, 10).await.unwrap().is_empty());

    let mut record = store.service(ids[0]).await.unwrap().unwrap();
    record.name = "renamed".into();
    record.settings.options.custom_code_enabled = true;
    record.updated_at = T0.plus_seconds(5);
    assert!(store.update_service(&record).await.unwrap());
    assert_eq!(store.service(ids[0]).await.unwrap(), Some(record));
    assert!(store.delete_service(ids[0]).await.unwrap());
    assert!(!store.delete_service(ids[0]).await.unwrap());
    assert_eq!(store.service(ids[0]).await.unwrap(), None);
    assert_eq!(store.services(account_id, None, 10).await.unwrap().len(), 4);
}

/// Applications, accounts, API keys and tokens are found by id or hash; rotation revokes.
pub(crate) async fn credentials_round_trip<S: Store>(store: S) {
    let service_id = service(&store).await;
    let apps = store.applications().await.unwrap();
    let app = apps
        .iter()
        .find(|a| a.service_id == service_id)
        .unwrap()
        .clone();
    assert_eq!(store.application(app.id).await.unwrap(), Some(app.clone()));
    assert_eq!(
        store
            .application_by_api_key(app.api_key_hash)
            .await
            .unwrap(),
        Some(app.clone())
    );
    assert_eq!(store.application_by_api_key([9; 32]).await.unwrap(), None);
    assert!(store.account(app.account_id).await.unwrap().is_some());
    assert_eq!(store.account(AccountId::generate()).await.unwrap(), None);
    let key = ApiKeyRecord {
        id: ApiKeyId::generate(),
        account_id: app.account_id,
        name: "ci".into(),
        secret_hash: [6; 32],
        created_at: T0,
    };
    store.create_api_key(&key).await.unwrap();
    assert_eq!(store.api_key(key.id).await.unwrap(), Some(key));
    assert_eq!(store.api_key(ApiKeyId::generate()).await.unwrap(), None);

    let token = AccessToken {
        token_hash: [7; 32],
        application_id: app.id,
        scope: "otp".into(),
        expires_at: T0.plus_seconds(60),
        revoked: false,
    };
    store.insert_token(&token).await.unwrap();
    assert_eq!(store.token([7; 32]).await.unwrap(), Some(token.clone()));
    assert!(
        store
            .rotate_application_secret(app.id, [3; 32], [4; 32])
            .await
            .unwrap()
    );
    assert!(store.token([7; 32]).await.unwrap().unwrap().revoked);
    assert_eq!(
        store
            .application(app.id)
            .await
            .unwrap()
            .unwrap()
            .secret_hash,
        [3; 32]
    );

    let second = AccessToken {
        token_hash: [8; 32],
        ..token
    };
    store.insert_token(&second).await.unwrap();
    assert!(
        !store
            .revoke_token([8; 32], ApplicationId::generate())
            .await
            .unwrap()
    );
    assert!(store.revoke_token([8; 32], app.id).await.unwrap());
    assert!(store.token([8; 32]).await.unwrap().unwrap().revoked);
}

/// Every account is listed, oldest first (whatever the order they were created in).
pub(crate) async fn accounts_are_listed_oldest_first<S: Store>(store: S) {
    use otpd_core::auth::AccountRecord;
    assert_eq!(store.accounts().await.unwrap(), []);
    let record = |name: &str, at: Timestamp| AccountRecord {
        id: AccountId::generate(),
        name: name.into(),
        auth_token_hash: unique_hash(),
        created_at: at,
    };
    let newest = record("newest", T0.plus_seconds(20));
    let oldest = record("oldest", T0);
    let middle = record("middle", T0.plus_seconds(10));
    for account in [&newest, &oldest, &middle] {
        store.create_account(account).await.unwrap();
    }
    assert_eq!(store.accounts().await.unwrap(), [oldest, middle, newest]);
}
