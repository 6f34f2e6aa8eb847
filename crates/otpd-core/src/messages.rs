//! Built-in message texts per language, and the lines phones read codes from (Android SMS
//! Retriever, origin-bound codes for Safari and Chrome's WebOTP).

/// The languages otpd ships a default text for.
pub const BUILTIN_LOCALES: &[&str] = &[
    "en", "es", "fr", "de", "pt", "it", "ar", "hi", "zh", "ja", "ru",
];

/// Whether `tag` is a language tag as a start's `locale` names one: a 2–3 letter language
/// and at most one region or script (`fr`, `pt-BR`, `zh_Hant`).
pub fn is_language_tag(tag: &str) -> bool {
    let mut parts = tag.split(['-', '_']);
    let language = parts.next().unwrap_or_default();
    let rest: Vec<&str> = parts.collect();
    (2..=3).contains(&language.len())
        && language.chars().all(|c| c.is_ascii_alphabetic())
        && rest.len() <= 1
        && rest
            .iter()
            .all(|p| (2..=4).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()))
}

/// The built-in text for `locale` (`pt-BR` uses `pt`), with `{{pin}}`, `{{service}}` and
/// `{{ttl_minutes}}`. `None` for a language otpd has no text for.
pub fn builtin_template(locale: &str) -> Option<&'static str> {
    let language = locale
        .split(['-', '_'])
        .next()
        .unwrap_or(locale)
        .to_ascii_lowercase();
    Some(match language.as_str() {
        "en" => {
            "{{pin}} is your {{service}} verification code. It expires in {{ttl_minutes}} minutes."
        }
        "es" => {
            "{{pin}} es tu código de verificación de {{service}}. Caduca en {{ttl_minutes}} minutos."
        }
        "fr" => {
            "{{pin}} est votre code de vérification {{service}}. Il expire dans {{ttl_minutes}} minutes."
        }
        "de" => {
            "{{pin}} ist Ihr Bestätigungscode für {{service}}. Er läuft in {{ttl_minutes}} Minuten ab."
        }
        "pt" => {
            "{{pin}} é o seu código de verificação {{service}}. Expira em {{ttl_minutes}} minutos."
        }
        "it" => {
            "{{pin}} è il tuo codice di verifica {{service}}. Scade tra {{ttl_minutes}} minuti."
        }
        "ar" => {
            "{{pin}} هو رمز التحقق الخاص بك في {{service}}. تنتهي صلاحيته خلال {{ttl_minutes}} دقيقة."
        }
        "hi" => "{{pin}} आपका {{service}} सत्यापन कोड है। यह {{ttl_minutes}} मिनट में समाप्त हो जाएगा।",
        "zh" => "{{pin}} 是您的 {{service}} 验证码，{{ttl_minutes}} 分钟内有效。",
        "ja" => "{{pin}} は {{service}} の認証コードです。有効期限は {{ttl_minutes}} 分です。",
        "ru" => "{{pin}} — ваш код подтверждения {{service}}. Он действителен {{ttl_minutes}} мин.",
        _ => return None,
    })
}

/// The origin-bound last line (`@example.com #123456`) that Safari and Chrome's WebOTP read
/// a code from, as a template suffix: it must be the message's last line.
pub fn origin_bound_suffix(origin_host: &str) -> String {
    format!("\n\n@{origin_host} #{{{{pin}}}}")
}

/// The e-mail subject in `locale` (English when otpd has no translation).
pub fn email_subject(locale: &str, service: &str) -> String {
    let language = locale.split(['-', '_']).next().unwrap_or(locale);
    match language {
        "es" => format!("Tu código de verificación de {service}"),
        "fr" => format!("Votre code de vérification {service}"),
        "de" => format!("Ihr Bestätigungscode für {service}"),
        "pt" => format!("O seu código de verificação {service}"),
        "it" => format!("Il tuo codice di verifica {service}"),
        "ar" => format!("رمز التحقق الخاص بك في {service}"),
        "hi" => format!("आपका {service} सत्यापन कोड"),
        "zh" => format!("您的 {service} 验证码"),
        "ja" => format!("{service} の認証コード"),
        "ru" => format!("Ваш код подтверждения {service}"),
        _ => format!("Your {service} verification code"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Template;

    #[test]
    fn every_builtin_text_is_a_valid_template_with_all_placeholders() {
        for locale in BUILTIN_LOCALES {
            let text = builtin_template(locale).unwrap();
            assert!(Template::new(text).is_ok(), "{locale}");
            for placeholder in ["{{pin}}", "{{service}}", "{{ttl_minutes}}"] {
                assert!(text.contains(placeholder), "{locale} lacks {placeholder}");
            }
        }
    }

    #[test]
    fn regional_locales_use_their_language() {
        assert_eq!(builtin_template("pt-BR"), builtin_template("pt"));
        assert_eq!(builtin_template("ZH_hans"), builtin_template("zh"));
        assert_eq!(builtin_template("xx"), None);
        assert_eq!(
            email_subject("fr-CA", "Acme"),
            "Votre code de vérification Acme"
        );
    }

    #[test]
    fn the_origin_line_is_last_and_names_the_code() {
        let template = Template::new("Code {{pin}}")
            .unwrap()
            .with_suffix(&origin_bound_suffix("acme.example"));
        let code = crate::OtpCode::from_user_input("482910");
        let message = template.render(&code);
        assert_eq!(message.lines().last(), Some("@acme.example #482910"));
    }
}
