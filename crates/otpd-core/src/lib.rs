//! The otpd core: the verification lifecycle and its rules, with no knowledge of HTTP, SQL or
//! providers. Dialects call [`Verifier`]; storage plugs in through the narrow ports of
//! [`store`] (their sum is [`Store`]) and delivery through [`Dispatch`].

pub mod abuse;
pub mod alerts;
pub mod audit;
pub mod auth;
pub mod channel;
pub mod clock;
pub mod code;
pub mod delivery;
pub mod destinations;
pub mod events;
pub mod ids;
pub mod manage;
pub mod messages;
pub mod operators;
pub mod outbound;
pub mod phone;
pub mod recipient;
pub mod report;
pub mod retention;
pub mod secret;
pub mod settings;
pub mod sms;
pub mod store;
pub mod tenants;
pub mod vault;
pub mod verification;
pub mod verifier;

pub use channel::Channel;
pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use code::{CodeHash, CodeHasher, CodeSeed, OtpCode, PinLength, PinType, ServerSecret};
pub use delivery::{
    DeliveryAttempt, DeliveryStatus, DeliveryUpdate, ReceiptUpdate, TransmissionSummary,
};
pub use ids::{
    AccountId, ApiKeyId, ApplicationId, DeliveryId, OperatorId, ServiceId, VerificationId,
};
pub use phone::{CountryIso, E164Phone, LineType, PhoneError};
pub use recipient::{Email, Recipient};
pub use secret::Secret;
pub use settings::{
    MaxAttempts, OtpSettings, PrefixTemplate, SenderId, ServiceOptions, Template, Ttl,
};
pub use store::{
    AuditStore, CallbackStore, DeliveryStore, DestinationStore, EventStore, LimitStore, Store,
    StoreError, TenantStore, VerificationStore,
};
pub use verification::{
    Candidate, CheckCounters, CheckCounting, CheckDecision, CheckOutcome, StatusChange,
    Verification, VerificationStatus, decide_check, decide_status_change,
};
pub use verifier::{
    DeliveryJob, Dispatch, FirstTry, Lookup, Observer, PriceTable, StartError, StartRequest,
    Verifier,
};
