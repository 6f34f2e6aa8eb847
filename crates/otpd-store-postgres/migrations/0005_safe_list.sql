-- Numbers an account exempts from fraud checks (Twilio's SafeList).
CREATE TABLE safe_numbers (
    account_id UUID NOT NULL,
    phone      TEXT NOT NULL,
    id         UUID NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (account_id, phone)
);
