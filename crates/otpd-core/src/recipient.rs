//! Who a code goes to: a phone number or an email address, each checked once at the edge.

use crate::phone::{CountryIso, E164Phone, mask_phone};

/// A syntactically valid email address (lower-cased domain), at most 254 characters.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Accepts `local@domain.tld` with no spaces, one `@`, a dotted domain.
    pub fn parse(text: &str) -> Option<Email> {
        let text = text.trim();
        let (local, domain) = text.split_once('@')?;
        let valid = !local.is_empty()
            && local.len() <= 64
            && text.len() <= 254
            && !domain.contains('@')
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !text.chars().any(|c| c.is_whitespace() || c.is_control());
        valid.then(|| Email(format!("{local}@{}", domain.to_ascii_lowercase())))
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form used in logs: first character of the local part and the domain.
    pub fn masked(&self) -> String {
        let (local, domain) = self.0.split_once('@').unwrap_or(("", &self.0));
        format!("{}***@{domain}", local.chars().next().unwrap_or('*'))
    }
}

impl std::fmt::Debug for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Email({})", self.masked())
    }
}

/// The destination of a verification.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Recipient {
    /// A phone (SMS, voice call, WhatsApp).
    Phone(E164Phone),
    /// An email address.
    Email(Email),
}

impl Recipient {
    /// The E.164 number or the address, as stored and shown in APIs.
    pub fn as_str(&self) -> &str {
        match self {
            Recipient::Phone(phone) => phone.as_str(),
            Recipient::Email(email) => email.as_str(),
        }
    }

    /// The form used in logs.
    pub fn masked(&self) -> String {
        match self {
            Recipient::Phone(phone) => phone.masked(),
            Recipient::Email(email) => email.masked(),
        }
    }

    /// Reads back a stored value (an address contains `@`; anything else is a number).
    pub fn from_trusted(text: String) -> Recipient {
        if text.contains('@') {
            Recipient::Email(Email(text))
        } else {
            Recipient::Phone(E164Phone::from_trusted(text))
        }
    }

    /// Parses what an API received: an email address, or a phone number (E.164, or national
    /// in `country`) with its country.
    pub fn parse(
        text: &str,
        country: Option<CountryIso>,
    ) -> Result<(Recipient, Option<CountryIso>), crate::PhoneError> {
        if text.contains('@') {
            return Email::parse(text)
                .map(|email| (Recipient::Email(email), None))
                .ok_or(crate::PhoneError::InvalidNumber);
        }
        let (phone, iso) = E164Phone::parse(text, country)?;
        Ok((Recipient::Phone(phone), Some(iso)))
    }
}

/// Masks any recipient-like string for logs.
pub fn mask_recipient(text: &str) -> String {
    if text.contains('@') {
        Recipient::from_trusted(text.to_string()).masked()
    } else {
        mask_phone(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_checked_and_masked() {
        assert_eq!(
            Email::parse("Ada@Example.COM").unwrap().as_str(),
            "Ada@example.com"
        );
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a b@example.com",
            "a@b@c.com",
        ] {
            assert!(Email::parse(bad).is_none(), "{bad}");
        }
        assert_eq!(
            Email::parse("ada@example.com").unwrap().masked(),
            "a***@example.com"
        );
    }

    #[test]
    fn recipients_parse_by_shape() {
        let (r, c) = Recipient::parse("ada@example.com", None).unwrap();
        assert!(matches!(r, Recipient::Email(_)) && c.is_none());
        let (r, c) = Recipient::parse("+33612345678", None).unwrap();
        assert!(matches!(r, Recipient::Phone(_)));
        assert_eq!(c.unwrap().as_str(), "FR");
        assert_eq!(Recipient::from_trusted("+33612345678".into()), r);
    }
}
