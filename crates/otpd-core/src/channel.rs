//! The channels a code travels on. Its own module so settings and the lifecycle can both name
//! it without importing each other.

use crate::recipient::Recipient;

/// How a code reaches the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// A text message.
    Sms,
    /// A voice call reading the code.
    Call,
    /// An email.
    Email,
    /// A WhatsApp message.
    Whatsapp,
}

impl Channel {
    /// The wire and storage spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Call => "call",
            Channel::Email => "email",
            Channel::Whatsapp => "whatsapp",
        }
    }

    /// Parses [`as_str`](Self::as_str).
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "sms" => Some(Channel::Sms),
            "call" => Some(Channel::Call),
            "email" => Some(Channel::Email),
            "whatsapp" => Some(Channel::Whatsapp),
            _ => None,
        }
    }

    /// Whether this channel can reach `recipient` (email to addresses, the rest to phones).
    pub fn reaches(self, recipient: &Recipient) -> bool {
        matches!(
            (self, recipient),
            (Channel::Email, Recipient::Email(_))
                | (
                    Channel::Sms | Channel::Call | Channel::Whatsapp,
                    Recipient::Phone(_)
                )
        )
    }
}
