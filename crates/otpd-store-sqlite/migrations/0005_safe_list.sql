-- Numbers an account exempts from fraud checks (Twilio's SafeList).
CREATE TABLE safe_numbers (
    account_id BLOB NOT NULL,
    phone      TEXT NOT NULL,
    id         BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (account_id, phone)
);
