//! Routing: which providers carry a channel to a country, in what order, and a circuit
//! breaker per provider so one provider's outage costs a message no more than one quick
//! failure before the next provider takes it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use otpd_core::Channel;

use crate::provider::Provider;

/// Ordered provider names per channel, with per-country overrides.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RouteTable {
    /// Routes for any destination.
    pub default: HashMap<Channel, Vec<String>>,
    /// Routes for destinations in one country (ISO code, upper-case), replacing the default
    /// for the channels they name.
    pub by_country: HashMap<String, HashMap<Channel, Vec<String>>>,
}

/// When a provider is skipped: after `failures` consecutive failures it is tried last for
/// `open_for`, then given one chance again (half-open).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerPolicy {
    /// Consecutive failures that open the breaker.
    pub failures: u32,
    /// How long it stays open.
    pub open_for: Duration,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        BreakerPolicy {
            failures: 5,
            open_for: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Breaker {
    consecutive_failures: u32,
    open_until: Option<Instant>,
}

/// Why a routing table was refused at start.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RoutingError {
    /// Two providers share a name.
    #[error("two providers are named {0:?}")]
    DuplicateName(String),
    /// A route names a provider that is not configured.
    #[error("route for {channel} names unknown provider {name:?}")]
    UnknownProvider {
        /// The channel of the route.
        channel: &'static str,
        /// The missing name.
        name: String,
    },
}

/// The configured providers and routes. Breaker state is per node and in memory: it only
/// changes the order providers are tried in, so a stale or lost state costs at most one
/// slow failure.
pub struct ProviderRouter {
    providers: HashMap<String, Arc<dyn Provider>>,
    routes: RouteTable,
    policy: BreakerPolicy,
    breakers: Mutex<HashMap<String, Breaker>>,
}

impl ProviderRouter {
    /// Checks that every route names a configured provider.
    pub fn new(
        providers: Vec<Arc<dyn Provider>>,
        routes: RouteTable,
        policy: BreakerPolicy,
    ) -> Result<ProviderRouter, RoutingError> {
        let mut by_name = HashMap::new();
        for provider in providers {
            let name = provider.name().to_string();
            if by_name.insert(name.clone(), provider).is_some() {
                return Err(RoutingError::DuplicateName(name));
            }
        }
        let all_routes = std::iter::once(&routes.default).chain(routes.by_country.values());
        for table in all_routes {
            for (channel, names) in table {
                if let Some(name) = names.iter().find(|n| !by_name.contains_key(*n)) {
                    return Err(RoutingError::UnknownProvider {
                        channel: channel.as_str(),
                        name: name.clone(),
                    });
                }
            }
        }
        Ok(ProviderRouter {
            providers: by_name,
            routes,
            policy,
            breakers: Mutex::new(HashMap::new()),
        })
    }

    /// The providers to try for `channel` to `country`, in order: the service's own route
    /// when it names configured providers, else the country's, else the default; providers
    /// whose breaker is open go last (still tried if nothing else works).
    pub fn route(
        &self,
        channel: Channel,
        country: Option<&str>,
        service_route: Option<&[String]>,
    ) -> Vec<Arc<dyn Provider>> {
        let known: Vec<String> = service_route
            .unwrap_or_default()
            .iter()
            .filter(|name| {
                let known = self.providers.contains_key(*name);
                if !known {
                    tracing::warn!(provider = %name, "a service route names an unknown provider; skipped");
                }
                known
            })
            .cloned()
            .collect();
        let names = if known.is_empty() {
            country
                .and_then(|c| self.routes.by_country.get(c))
                .and_then(|table| table.get(&channel))
                .or_else(|| self.routes.default.get(&channel))
        } else {
            Some(&known)
        };
        let Some(names) = names else {
            return Vec::new();
        };
        let now = Instant::now();
        let breakers = self.breakers.lock().map(|b| b.clone()).unwrap_or_default();
        let is_open = |name: &str| {
            breakers
                .get(name)
                .and_then(|b| b.open_until)
                .is_some_and(|until| until > now)
        };
        let (closed, open): (Vec<_>, Vec<_>) = names.iter().partition(|name| !is_open(name));
        closed
            .into_iter()
            .chain(open)
            .filter_map(|name| self.providers.get(name).cloned())
            .collect()
    }

    /// Whether any provider carries `channel` to `country` (breakers aside).
    pub fn serves(
        &self,
        channel: Channel,
        country: Option<&str>,
        service_route: Option<&[String]>,
    ) -> bool {
        let own = service_route
            .unwrap_or_default()
            .iter()
            .any(|name| self.providers.contains_key(name));
        own || country
            .and_then(|c| self.routes.by_country.get(c))
            .and_then(|table| table.get(&channel))
            .or_else(|| self.routes.default.get(&channel))
            .is_some_and(|names| !names.is_empty())
    }

    /// Which providers carry each channel by default, for the start-up log.
    pub fn default_routes(&self) -> &HashMap<Channel, Vec<String>> {
        &self.routes.default
    }

    /// A provider by its configured name (receipts arrive per provider).
    pub fn provider(&self, name: &str) -> Option<Arc<dyn Provider>> {
        self.providers.get(name).cloned()
    }

    /// Records a try's outcome for the provider's breaker.
    pub fn record(&self, name: &str, succeeded: bool) {
        let Ok(mut breakers) = self.breakers.lock() else {
            return;
        };
        let breaker = breakers.entry(name.to_string()).or_default();
        if succeeded {
            *breaker = Breaker::default();
            return;
        }
        breaker.consecutive_failures += 1;
        if breaker.consecutive_failures >= self.policy.failures {
            breaker.open_until = Some(Instant::now() + self.policy.open_for);
            tracing::warn!(
                provider = name,
                failures = breaker.consecutive_failures,
                "circuit breaker open: provider tried last for a while"
            );
        }
    }

    /// Whether `name`'s breaker is open now.
    pub fn is_open(&self, name: &str) -> bool {
        self.breakers
            .lock()
            .ok()
            .and_then(|b| b.get(name).and_then(|b| b.open_until))
            .is_some_and(|until| until > Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::{Accepted, BoxFuture, Message, SendError};

    struct Named(&'static str);

    impl Provider for Named {
        fn name(&self) -> &str {
            self.0
        }
        fn kind(&self) -> &'static str {
            "test"
        }
        fn send<'a>(&'a self, _: &'a Message) -> BoxFuture<'a, Result<Accepted, SendError>> {
            Box::pin(std::future::ready(Ok(Accepted::sent("x"))))
        }
    }

    fn router() -> ProviderRouter {
        let mut routes = RouteTable::default();
        routes
            .default
            .insert(Channel::Sms, vec!["a".into(), "b".into()]);
        routes.by_country.insert(
            "GB".into(),
            HashMap::from([(Channel::Sms, vec!["b".into()])]),
        );
        ProviderRouter::new(
            vec![Arc::new(Named("a")), Arc::new(Named("b"))],
            routes,
            BreakerPolicy {
                failures: 2,
                open_for: Duration::from_secs(60),
            },
        )
        .unwrap()
    }

    fn names(providers: Vec<Arc<dyn Provider>>) -> Vec<String> {
        providers.iter().map(|p| p.name().to_string()).collect()
    }

    #[test]
    fn country_routes_replace_the_default() {
        let router = router();
        assert_eq!(
            names(router.route(Channel::Sms, Some("US"), None)),
            ["a", "b"]
        );
        assert_eq!(names(router.route(Channel::Sms, Some("GB"), None)), ["b"]);
        assert!(router.route(Channel::Call, None, None).is_empty());
    }

    #[test]
    fn a_service_route_wins_when_it_names_known_providers() {
        let router = router();
        let own = ["b".to_string(), "a".to_string()];
        assert_eq!(
            names(router.route(Channel::Sms, Some("GB"), Some(&own))),
            ["b", "a"]
        );
        let unknown = ["zz".to_string()];
        assert_eq!(
            names(router.route(Channel::Sms, None, Some(&unknown))),
            ["a", "b"],
            "unknown names fall back to the server's route"
        );
    }

    #[test]
    fn an_open_breaker_moves_its_provider_last_until_a_success() {
        let router = router();
        router.record("a", false);
        assert_eq!(
            names(router.route(Channel::Sms, None, None)),
            ["a", "b"],
            "one failure"
        );
        router.record("a", false);
        assert!(router.is_open("a"));
        assert_eq!(names(router.route(Channel::Sms, None, None)), ["b", "a"]);
        router.record("a", true);
        assert_eq!(names(router.route(Channel::Sms, None, None)), ["a", "b"]);
    }

    #[test]
    fn unknown_and_duplicate_names_are_refused() {
        let mut routes = RouteTable::default();
        routes.default.insert(Channel::Sms, vec!["nope".into()]);
        let err = ProviderRouter::new(vec![Arc::new(Named("a"))], routes, BreakerPolicy::default());
        assert!(matches!(err, Err(RoutingError::UnknownProvider { .. })));
        let err = ProviderRouter::new(
            vec![Arc::new(Named("a")), Arc::new(Named("a"))],
            RouteTable::default(),
            BreakerPolicy::default(),
        );
        assert!(matches!(err, Err(RoutingError::DuplicateName(_))));
    }
}
