//! Words for what the timeline shows: what a provider's error code means and what a refusal
//! rule is, so support can answer "why didn't my code arrive?" without a provider's manual.

/// What a provider's (or otpd's own) delivery error code means, when it is a known one.
pub fn error_meaning(code: &str) -> Option<&'static str> {
    Some(match code {
        // otpd's own codes (docs/providers.md).
        "timeout" => "the provider did not answer in time",
        "connect" => "the provider could not be reached",
        "bad_response" => "the provider answered something otpd could not read",
        "config" => "the provider's configuration is incomplete or refused",
        "tls" => "the TLS connection to the provider failed",
        "signing" => "the request to the provider could not be signed",
        "invalid_from" => "the sender id is not accepted by the provider",
        "invalid_address" => "the provider says the destination is not valid",
        "message" => "the provider refused the message content",
        "channel" => "the provider does not carry this channel",
        "client" => "the provider refused the request as malformed",
        "ended" => "the verification ended before a provider took the message",
        "expired" => "the code expired before a provider took the message",
        // Twilio's Programmable Messaging codes.
        "20003" => "the provider refused otpd's credentials",
        "20429" => "the provider is rate-limiting otpd",
        "21211" => "the number is not a valid phone number",
        "21408" => "sending to this region is not enabled on the provider account",
        "21610" => "the recipient replied STOP: the provider will not message them",
        "21612" => "the provider cannot route to this number from this sender",
        "21614" => "the number is not a mobile number",
        "30003" => "the handset is unreachable (off, out of coverage)",
        "30004" => "the message was blocked (the recipient blocks messages)",
        "30005" => "unknown destination: the number does not exist or is no longer in service",
        "30006" => "the number is a landline or cannot receive SMS",
        "30007" => "the carrier filtered the message as spam",
        "30008" => "the carrier reported an unknown error",
        "30034" => "the sender is not registered for this country (A2P 10DLC)",
        _ => return None,
    })
}

/// What a refusal reason (`verification.blocked`'s `reason`) means.
pub fn refusal_meaning(reason: &str) -> &'static str {
    match reason {
        "destination" => "too many starts to this destination in the window",
        "client_ip" => "too many starts from this client address in the window",
        "country" => "too many starts to this country in the window",
        "programmable" => "a service rate limit refused it",
        "lockout" => "too many wrong codes for this destination recently",
        "cooldown" => "a code was sent to this destination too recently",
        "max_sends" => "the verification had already been sent the most times allowed",
        "budget" => "the service's daily budget is spent",
        "blocked_country" => "the service does not send to this country",
        "block_list" => "the number is on the service's block list",
        "costly_number" => "the number is a premium-rate or otherwise costly number",
        "landline" => "the number is a landline",
        "pumping" => "its prefix is quarantined for SMS pumping",
        _ => "a protection refused it",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_codes_are_explained_and_unknown_ones_are_not_guessed() {
        assert!(error_meaning("30003").unwrap().contains("unreachable"));
        assert!(error_meaning("timeout").is_some());
        assert_eq!(error_meaning("99999"), None);
        assert!(refusal_meaning("pumping").contains("quarantined"));
    }
}
