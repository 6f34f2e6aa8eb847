//! The console provider: prints each message to stdout and keeps the newest 1,000 in memory
//! for the dev inbox. For local development only: it shows codes in clear.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Arc, Mutex};

use otpd_core::{Clock, Timestamp};

use crate::provider::{Accepted, BoxFuture, Message, Provider, SendError};

/// How many messages the inbox keeps.
pub const INBOX_CAPACITY: usize = 1000;

/// One message as the dev inbox shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct InboxMessage {
    /// Recipient (E.164).
    pub to: String,
    /// Channel (`sms`, …).
    pub channel: String,
    pub from: String,
    /// The message as the user would read it, code included.
    pub body: String,
    /// When it was handed to the console provider.
    #[serde(skip)]
    pub sent_at: Timestamp,
}

/// The newest messages, shared between the console provider and the dev inbox pages.
#[derive(Debug, Clone, Default)]
pub struct Inbox(Arc<Mutex<VecDeque<InboxMessage>>>);

impl Inbox {
    /// Adds a message, dropping the oldest beyond [`INBOX_CAPACITY`].
    pub fn push(&self, message: InboxMessage) {
        if let Ok(mut messages) = self.0.lock() {
            if messages.len() == INBOX_CAPACITY {
                messages.pop_front();
            }
            messages.push_back(message);
        }
    }

    /// Newest first, optionally only those sent to `to`.
    pub fn newest_first(&self, to: Option<&str>) -> Vec<InboxMessage> {
        let Ok(messages) = self.0.lock() else {
            return Vec::new();
        };
        messages
            .iter()
            .rev()
            .filter(|m| to.is_none_or(|to| m.to == to))
            .cloned()
            .collect()
    }
}

/// Prints to stdout and records in the [`Inbox`].
#[derive(Debug, Clone)]
pub struct ConsoleProvider<C> {
    name: &'static str,
    inbox: Inbox,
    clock: C,
    print: bool,
}

impl<C: Clock> ConsoleProvider<C> {
    /// A console provider feeding `inbox`, stamping messages with `clock`; with `print` off
    /// it is the `null` provider (inbox only, nothing written), for load tests.
    pub fn new(inbox: Inbox, clock: C, print: bool) -> Self {
        Self::named(if print { "console" } else { "null" }, inbox, clock, print)
    }

    /// The same, under a configured name.
    pub fn named(name: &'static str, inbox: Inbox, clock: C, print: bool) -> Self {
        ConsoleProvider {
            name,
            inbox,
            clock,
            print,
        }
    }
}

impl<C: Clock> Provider for ConsoleProvider<C> {
    fn name(&self) -> &str {
        self.name
    }

    fn kind(&self) -> &'static str {
        "console"
    }

    fn send<'a>(&'a self, message: &'a Message) -> BoxFuture<'a, Result<Accepted, SendError>> {
        let from = if message.from.is_empty() {
            otpd_core::settings::DEFAULT_SENDER
        } else {
            message.from.as_str()
        };
        // Stdout, not the log: logs never carry codes; this provider exists to show them.
        if self.print {
            let line = format!(
                "[otpd console {}] to={} from={} message={:?}\n",
                message.channel.as_str(),
                message.to,
                from,
                message.text
            );
            let _ = std::io::stdout().lock().write_all(line.as_bytes());
        }
        self.inbox.push(InboxMessage {
            to: message.to.clone(),
            channel: message.channel.as_str().to_string(),
            from: from.to_string(),
            body: message.text.clone(),
            sent_at: self.clock.now(),
        });
        let accepted = Accepted::sent(format!("console-{}", message.reference));
        Box::pin(std::future::ready(Ok(accepted)))
    }
}
