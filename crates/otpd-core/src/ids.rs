//! One 128-bit id per entity (UUID v7: time-ordered, so inserts stay local in the index).
//! Each dialect spells it its own way: the native API as a hyphenated lower-case UUID,
//! the Twilio dialect as a two-letter prefix plus the same 32 hex digits.

use uuid::Uuid;

macro_rules! entity_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh time-ordered id.
            pub fn generate() -> Self {
                $name(Uuid::now_v7())
            }

            /// Wraps an id read back from storage or parsed by a dialect.
            pub fn from_uuid(uuid: Uuid) -> Self {
                $name(uuid)
            }

            /// The underlying UUID.
            pub fn uuid(&self) -> Uuid {
                self.0
            }

            /// The 16 raw bytes, as stored.
            pub fn as_bytes(&self) -> &[u8; 16] {
                self.0.as_bytes()
            }

            /// 32 lower-case hex digits without hyphens (the Twilio-style body of an id).
            pub fn simple(&self) -> String {
                self.0.simple().to_string()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }
    };
}

entity_id!(
    /// A tenant: owns services and applications.
    AccountId
);
entity_id!(
    /// One verification configuration (SMS.CX application OTP settings, a Twilio Verify Service).
    ServiceId
);
entity_id!(
    /// One verification: a code sent to one recipient.
    VerificationId
);
entity_id!(
    /// One attempt to deliver a verification's code.
    DeliveryId
);
entity_id!(
    /// API credentials (application id + secret, and an API key) bound to one service.
    ApplicationId
);
entity_id!(
    /// A Twilio-style API key (`SK…` + secret) acting for one account.
    ApiKeyId
);
entity_id!(
    /// A console operator: a person who signs in to `/console/`, not an API credential.
    OperatorId
);
