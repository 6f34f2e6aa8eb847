//! A service's OTP settings: the defaults every verification falls back on, each one a
//! checked type so that a value inside the core is always within its documented bounds.

use serde::{Deserialize, Serialize};

use crate::code::{BoundError, OtpCode, PinLength, PinType};
use crate::recipient::Recipient;

/// The placeholder a template must contain.
pub const PIN_PLACEHOLDER: &str = "{{pin}}";
/// An optional placeholder for the service's (or the request's) friendly name.
pub const NAME_PLACEHOLDER: &str = "{{name}}";
/// The same as [`NAME_PLACEHOLDER`], under the name the built-in texts use.
pub const SERVICE_PLACEHOLDER: &str = "{{service}}";
/// An optional placeholder for the code's lifetime in whole minutes (rounded up).
pub const TTL_MINUTES_PLACEHOLDER: &str = "{{ttl_minutes}}";
/// The sender id of a service nobody gave one: providers then use their own configured
/// sender (the console shows this name).
pub const DEFAULT_SENDER: &str = "otpd";

/// What `do_not_share_warning_enabled` appends.
pub const DO_NOT_SHARE_WARNING: &str =
    " Don't share this code with anyone; our employees will never ask for the code.";

/// Message text with a `{{pin}}` placeholder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Template(String);

/// Why a template was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// Empty text.
    #[error("the template is empty")]
    Empty,
    /// No `{{pin}}`, so the user would never see the code.
    #[error("the template does not contain {{{{pin}}}}")]
    MissingPlaceholder,
    /// Longer than [`TEMPLATE_MAX_CHARS`] or more than [`TEMPLATE_MAX_PARTS`] SMS parts with
    /// the longest code.
    #[error(
        "the template is too long (at most {TEMPLATE_MAX_CHARS} characters and {TEMPLATE_MAX_PARTS} SMS parts)"
    )]
    TooLong,
}

/// The longest template accepted, in characters.
pub const TEMPLATE_MAX_CHARS: usize = 640;

/// The most SMS parts a message from a template may take (with a 10-character code): each
/// part is billed, so a template cannot make one start cost like a hundred.
pub const TEMPLATE_MAX_PARTS: u32 = 4;

impl Template {
    /// A checked template.
    pub fn new(text: impl Into<String>) -> Result<Template, TemplateError> {
        let text = text.into();
        if text.trim().is_empty() {
            Err(TemplateError::Empty)
        } else if !text.contains(PIN_PLACEHOLDER) {
            Err(TemplateError::MissingPlaceholder)
        } else if text.chars().count() > TEMPLATE_MAX_CHARS
            || crate::sms::segment_count(&text.replace(PIN_PLACEHOLDER, "0000000000"))
                > TEMPLATE_MAX_PARTS
        {
            Err(TemplateError::TooLong)
        } else {
            Ok(Template(text))
        }
    }

    /// The text with its placeholder.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The message for one code.
    pub fn render(&self, code: &OtpCode) -> String {
        self.0.replace(PIN_PLACEHOLDER, code.expose())
    }

    /// The template with `{{name}}` / `{{service}}` and `{{ttl_minutes}}` filled in (the
    /// rest of the text kept as is).
    pub fn with_name(&self, name: &str) -> Template {
        Template(
            self.0
                .replace(NAME_PLACEHOLDER, name)
                .replace(SERVICE_PLACEHOLDER, name),
        )
    }

    /// The template with `{{ttl_minutes}}` filled in.
    pub fn with_ttl(&self, ttl: Ttl) -> Template {
        let minutes = (ttl.get() as u64).div_ceil(60);
        Template(
            self.0
                .replace(TTL_MINUTES_PLACEHOLDER, &minutes.to_string()),
        )
    }

    /// The template with `text` appended (a warning, an app hash); keeps the placeholder.
    pub fn with_suffix(&self, text: &str) -> Template {
        Template(format!("{}{text}", self.0))
    }

    /// The template with `text` prepended (the SMS Retriever `<#> ` marker).
    pub fn with_prefix(&self, text: &str) -> Template {
        Template(format!("{text}{}", self.0))
    }
}

impl TryFrom<String> for Template {
    type Error = TemplateError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Template::new(value)
    }
}

impl From<Template> for String {
    fn from(value: Template) -> String {
        value.0
    }
}

/// A template used for numbers that start with a prefix (per-language templates).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrefixTemplate {
    /// E.164 prefix such as `+33`; the longest matching prefix wins.
    pub prefix: String,
    /// The template for those numbers.
    pub template: Template,
}

/// The sender id (originator) shown on the handset: an alphanumeric name of 3–11 letters,
/// digits and spaces (with at least one letter), a number in E.164 (`+` and up to 15 digits)
/// or a short code (3–15 digits). Nothing else reaches a provider: no control characters, no
/// bidirectional overrides, no blank name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub struct SenderId(String);

impl SenderId {
    /// A checked sender id.
    pub fn new(text: impl Into<String>) -> Result<SenderId, BoundError> {
        let text = text.into();
        let len = text.chars().count();
        if len < 3 {
            return Err(BoundError::TooSmall);
        }
        let digits = text.strip_prefix('+').unwrap_or(&text);
        let number = !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit());
        let name = text.chars().all(|c| c.is_ascii_alphanumeric() || c == ' ')
            && text.chars().any(|c| c.is_ascii_alphabetic())
            && !text.starts_with(' ')
            && !text.ends_with(' ');
        if number && digits.len() <= 15 || name && len <= 11 {
            Ok(SenderId(text))
        } else if (number || name) && len > 11 {
            Err(BoundError::TooLarge)
        } else {
            Err(BoundError::Invalid)
        }
    }

    /// A sender id read back from storage, kept as written (it was checked when it was set,
    /// possibly under older rules a reader must not fail on).
    pub fn from_stored(text: String) -> SenderId {
        SenderId(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<String> for SenderId {
    fn from(value: String) -> SenderId {
        SenderId::from_stored(value)
    }
}

impl From<SenderId> for String {
    fn from(value: SenderId) -> String {
        value.0
    }
}

macro_rules! bounded_int {
    ($(#[$doc:meta])* $name:ident, $min:expr, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(try_from = "i64", into = "i64")]
        pub struct $name(u32);

        impl $name {
            /// Smallest allowed value.
            pub const MIN: i64 = $min;
            /// Largest allowed value.
            pub const MAX: i64 = $max;

            /// A checked value.
            pub fn new(value: i64) -> Result<Self, BoundError> {
                if value < Self::MIN {
                    Err(BoundError::TooSmall)
                } else if value > Self::MAX {
                    Err(BoundError::TooLarge)
                } else {
                    Ok($name(value as u32))
                }
            }

            pub fn get(self) -> u32 {
                self.0
            }
        }

        impl TryFrom<i64> for $name {
            type Error = BoundError;
            fn try_from(value: i64) -> Result<Self, Self::Error> {
                $name::new(value)
            }
        }

        impl From<$name> for i64 {
            fn from(value: $name) -> i64 {
                value.0 as i64
            }
        }
    };
}

bounded_int!(
    /// How long a code stays valid, 60–1800 seconds.
    Ttl, 60, 1800
);
bounded_int!(
    /// How many wrong codes a verification tolerates, 1–10.
    MaxAttempts, 1, 10
);

/// Checks a status-callback URL: absolute http(s) with a host.
pub fn parse_callback_url(text: &str) -> Option<String> {
    let url = url::Url::parse(text.trim()).ok()?;
    let web = matches!(url.scheme(), "http" | "https");
    (web && url.host().is_some()).then(|| url.to_string())
}

/// One service's OTP defaults; a request may override most of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OtpSettings {
    /// The message text.
    pub template: Template,
    /// Templates chosen by the recipient number's prefix.
    #[serde(default)]
    pub prefix_templates: Vec<PrefixTemplate>,
    pub from: SenderId,
    /// Code alphabet.
    pub pin_type: PinType,
    /// Code length.
    pub pin_length: PinLength,
    /// Code lifetime.
    pub ttl: Ttl,
    /// Wrong codes tolerated before the verification fails.
    pub max_attempts: MaxAttempts,
    /// Where status changes are posted, if anywhere.
    #[serde(default)]
    pub callback_url: Option<String>,
    /// Feature switches and provider references (the Twilio Service parameters).
    #[serde(default)]
    pub options: ServiceOptions,
    /// Templates per language (`fr`, `pt-BR`), used when a start names a locale; a locale
    /// without one here uses otpd's built-in text for it.
    #[serde(default)]
    pub locale_templates: std::collections::BTreeMap<String, Template>,
    /// Sender ids per destination country (ISO code), overriding `from`.
    #[serde(default)]
    pub country_senders: std::collections::BTreeMap<String, SenderId>,
    /// Channels to try in turn when a delivery fails, is reported undelivered, or has no
    /// delivery receipt in time (e.g. `whatsapp → sms → call`). Same code throughout.
    #[serde(default)]
    pub fallback_channels: Vec<crate::channel::Channel>,
    /// Seconds between two sends to one destination; an earlier resend is refused with
    /// `Retry-After`. 30 for services made through the native API, 0 through Twilio's.
    #[serde(default)]
    pub resend_cooldown_seconds: u32,
    /// Geo permissions: when not empty, only these destination countries (ISO codes).
    #[serde(default)]
    pub allowed_countries: Vec<String>,
    /// Destination countries that never receive codes.
    #[serde(default)]
    pub blocked_countries: Vec<String>,
    /// Numbers or prefixes (`+4490`) that never receive codes.
    #[serde(default)]
    pub blocked_prefixes: Vec<String>,
    /// Numbers that bypass the fraud checks (rate limits, lockout, geo and number-type
    /// rules), e.g. test devices and app-store reviewers (Twilio's Safe List).
    #[serde(default)]
    pub safe_list: Vec<String>,
    /// Send to premium-rate and shared-cost numbers (off: SMS pumping targets them).
    #[serde(default)]
    pub allow_costly_numbers: bool,
    /// Twilio Programmable Rate Limits of this service, with their buckets.
    #[serde(default)]
    pub rate_limits: Vec<crate::abuse::ProgrammableRateLimit>,
    /// The most this service may spend per UTC day, in the units of the price table;
    /// starts that would pass it are refused.
    #[serde(default)]
    pub daily_budget: Option<f64>,
    /// This service's own provider routes, overriding the server's `[routes]`: keys are a
    /// channel (`sms`) or a channel and destination country (`sms:GB`), values provider
    /// names in the order they are tried.
    #[serde(default)]
    pub provider_routes: std::collections::BTreeMap<String, Vec<String>>,
    /// The default language of the service's messages (voice, WhatsApp, email subjects).
    #[serde(default)]
    pub locale: Option<String>,
    /// The web origin host (`acme.example`) whose origin-bound line (`@acme.example #123456`)
    /// ends each SMS, for Safari autofill and WebOTP.
    #[serde(default)]
    pub web_origin: Option<String>,
}

/// A service's switches beyond the code itself. Each is stored whether or not otpd acts on
/// it yet, so a Twilio user's configuration round-trips; which ones take effect is
/// documented in docs/api-twilio.md.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ServiceOptions {
    /// Look the number up before sending (number lookup comes with abuse protection).
    pub lookup_enabled: bool,
    /// Refuse SMS to landlines (needs lookup).
    pub skip_sms_to_landlines: bool,
    /// Voice: ask for a key press before reading the code.
    pub dtmf_input_required: bool,
    /// Voice: text-to-speech voice name.
    pub tts_name: Option<String>,
    /// Accept `Amount`/`Payee`, which a check must then repeat.
    pub psd2_enabled: bool,
    /// Append "Don't share this code with anyone" to messages.
    pub do_not_share_warning_enabled: bool,
    /// Allow callers to supply the code.
    pub custom_code_enabled: bool,
    /// Default message template reference (`HJ…`).
    pub default_template_sid: Option<String>,
    /// Push factor: include the date (deprecated by Twilio).
    pub push_include_date: bool,
    /// Push factor: APNs credential (`CR…`).
    pub push_apn_credential_sid: Option<String>,
    /// Push factor: FCM credential (`CR…`).
    pub push_fcm_credential_sid: Option<String>,
    /// TOTP issuer.
    pub totp_issuer: Option<String>,
    /// TOTP time step, 20–60 s.
    pub totp_time_step: Option<u32>,
    /// TOTP code length, 3–8.
    pub totp_code_length: Option<u32>,
    /// TOTP skew, 0–2 steps.
    pub totp_skew: Option<u32>,
    /// WhatsApp: messaging service (`MG…`).
    pub whatsapp_msg_service_sid: Option<String>,
    /// WhatsApp: sender.
    pub whatsapp_from: Option<String>,
    /// Passkeys relying party id.
    pub passkeys_relying_party_id: Option<String>,
    /// Passkeys relying party name.
    pub passkeys_relying_party_name: Option<String>,
    /// Passkeys relying party origins.
    pub passkeys_relying_party_origins: Option<Vec<String>>,
    /// Passkeys authenticator attachment.
    pub passkeys_authenticator_attachment: Option<String>,
    /// Passkeys discoverable credentials.
    pub passkeys_discoverable_credentials: Option<String>,
    /// Passkeys user verification.
    pub passkeys_user_verification: Option<String>,
    /// Publish verification events (events come with their own issue).
    pub verify_event_subscription_enabled: bool,
    /// otpd extension: a verification accepts exactly one check, right or wrong.
    pub do_force_check_once: bool,
}

impl Default for OtpSettings {
    /// numbers, 6 characters, 600 s, 5 attempts.
    fn default() -> Self {
        OtpSettings {
            template: Template("Your verification code is {{pin}}".into()),
            prefix_templates: Vec::new(),
            from: SenderId(DEFAULT_SENDER.into()),
            pin_type: PinType::Numbers,
            pin_length: PinLength::new(6).expect("6 is within bounds"),
            ttl: Ttl(600),
            max_attempts: MaxAttempts(5),
            callback_url: None,
            options: ServiceOptions::default(),
            locale_templates: Default::default(),
            country_senders: Default::default(),
            fallback_channels: Vec::new(),
            resend_cooldown_seconds: 0,
            provider_routes: Default::default(),
            allowed_countries: Vec::new(),
            blocked_countries: Vec::new(),
            blocked_prefixes: Vec::new(),
            safe_list: Vec::new(),
            allow_costly_numbers: false,
            daily_budget: None,
            rate_limits: Vec::new(),
            locale: None,
            web_origin: None,
        }
    }
}

impl OtpSettings {
    /// The template for `to`: the longest matching prefix template, else the general one.
    pub fn template_for(&self, to: &Recipient) -> &Template {
        self.prefix_templates
            .iter()
            .filter(|t| to.as_str().starts_with(&t.prefix))
            .max_by_key(|t| t.prefix.len())
            .map(|t| &t.template)
            .unwrap_or(&self.template)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sender_ids_follow_provider_rules() {
        for ok in [
            "Acme",
            "Acme Shop",
            "A1B2C3D4E5F",
            "+15017122661",
            "12345",
            "otpd",
        ] {
            assert!(SenderId::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "Acme\r\nX",
            "Ac\0me",
            "\u{202E}emcA",
            "     ",
            " Acme",
            "Acme ",
            "Acme-Shop",
            "TwelveChars1",
            "+",
            "+12345678901234567",
            "ab",
            "Ünïcode",
        ] {
            assert!(SenderId::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn templates_are_bounded_in_characters_and_parts() {
        assert!(Template::new(format!("{} {{{{pin}}}}", "x".repeat(500))).is_ok());
        assert_eq!(
            Template::new(format!("{} {{{{pin}}}}", "x".repeat(60_000))),
            Err(TemplateError::TooLong)
        );
        // Few characters but many UCS-2 parts.
        assert_eq!(
            Template::new(format!("{} {{{{pin}}}}", "é€😀".repeat(100))),
            Err(TemplateError::TooLong)
        );
    }

    use super::*;

    #[test]
    fn templates_need_the_placeholder() {
        assert_eq!(Template::new(""), Err(TemplateError::Empty));
        assert_eq!(
            Template::new("code"),
            Err(TemplateError::MissingPlaceholder)
        );
        let t = Template::new("Code: {{pin}}").unwrap();
        assert_eq!(t.render(&OtpCode::from_user_input("1234")), "Code: 1234");
    }

    #[test]
    fn longest_prefix_template_wins() {
        let settings = OtpSettings {
            prefix_templates: vec![
                PrefixTemplate {
                    prefix: "+3".into(),
                    template: Template::new("3 {{pin}}").unwrap(),
                },
                PrefixTemplate {
                    prefix: "+33".into(),
                    template: Template::new("Votre code {{pin}}").unwrap(),
                },
            ],
            ..OtpSettings::default()
        };
        let (fr, _) = Recipient::parse("+33612345678", None).unwrap();
        let (gb, _) = Recipient::parse("+447400123456", None).unwrap();
        assert_eq!(settings.template_for(&fr).as_str(), "Votre code {{pin}}");
        assert_eq!(
            settings.template_for(&gb).as_str(),
            settings.template.as_str()
        );
    }

    #[test]
    fn bounds_are_enforced() {
        assert!(Ttl::new(59).is_err() && Ttl::new(1801).is_err() && Ttl::new(60).is_ok());
        assert!(MaxAttempts::new(0).is_err() && MaxAttempts::new(11).is_err());
        assert!(SenderId::new("ab").is_err() && SenderId::new("a".repeat(16)).is_err());
        assert!(SenderId::new("InfoText").is_ok());
    }

    #[test]
    fn callback_urls_must_be_absolute_http() {
        assert!(parse_callback_url("https://example.com/hook").is_some());
        assert!(parse_callback_url("ftp://example.com").is_none());
        assert!(parse_callback_url("not a url").is_none());
    }
}

/// The rules a service's protection settings are checked by, wherever they are changed (the
/// admin API, the console): each answers the normalised value or why it is refused.
pub mod protection_rules {
    use crate::phone::{CountryIso, E164Phone};

    /// ISO 3166-1 alpha-2 codes, upper-cased.
    pub fn countries(list: &[String]) -> Result<Vec<String>, String> {
        list.iter()
            .map(|c| {
                CountryIso::parse(c)
                    .map(|iso| iso.as_str().to_string())
                    .map_err(|_| format!("'{c}' is not an ISO 3166-1 alpha-2 country"))
            })
            .collect()
    }

    /// Prefixes: `+` followed by digits.
    pub fn prefixes(list: &[String]) -> Result<Vec<String>, String> {
        match list.iter().find(|p| {
            p.len() < 2 || !p.starts_with('+') || !p[1..].chars().all(|c| c.is_ascii_digit())
        }) {
            Some(bad) => Err(format!("'{bad}' is not a + followed by digits")),
            None => Ok(list.to_vec()),
        }
    }

    /// E.164 numbers, normalised.
    pub fn numbers(list: &[String]) -> Result<Vec<String>, String> {
        list.iter()
            .map(|n| {
                E164Phone::parse(n, None)
                    .map(|(phone, _)| phone.as_str().to_string())
                    .map_err(|_| format!("'{n}' is not a valid E.164 number"))
            })
            .collect()
    }

    /// A daily budget: a finite number, zero or more.
    pub fn budget(value: f64) -> Result<f64, String> {
        if value.is_finite() && value >= 0.0 {
            Ok(value)
        } else {
            Err("expected a non-negative number".to_string())
        }
    }
}

/// The rules a service's message and routing settings are checked by, wherever they are
/// changed (`otpd app create`, the console): each answers the normalised value or why it is
/// refused.
pub mod message_rules {
    use super::Template;
    use crate::phone::CountryIso;
    use crate::verification::Channel;

    /// A provider route: `key` is a channel (`sms`) or a channel and destination country
    /// (`sms:GB`), `names` the providers in the order they are tried (`twilio, vonage`).
    pub fn route(key: &str, names: &str) -> Result<(String, Vec<String>), String> {
        let key = key.trim();
        let (channel, country) = match key.split_once(':') {
            Some((channel, country)) => (channel, Some(country)),
            None => (key, None),
        };
        let channel = Channel::parse(channel.trim())
            .ok_or_else(|| format!("'{channel}' is not sms, call, email or whatsapp"))?;
        let key = match country {
            Some(country) => {
                let iso = CountryIso::parse(country.trim()).map_err(|_| {
                    format!("'{country}' is not an ISO 3166-1 alpha-2 country such as GB")
                })?;
                format!("{}:{}", channel.as_str(), iso.as_str())
            }
            None => channel.as_str().to_string(),
        };
        let names: Vec<String> = names
            .split([',', ' '])
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(str::to_string)
            .collect();
        if names.is_empty() {
            return Err(format!("{key}: name at least one provider"));
        }
        if let Some(bad) = names.iter().find(|name| {
            !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        }) {
            return Err(format!("'{bad}' is not a provider name"));
        }
        Ok((key, names))
    }

    /// A template for one language: `locale` a tag such as `fr` or `pt-BR` (as a start's
    /// `locale` names it), `text` a template with `{{pin}}`.
    pub fn locale_template(locale: &str, text: &str) -> Result<(String, Template), String> {
        let locale = locale.trim();
        if !crate::messages::is_language_tag(locale) {
            return Err(format!(
                "'{locale}' is not a language tag such as fr or pt-BR"
            ));
        }
        let template = Template::new(text.trim()).map_err(|error| format!("{locale}: {error}"))?;
        Ok((locale.to_string(), template))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn routes_name_a_channel_an_optional_country_and_providers() {
            assert_eq!(
                route(" sms:gb ", "twilio, vonage").unwrap(),
                ("sms:GB".to_string(), vec!["twilio".into(), "vonage".into()])
            );
            assert_eq!(route("whatsapp", "meta").unwrap().0, "whatsapp");
            assert!(route("fax", "twilio").unwrap_err().contains("'fax'"));
            assert!(
                route("sms:Narnia", "twilio")
                    .unwrap_err()
                    .contains("'Narnia'")
            );
            assert!(
                route("sms", " , ")
                    .unwrap_err()
                    .contains("at least one provider")
            );
            assert!(route("sms", "twi;lio").unwrap_err().contains("'twi;lio'"));
        }

        #[test]
        fn locale_templates_need_a_language_tag_and_the_pin() {
            let (locale, template) = locale_template("pt-BR", "Código: {{pin}}").unwrap();
            assert_eq!(
                (locale.as_str(), template.as_str()),
                ("pt-BR", "Código: {{pin}}")
            );
            assert!(
                locale_template("french", "{{pin}}")
                    .unwrap_err()
                    .contains("'french'")
            );
            assert!(
                locale_template("fr", "Votre code")
                    .unwrap_err()
                    .starts_with("fr: ")
            );
        }
    }
}
