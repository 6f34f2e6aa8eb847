//! Delivery adapters: each module speaks one provider's documented HTTP (or SMTP) API behind
//! the [`otpd_delivery::Provider`] port, with a configurable base URL so tests point it at a
//! local mock, and verifies that provider's delivery receipts.

pub mod generic;
pub mod http;
pub mod infobip;
pub mod messagebird;
pub mod plivo;
pub mod registry;
pub mod sendgrid;
pub mod signing;
pub mod smtp;
pub mod sns;
#[cfg(feature = "testing")]
pub mod testing;
pub mod twilio;
pub mod vonage;
pub mod whatsapp_cloud;
