//! The HTTP client for requests made on a tenant's behalf (status callbacks, service
//! webhooks). It resolves each host itself, drops every address the [`OutboundPolicy`]
//! refuses and connects to a checked address (no second look-up a rebinding DNS server could
//! answer differently); it follows no redirect and uses no proxy. Providers, whose URLs only
//! the operator sets, use their own client.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use otpd_core::outbound::{OutboundPolicy, Refusal};

/// How long a create-time check waits for a name to resolve before accepting the URL (it is
/// checked again at every send).
const CREATE_TIME_LOOKUP: Duration = Duration::from_secs(2);

/// Checks outbound targets and sends to them.
#[derive(Clone)]
pub struct Outbound {
    policy: Arc<OutboundPolicy>,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound")
            .field("policy", &self.policy)
            .finish()
    }
}

impl Outbound {
    /// Targets allowed by `policy`.
    pub fn new(policy: OutboundPolicy) -> Outbound {
        Outbound {
            policy: Arc::new(policy),
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> &OutboundPolicy {
        &self.policy
    }

    /// A client whose every connection goes only to addresses the policy allows.
    pub fn client(&self, timeout: Duration) -> reqwest::Client {
        reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("otpd/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(CheckedResolver {
                policy: self.policy.clone(),
            })
            .build()
            .unwrap_or_default()
    }

    /// Checks a URL a tenant gives (a callback or webhook URL) when it is created: its
    /// scheme, and every address its host resolves to. A name that does not resolve now is
    /// accepted; the send-time check still applies.
    pub async fn check_target(&self, text: &str) -> Result<String, Refusal> {
        let url = self.policy.check_url(text)?;
        if let Some(url::Host::Domain(host)) = url.host()
            && !self.policy.host_allowed(host)
        {
            let port = url.port_or_known_default().unwrap_or(443);
            let lookup = tokio::net::lookup_host((host, port));
            if let Ok(Ok(addresses)) = tokio::time::timeout(CREATE_TIME_LOOKUP, lookup).await {
                let addresses: Vec<SocketAddr> = addresses.collect();
                if !addresses.is_empty()
                    && addresses
                        .iter()
                        .all(|a| self.policy.check_address(a.ip()).is_err())
                {
                    return Err(Refusal::PrivateAddress);
                }
            }
        }
        Ok(url.to_string())
    }

    /// Sends `request` (built on [`Outbound::client`]) to `url` after checking the URL again;
    /// the error is the coarse outcome a delivery log shows.
    pub async fn send(
        &self,
        url: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, String> {
        self.policy.check_url(url).map_err(|r| r.to_string())?;
        request.send().await.map_err(|error| describe(&error))
    }
}

/// What a tenant may learn of a failed request: a refusal, a time-out or a failed
/// connection, never the target's own error text (which would make otpd a port scanner).
fn describe(error: &reqwest::Error) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = source {
        if let Some(refusal) = cause.downcast_ref::<Refusal>() {
            return refusal.to_string();
        }
        source = cause.source();
    }
    if error.is_timeout() {
        "timed out".into()
    } else if error.is_connect() {
        "connect failed".into()
    } else {
        "request failed".into()
    }
}

/// Resolves a host and keeps only the addresses the policy allows.
struct CheckedResolver {
    policy: Arc<OutboundPolicy>,
}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if policy.host_allowed(&host) {
                return Ok(Box::new(resolved.into_iter()) as reqwest::dns::Addrs);
            }
            let allowed: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|a| policy.check_address(a.ip()).is_ok())
                .collect();
            if allowed.is_empty() {
                return Err(Box::new(Refusal::PrivateAddress) as _);
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict() -> Outbound {
        Outbound::new(OutboundPolicy::new(true, &[]).unwrap())
    }

    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused_at_create_time() {
        assert_eq!(
            strict().check_target("http://localhost:9/hook").await,
            Err(Refusal::PrivateAddress)
        );
    }

    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused_before_any_connection() {
        // A listener that must see nothing: the refusal comes from the resolver.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let outbound = strict();
        let url = format!("http://localhost:{port}/hook");
        let client = outbound.client(Duration::from_secs(2));
        let result = outbound.send(&url, client.post(&url).body("{}")).await;
        assert_eq!(result.err().as_deref(), Some("refused: private address"));
        assert!(
            listener.accept().is_err(),
            "no connection reached the listener"
        );
    }

    #[tokio::test]
    async fn an_allowed_range_is_reached_and_redirects_are_not_followed() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut buffer = [0u8; 4096];
            let _ = stream.read(&mut buffer);
            stream
                .write_all(b"HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:9/x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .unwrap();
        });
        let outbound = Outbound::new(OutboundPolicy::new(true, &["127.0.0.1/32".into()]).unwrap());
        let url = format!("http://localhost:{port}/hook");
        let client = outbound.client(Duration::from_secs(5));
        let response = outbound
            .send(&url, client.post(&url).body("{}"))
            .await
            .unwrap();
        assert_eq!(response.status(), 307, "the redirect is the answer");
        server.join().unwrap();
    }
}
