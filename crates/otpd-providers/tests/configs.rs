//! Every adapter's configuration reads from the operator's file with only its required
//! fields, and refuses unknown ones (a typo must not silently drop a setting).

use otpd_providers::{
    infobip::InfobipConfig, messagebird::MessageBirdConfig, plivo::PlivoConfig,
    twilio::TwilioConfig, vonage::SignatureMethod, vonage::VonageConfig,
};
use serde_json::json;

#[test]
fn minimal_configs_deserialize() {
    let twilio: TwilioConfig =
        serde_json::from_value(json!({"account_sid": "AC1", "auth_token": "t"})).unwrap();
    assert!(twilio.base_url.is_none() && twilio.from.is_none());
    let vonage: VonageConfig =
        serde_json::from_value(json!({"api_key": "k", "api_secret": "s"})).unwrap();
    assert_eq!(vonage.signature_method, SignatureMethod::Md5hash);
    let vonage: VonageConfig = serde_json::from_value(
        json!({"api_key": "k", "api_secret": "s", "signature_secret": "x", "signature_method": "sha512"}),
    )
    .unwrap();
    assert_eq!(vonage.signature_method, SignatureMethod::Sha512);
    let messagebird: MessageBirdConfig =
        serde_json::from_value(json!({"access_key": "k"})).unwrap();
    assert!(messagebird.signing_key.is_none());
    let plivo: PlivoConfig =
        serde_json::from_value(json!({"auth_id": "MA1", "auth_token": "t"})).unwrap();
    assert!(plivo.src.is_none());
    let infobip: InfobipConfig = serde_json::from_value(json!({"api_key": "k"})).unwrap();
    assert!(infobip.receipt_token.is_none());
}

#[test]
fn unknown_fields_are_refused() {
    assert!(
        serde_json::from_value::<TwilioConfig>(
            json!({"account_sid": "AC1", "auth_token": "t", "form": "+1"})
        )
        .is_err()
    );
    assert!(
        serde_json::from_value::<VonageConfig>(
            json!({"api_key": "k", "api_secret": "s", "secret": "x"})
        )
        .is_err()
    );
    assert!(
        serde_json::from_value::<MessageBirdConfig>(json!({"access_key": "k", "key": "x"}))
            .is_err()
    );
    assert!(
        serde_json::from_value::<PlivoConfig>(
            json!({"auth_id": "MA1", "auth_token": "t", "from": "x"})
        )
        .is_err()
    );
    assert!(
        serde_json::from_value::<InfobipConfig>(json!({"api_key": "k", "token": "x"})).is_err()
    );
}
