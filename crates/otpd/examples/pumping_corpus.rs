//! The SMS-pumping attack corpus (issue 22, item 6): how many codes each attack shape gets
//! out of otpd, and how many real users the defence refuses on the way.
//!
//! It starts the real server in-process (`otpd::start`) on a fresh SQLite file, with the
//! default protections and a price table, the `null` provider and a manual clock, and replays
//! twelve hours of traffic (00:00–12:00 of one day) in seconds, deterministically from a seed:
//!
//! - **real users** in 15 countries and over a hundred mobile prefixes (every number valid
//!   for libphonenumber), each from their own address given as `deviceIp`, arriving on a
//!   daily curve; about 85 % approve a code 10–120 s after it was sent, some after a typo,
//!   some after asking for a second code. One big-city prefix (`+55119`, São Paulo mobiles)
//!   carries 7 % of them;
//! - five **attack shapes** on prefixes of their own, each counted apart: a concentrated
//!   burst on one prefix, a spread low-and-slow campaign over 40 prefixes of 4 countries from
//!   200 rotating addresses, a sweep of 100 prefixes of one expensive country from one IPv6
//!   /64, the bombing of one number from many addresses, and bursts aimed at the big-city
//!   prefix, timed so that each lands when the last quarantine lifts.
//!
//! A message counts as sent when the provider was handed it (it reached the dev inbox the
//! `null` provider feeds). A real user counts as falsely blocked when one of their starts was
//! refused, or answered without a message being sent. The figures under the current defence
//! are in docs/security.md ("Measured against the attack corpus").
//!
//! ```console
//! cargo run --release -p otpd --example pumping_corpus -- [--seed N] [--preset basic|standard|max] [--json FILE]
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use otpd_core::{Clock, E164Phone, LineType, ManualClock, Timestamp};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};

/// Replays the attack corpus against an in-process otpd and prints what got through.
#[derive(Parser)]
struct Args {
    /// Seed of the traffic: the same seed replays the same corpus.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Also write the figures to this file as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// The pumping defence's preset: basic, standard or max.
    #[arg(long, default_value = "standard")]
    preset: String,
}

/// The day the corpus replays starts at 2026-03-02 00:00:00 UTC (a Monday).
const MIDNIGHT_MS: i64 = 1_772_409_600_000;
const HOUR: i64 = 3600;
/// Real users' arrivals per hour of the day (relative): a quiet night, a morning ramp.
const HOURLY_TRAFFIC: [f64; 12] = [0.35, 0.25, 0.2, 0.2, 0.3, 0.5, 0.8, 1.1, 1.3, 1.4, 1.5, 1.5];
/// Real users over the twelve hours.
const REAL_USERS: usize = 2400;
/// The big-city mobile prefix, and the share of real users in it.
const BUSY_PREFIX: &str = "+55119";
const BUSY_SHARE: f64 = 0.07;
/// Mobile prefixes each country's real users are spread over.
const PREFIXES_PER_COUNTRY: usize = 8;
/// Price of one SMS in the countries that have one (USD, rounded list prices); the attack
/// shapes aim at the expensive ones.
const PRICES: &[(&str, f64)] = &[
    ("US", 0.008),
    ("BR", 0.03),
    ("IN", 0.05),
    ("GB", 0.04),
    ("FR", 0.07),
    ("DE", 0.09),
    ("ID", 0.41),
    ("PH", 0.21),
    ("NG", 0.29),
    ("PK", 0.30),
    ("UZ", 0.33),
    ("KG", 0.37),
];

/// A destination country: ISO code, calling code, national digits of its mobile numbers.
#[derive(Clone, Copy)]
struct Country {
    iso: &'static str,
    calling_code: &'static str,
    national_digits: usize,
}

const fn country(iso: &'static str, calling_code: &'static str, digits: usize) -> Country {
    Country {
        iso,
        calling_code,
        national_digits: digits,
    }
}

/// Where real users are, with their share of the traffic (relative).
const REAL_COUNTRIES: &[(Country, u32)] = &[
    (country("US", "1", 10), 14),
    (country("BR", "55", 11), 12),
    (country("IN", "91", 10), 10),
    (country("GB", "44", 10), 8),
    (country("FR", "33", 9), 7),
    (country("DE", "49", 11), 7),
    (country("ES", "34", 9), 6),
    (country("IT", "39", 10), 6),
    (country("ID", "62", 11), 6),
    (country("PH", "63", 10), 5),
    (country("NG", "234", 10), 5),
    (country("TR", "90", 10), 4),
    (country("PL", "48", 9), 4),
    (country("NL", "31", 9), 3),
    (country("ZA", "27", 9), 3),
];
const BRAZIL: Country = country("BR", "55", 11);
const UK: Country = country("GB", "44", 10);
/// The spread campaign's four countries (real users live in three of them).
const SPREAD_COUNTRIES: [Country; 4] = [
    country("ID", "62", 11),
    country("PH", "63", 10),
    country("NG", "234", 10),
    country("PK", "92", 10),
];
/// The concentrated burst's country and the swept one.
const KYRGYZSTAN: Country = country("KG", "996", 9);
const UZBEKISTAN: Country = country("UZ", "998", 9);

/// The attack shapes, each counted apart.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Shape {
    Concentrated,
    SpreadLowAndSlow,
    CountrySweep,
    Bombing,
    BusyPrefix,
}

impl Shape {
    /// Its name in the JSON figures, and what it is, for the table.
    fn names(self) -> (&'static str, &'static str) {
        match self {
            Shape::Concentrated => (
                "concentrated",
                "1 concentrated: one KG prefix, 5 addresses, 30 min",
            ),
            Shape::SpreadLowAndSlow => (
                "spread_low_and_slow",
                "2 spread: 40 prefixes of ID/PH/NG/PK, 200 addresses, 8 h",
            ),
            Shape::CountrySweep => (
                "country_sweep",
                "3 sweep: 100 UZ prefixes from one IPv6 /64, 2 h",
            ),
            Shape::Bombing => ("bombing", "4 bombing: one GB number from 60 addresses, 1 h"),
            Shape::BusyPrefix => (
                "busy_prefix",
                "5 busy prefix: 4 bursts of 50 at +55119 real users",
            ),
        }
    }
}

/// What a real user does with the code of one start.
#[derive(Clone, Copy)]
enum Intent {
    /// Enters it this many seconds after the start, after a wrong first try when `typo`.
    Approve { after: i64, typo: bool },
    /// Never enters it.
    Ignore,
}

/// One real user: their number, their address and the starts they make.
struct RealUser {
    number: String,
    /// Its prefix as the pumping defence counts it (`+55119`).
    prefix: String,
    ip: IpAddr,
    /// (seconds since midnight, what they do with that code).
    starts: Vec<(i64, Intent)>,
}

/// One step of the replay.
enum Action {
    RealStart {
        user: usize,
        attempt: usize,
    },
    RealCheck {
        user: usize,
        attempt: usize,
        right: bool,
    },
    AttackStart {
        shape: Shape,
        number: String,
        ip: IpAddr,
    },
}

/// An action at a second of the day.
struct Event {
    at: i64,
    action: Action,
}

/// Everything the replay does, planned from the seed before the server starts.
struct Corpus {
    seed: u64,
    users: Vec<RealUser>,
    events: Vec<Event>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let began = Instant::now();
    let preset: otpd_core::abuse::PumpingPreset = serde_json::from_value(json!(args.preset))
        .with_context(|| format!("--preset: '{}' is not basic, standard or max", args.preset))?;
    let corpus = plan_corpus(args.seed)?;
    let mut otpd = Otpd::start(preset).await?;
    let figures = replay(&mut otpd, &corpus, began).await?;
    otpd.stop().await;
    print_figures(&figures, &args.preset);
    if let Some(path) = args.json {
        let json = figures_json(&figures);
        std::fs::write(&path, serde_json::to_string_pretty(&json)? + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

// ---- Traffic generation ----

/// Plans the real traffic and the five attack shapes.
fn plan_corpus(seed: u64) -> anyhow::Result<Corpus> {
    let mut planner = Planner {
        rng: StdRng::seed_from_u64(seed),
        numbers: HashSet::new(),
        addresses: HashSet::new(),
    };
    let users = planner.real_users()?;
    let mut events = real_events(&users);
    events.extend(planner.concentrated()?);
    events.extend(planner.spread_low_and_slow()?);
    events.extend(planner.country_sweep()?);
    events.extend(planner.bombing()?);
    events.extend(planner.busy_prefix_bursts()?);
    // Stable: actions planned for the same second keep their planned order.
    events.sort_by_key(|event| event.at);
    Ok(Corpus {
        seed,
        users,
        events,
    })
}

/// Draws the corpus from the seed; no number and no address is handed out twice.
struct Planner {
    rng: StdRng,
    numbers: HashSet<String>,
    addresses: HashSet<IpAddr>,
}

impl Planner {
    /// Real users: country by share, prefix by popularity within it, arrival on the daily
    /// curve, and what they do with their codes.
    fn real_users(&mut self) -> anyhow::Result<Vec<RealUser>> {
        let mut prefixes = Vec::new();
        for (country, _) in REAL_COUNTRIES {
            let mut all = mobile_prefixes(*country);
            all.retain(|prefix| prefix != BUSY_PREFIX);
            prefixes.push(self.some_of(all, PREFIXES_PER_COUNTRY, country.iso)?);
        }
        let shares: Vec<f64> = REAL_COUNTRIES.iter().map(|(_, w)| f64::from(*w)).collect();
        // Within a country the first prefixes are the popular ones (weights 1, 1/2, 1/3, …).
        let popularity: Vec<f64> = (1..=PREFIXES_PER_COUNTRY)
            .map(|rank| 1.0 / rank as f64)
            .collect();
        let mut users = Vec::with_capacity(REAL_USERS);
        let mut homes = Vec::with_capacity(REAL_USERS);
        for _ in 0..REAL_USERS {
            let (country, prefix) = if self.rng.random_bool(BUSY_SHARE) {
                (BRAZIL, BUSY_PREFIX.to_string())
            } else {
                let index = self.pick(&shares);
                let prefix = prefixes[index][self.pick(&popularity)].clone();
                (REAL_COUNTRIES[index].0, prefix)
            };
            homes.push(country);
            let ip = if self.rng.random_bool(0.25) {
                self.ipv6()
            } else {
                IpAddr::V4(self.ipv4())
            };
            let arrival = self.pick(&HOURLY_TRAFFIC) as i64 * HOUR + self.rng.random_range(0..HOUR);
            let starts = self.real_user_starts(arrival);
            users.push(RealUser {
                number: String::new(),
                prefix,
                ip,
                starts,
            });
        }
        // Numbers are drawn country by country: libphonenumber keeps 100 compiled patterns,
        // and parsing numbers of 15 countries in turn compiles them again on every parse.
        let mut by_country: Vec<usize> = (0..users.len()).collect();
        by_country.sort_by_key(|&user| homes[user].iso);
        for user in by_country {
            users[user].number = self.number_in(homes[user], &users[user].prefix)?;
        }
        Ok(users)
    }

    /// What one real user does: 80 % approve the first code, 5 % of those after a typo; of
    /// the others, 40 % ask for a second code 35–90 s later (after the send cooldown) and
    /// 60 % of those approve it. About 85 % approve in all.
    fn real_user_starts(&mut self, arrival: i64) -> Vec<(i64, Intent)> {
        if self.rng.random_bool(0.8) {
            return vec![(arrival, self.approval())];
        }
        if self.rng.random_bool(0.4) {
            let again = arrival + self.rng.random_range(35..=90);
            let second = if self.rng.random_bool(0.6) {
                self.approval()
            } else {
                Intent::Ignore
            };
            return vec![(arrival, Intent::Ignore), (again, second)];
        }
        vec![(arrival, Intent::Ignore)]
    }

    /// Approval 10–120 s after the code was sent, sooner more often than later.
    fn approval(&mut self) -> Intent {
        let after = 10
            + self
                .rng
                .random_range(0..=110)
                .min(self.rng.random_range(0..=110));
        Intent::Approve {
            after,
            typo: self.rng.random_bool(0.05),
        }
    }

    /// Shape 1: 300 starts to one prefix in 30 minutes at night, from five addresses of one
    /// network, never approved.
    fn concentrated(&mut self) -> anyhow::Result<Vec<Event>> {
        let prefix = self
            .some_of(mobile_prefixes(KYRGYZSTAN), 1, "KG")?
            .remove(0);
        let [a, b, c, _] = self.ipv4().octets();
        let mut events = Vec::new();
        for i in 0..300 {
            let number = self.number_in(KYRGYZSTAN, &prefix)?;
            let ip = IpAddr::V4(Ipv4Addr::new(a, b, c, 10 + (i % 5) as u8));
            events.push(Event::attack(
                2 * HOUR + i * 6,
                Shape::Concentrated,
                number,
                ip,
            ));
        }
        Ok(events)
    }

    /// Shape 2: 10 starts to each of 40 prefixes (10 in each of 4 countries) at random times
    /// over eight hours, from a pool of 200 addresses used in turn.
    fn spread_low_and_slow(&mut self) -> anyhow::Result<Vec<Event>> {
        let pool: Vec<IpAddr> = (0..200).map(|_| IpAddr::V4(self.ipv4())).collect();
        let mut targets = Vec::new();
        for country in SPREAD_COUNTRIES {
            for prefix in self.some_of(mobile_prefixes(country), 10, country.iso)? {
                targets.extend(std::iter::repeat_n((country, prefix), 10));
            }
        }
        targets.shuffle(&mut self.rng);
        let mut times: Vec<i64> = (0..targets.len())
            .map(|_| HOUR + self.rng.random_range(0..8 * HOUR))
            .collect();
        times.sort_unstable();
        let mut events = Vec::new();
        for (i, ((country, prefix), at)) in targets.into_iter().zip(times).enumerate() {
            let number = self.number_in(country, &prefix)?;
            events.push(Event::attack(
                at,
                Shape::SpreadLowAndSlow,
                number,
                pool[i % 200],
            ));
        }
        Ok(events)
    }

    /// Shape 3: 3 starts to each of 100 prefixes of one expensive country, one every 24 s
    /// for two hours, each from another address of one IPv6 /64.
    fn country_sweep(&mut self) -> anyhow::Result<Vec<Event>> {
        let prefixes = self.some_of(mobile_prefixes(UZBEKISTAN), 100, "UZ")?;
        let mut targets: Vec<&String> = prefixes.iter().flat_map(|p| [p, p, p]).collect();
        targets.shuffle(&mut self.rng);
        let network = (0x2a0e_u128 << 112) | (u128::from(self.rng.random::<u64>() >> 16) << 64);
        let mut events = Vec::new();
        for (i, prefix) in targets.into_iter().enumerate() {
            let number = self.number_in(UZBEKISTAN, prefix)?;
            let ip = IpAddr::V6(Ipv6Addr::from(
                network | u128::from(self.rng.random::<u64>()),
            ));
            events.push(Event::attack(
                3 * HOUR + i as i64 * 24,
                Shape::CountrySweep,
                number,
                ip,
            ));
        }
        Ok(events)
    }

    /// Shape 4: one person's number, one start every 15 s for an hour from 60 addresses.
    fn bombing(&mut self) -> anyhow::Result<Vec<Event>> {
        let prefix = self.some_of(mobile_prefixes(UK), 1, "GB")?.remove(0);
        let victim = self.number_in(UK, &prefix)?;
        let bots: Vec<IpAddr> = (0..60).map(|_| IpAddr::V4(self.ipv4())).collect();
        Ok((0..240)
            .map(|i| {
                let at = 8 * HOUR + 30 * 60 + i * 15;
                Event::attack(at, Shape::Bombing, victim.clone(), bots[i as usize % 60])
            })
            .collect())
    }

    /// Shape 5: bursts of 50 unconverted starts at the big-city prefix (one every 6 s, each
    /// from a new address), the first in the quiet early morning and each next one 70
    /// minutes later, when the quarantine the last one caused has lifted.
    fn busy_prefix_bursts(&mut self) -> anyhow::Result<Vec<Event>> {
        let mut events = Vec::new();
        for burst in 0..4 {
            for i in 0..50 {
                let at = 4 * HOUR + 10 * 60 + burst * 70 * 60 + i * 6;
                let number = self.number_in(BRAZIL, BUSY_PREFIX)?;
                let ip = IpAddr::V4(self.ipv4());
                events.push(Event::attack(at, Shape::BusyPrefix, number, ip));
            }
        }
        Ok(events)
    }

    /// `count` of `prefixes`, drawn at random.
    fn some_of(
        &mut self,
        mut prefixes: Vec<String>,
        count: usize,
        iso: &str,
    ) -> anyhow::Result<Vec<String>> {
        if prefixes.len() < count {
            bail!(
                "{iso} has {} mobile prefixes, {count} wanted",
                prefixes.len()
            );
        }
        prefixes.shuffle(&mut self.rng);
        prefixes.truncate(count);
        Ok(prefixes)
    }

    /// A valid mobile number in `prefix` that nobody else in the corpus has.
    fn number_in(&mut self, country: Country, prefix: &str) -> anyhow::Result<String> {
        for _ in 0..200 {
            let tail: String = (3..country.national_digits)
                .map(|_| char::from(b'0' + self.rng.random_range(0..10u8)))
                .collect();
            let number = format!("{prefix}{tail}");
            if is_mobile(&number, country) && self.numbers.insert(number.clone()) {
                return Ok(number);
            }
        }
        bail!("no valid mobile number found in {prefix} ({})", country.iso)
    }

    /// A public IPv4 address not used before in the corpus.
    fn ipv4(&mut self) -> Ipv4Addr {
        loop {
            let first = self.rng.random_range(1..=223u8);
            if matches!(first, 10 | 100 | 127 | 169 | 172 | 192 | 198 | 203) {
                continue;
            }
            let [_, b, c, d] = self.rng.random::<u32>().to_be_bytes();
            let ip = Ipv4Addr::new(first, b, c, d.max(1));
            if self.addresses.insert(IpAddr::V4(ip)) {
                return ip;
            }
        }
    }

    /// A global IPv6 address (in 2a00::/12) not used before in the corpus.
    fn ipv6(&mut self) -> IpAddr {
        loop {
            let ip = IpAddr::V6(Ipv6Addr::from(
                (0x2a0_u128 << 116) | (self.rng.random::<u128>() >> 12),
            ));
            if self.addresses.insert(ip) {
                return ip;
            }
        }
    }

    /// An index drawn in proportion to `weights`.
    fn pick(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        let mut point = self.rng.random_range(0.0..total);
        for (index, weight) in weights.iter().enumerate() {
            if point < *weight {
                return index;
            }
            point -= weight;
        }
        weights.len() - 1
    }
}

impl Event {
    fn attack(at: i64, shape: Shape, number: String, ip: IpAddr) -> Event {
        Event {
            at,
            action: Action::AttackStart { shape, number, ip },
        }
    }
}

/// The real users' starts and code checks on the timeline (a typo 8 s before the right
/// code).
fn real_events(users: &[RealUser]) -> Vec<Event> {
    let mut events = Vec::new();
    for (user, plan) in users.iter().enumerate() {
        for (attempt, (at, intent)) in plan.starts.iter().enumerate() {
            let action = Action::RealStart { user, attempt };
            events.push(Event { at: *at, action });
            if let Intent::Approve { after, typo } = *intent {
                for (right, at) in [(false, at + after - 8), (true, at + after)] {
                    if right || typo {
                        let action = Action::RealCheck {
                            user,
                            attempt,
                            right,
                        };
                        events.push(Event { at, action });
                    }
                }
            }
        }
    }
    events
}

/// The country's mobile prefixes (`+`, calling code, three national digits) in which
/// libphonenumber's ranges hold valid mobile numbers of the country's length.
fn mobile_prefixes(country: Country) -> Vec<String> {
    const TAILS: [&str; 3] = ["2345678901", "5550172839", "8093146257"];
    (0..1000)
        .map(|n| format!("+{}{n:03}", country.calling_code))
        .filter(|prefix| {
            TAILS.iter().any(|tail| {
                let number = format!("{prefix}{}", &tail[..country.national_digits - 3]);
                is_mobile(&number, country)
            })
        })
        .collect()
}

/// Whether the number is a valid number of `country`, already in E.164 form, that can
/// receive an SMS (a mobile, or a North American number, where the plan does not tell
/// mobiles apart).
fn is_mobile(number: &str, country: Country) -> bool {
    E164Phone::parse(number, None).is_ok_and(|(phone, iso)| {
        phone.as_str() == number
            && iso.as_str() == country.iso
            && matches!(
                phone.line_type(),
                LineType::Mobile | LineType::FixedLineOrMobile
            )
    })
}

// ---- The server ----

/// The real otpd, in-process, as a deployment would configure it, and a client calling its
/// native API the way an application's backend does.
struct Otpd {
    server: otpd::RunningServer,
    _dir: tempfile::TempDir,
    base: String,
    client: reqwest::Client,
    token: String,
    clock: ManualClock,
    /// Seconds since midnight on the server's clock.
    now: i64,
    /// HTTP requests made.
    requests: u64,
}

/// How a start ended.
enum StartOutcome {
    /// Answered 201 and the provider was handed the message.
    Sent {
        otp_id: String,
        code: String,
        cost: f64,
    },
    /// Refused (the HTTP status and the native error code: `403 1020`), or answered 201
    /// without a message leaving otpd (`201 not sent`: shadow-blocked, or no provider took it).
    NotSent(String),
}

impl Otpd {
    /// Starts otpd with the default protections (the pumping defence at `preset`) on a fresh
    /// SQLite file and its first application's token.
    async fn start(preset: otpd_core::abuse::PumpingPreset) -> anyhow::Result<Otpd> {
        let dir = tempfile::tempdir()?;
        let mut config = otpd::Config {
            listen: "127.0.0.1:0".into(),
            database_url: format!("sqlite://{}", dir.path().join("otpd.db").display()).into(),
            secret_file: dir.path().join("otpd.key"),
            // Dev mode only for the inbox the `null` provider feeds: it changes no protection.
            dev_mode: Some(true),
            provider: Some("null".into()),
            ..otpd::Config::default()
        };
        config.pumping.preset = preset;
        for (iso, price) in PRICES {
            config.prices.insert((*iso).into(), *price);
        }
        let clock = ManualClock::new(Timestamp(MIDNIGHT_MS));
        let server = otpd::start(&config, clock.clone()).await?;
        let credentials = server
            .first_application
            .clone()
            .context("a fresh database creates the first application")?;
        let base = format!("http://{}", server.addr);
        let client = reqwest::Client::new();
        let answer: Value = client
            .post(format!("{base}/oauth/token"))
            .basic_auth(
                credentials.application.id.simple(),
                Some(&credentials.secret),
            )
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials")
            .send()
            .await?
            .json()
            .await?;
        let token = answer["access_token"]
            .as_str()
            .context("no access token")?
            .to_string();
        Ok(Otpd {
            server,
            _dir: dir,
            base,
            client,
            token,
            clock,
            now: 0,
            requests: 1,
        })
    }

    async fn stop(self) {
        self.server.stop().await;
    }

    /// Moves the server's clock forward to `at` (seconds since midnight).
    fn advance_to(&mut self, at: i64) {
        if at > self.now {
            self.clock.advance_seconds(at - self.now);
            self.now = at;
        }
    }

    /// `POST /otp` for `number` on behalf of an end user at `ip`, and what reached the
    /// provider.
    async fn start_verification(
        &mut self,
        number: &str,
        ip: IpAddr,
    ) -> anyhow::Result<StartOutcome> {
        let before = self.messages_now(number).len();
        self.requests += 1;
        let response = self
            .client
            .post(format!("{}/otp", self.base))
            .bearer_auth(&self.token)
            .json(&json!({"phoneNumber": number, "deviceIp": ip.to_string()}))
            .send()
            .await?;
        let status = response.status().as_u16();
        let body: Value = response.json().await?;
        if status != 201 {
            return Ok(StartOutcome::NotSent(format!(
                "{status} {}",
                body["error"]["code"]
            )));
        }
        // The first try runs before the answer; a delivery still queued may land shortly.
        let queued = body["deliveries"][0]["status"] == "queued";
        for _ in 0..if queued { 100 } else { 1 } {
            let messages = self.messages_now(number);
            if messages.len() > before {
                let code = messages[0].rsplit(' ').next().unwrap_or_default();
                return Ok(StartOutcome::Sent {
                    otp_id: body["otpId"].as_str().unwrap_or_default().to_string(),
                    code: code.to_string(),
                    cost: body["cost"].as_f64().unwrap_or(0.0),
                });
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(StartOutcome::NotSent("201 not sent".into()))
    }

    /// Bodies of the messages handed to the provider for `number` at this second, newest
    /// first.
    fn messages_now(&self, number: &str) -> Vec<String> {
        let now = self.clock.now();
        self.server
            .inbox
            .as_ref()
            .map(|inbox| {
                inbox
                    .newest_first(Some(number))
                    .into_iter()
                    .filter(|message| message.sent_at == now)
                    .map(|message| message.body)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `POST /otp/{id}` with `pin`; whether the code was approved.
    async fn check(&mut self, otp_id: &str, pin: &str) -> anyhow::Result<bool> {
        self.requests += 1;
        let response = self
            .client
            .post(format!("{}/otp/{otp_id}", self.base))
            .bearer_auth(&self.token)
            .json(&json!({"pin": pin}))
            .send()
            .await?;
        Ok(response.status().as_u16() == 200)
    }
}

// ---- Counting ----

/// What one attack shape got out of otpd.
#[derive(Default)]
struct ShapeFigures {
    attempted: u32,
    sent: u32,
    /// When each message was sent (seconds since midnight).
    sent_at: Vec<i64>,
    spend: f64,
    /// Refusals by "status code" (`403 1020`).
    refusals: BTreeMap<String, u32>,
}

impl ShapeFigures {
    /// The most messages sent in any 10 minutes.
    fn most_sent_in_ten_minutes(&self) -> usize {
        self.sent_at
            .iter()
            .enumerate()
            .map(|(i, start)| {
                self.sent_at[i..]
                    .iter()
                    .take_while(|at| **at < start + 600)
                    .count()
            })
            .max()
            .unwrap_or(0)
    }
}

/// How a group of real users fared.
#[derive(Default)]
struct RealFigures {
    users: u32,
    falsely_blocked: u32,
    approved: u32,
    /// Their starts that sent nothing, by "status code".
    refusals: BTreeMap<String, u32>,
}

impl RealFigures {
    /// Counts one user in the group.
    fn add(&mut self, user: &RealUserState) {
        self.users += 1;
        self.falsely_blocked += u32::from(!user.refusals.is_empty());
        self.approved += u32::from(user.approved);
        for reason in &user.refusals {
            *self.refusals.entry(reason.clone()).or_default() += 1;
        }
    }

    fn blocked_share(&self) -> f64 {
        percent(self.falsely_blocked, self.users)
    }
}

/// Everything the replay measured.
struct Figures {
    seed: u64,
    shapes: BTreeMap<Shape, ShapeFigures>,
    real: RealFigures,
    /// The users of the big-city prefix (also counted in `real`).
    busy: RealFigures,
    real_prefixes: usize,
    requests: u64,
    elapsed: Duration,
}

/// What the replay remembers about one real user.
#[derive(Default)]
struct RealUserState {
    /// The otp id and code of each start that sent one.
    codes: HashMap<usize, (String, String)>,
    /// Why each of their starts that sent nothing did not: any makes them falsely blocked.
    refusals: Vec<String>,
    approved: bool,
}

/// Replays the corpus in time order and counts what happened (`began`: when the run began).
async fn replay(otpd: &mut Otpd, corpus: &Corpus, began: Instant) -> anyhow::Result<Figures> {
    let mut shapes: BTreeMap<Shape, ShapeFigures> = BTreeMap::new();
    let mut states: Vec<RealUserState> = corpus.users.iter().map(|_| Default::default()).collect();
    for event in &corpus.events {
        otpd.advance_to(event.at);
        match &event.action {
            Action::RealStart { user, attempt } => {
                let state = &mut states[*user];
                let plan = &corpus.users[*user];
                match otpd.start_verification(&plan.number, plan.ip).await? {
                    StartOutcome::Sent { otp_id, code, .. } => {
                        state.codes.insert(*attempt, (otp_id, code));
                    }
                    StartOutcome::NotSent(reason) => state.refusals.push(reason),
                }
            }
            Action::RealCheck {
                user,
                attempt,
                right,
            } => {
                let state = &mut states[*user];
                let Some((otp_id, code)) = state.codes.get(attempt).cloned() else {
                    continue;
                };
                let pin = if *right { code } else { mistype(&code) };
                if otpd.check(&otp_id, &pin).await? && *right {
                    state.approved = true;
                }
            }
            Action::AttackStart { shape, number, ip } => {
                let figures = shapes.entry(*shape).or_default();
                figures.attempted += 1;
                match otpd.start_verification(number, *ip).await? {
                    StartOutcome::Sent { cost, .. } => {
                        figures.sent += 1;
                        figures.sent_at.push(event.at);
                        figures.spend += cost;
                    }
                    StartOutcome::NotSent(reason) => {
                        *figures.refusals.entry(reason).or_default() += 1;
                    }
                }
            }
        }
    }
    let mut real = RealFigures::default();
    let mut busy = RealFigures::default();
    for (plan, state) in corpus.users.iter().zip(&states) {
        real.add(state);
        if plan.prefix == BUSY_PREFIX {
            busy.add(state);
        }
    }
    let prefixes: HashSet<&str> = corpus.users.iter().map(|u| u.prefix.as_str()).collect();
    Ok(Figures {
        seed: corpus.seed,
        shapes,
        real,
        busy,
        real_prefixes: prefixes.len(),
        requests: otpd.requests,
        elapsed: began.elapsed(),
    })
}

/// A wrong code: the right one with its last digit changed.
fn mistype(code: &str) -> String {
    let mut digits: Vec<char> = code.chars().collect();
    if let Some(last) = digits.last_mut() {
        *last = if *last == '0' { '1' } else { '0' };
    }
    digits.into_iter().collect()
}

fn percent(part: u32, whole: u32) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * f64::from(part) / f64::from(whole)
    }
}

/// Refusals as `403 1020 ×280, 429 1014 ×12`.
fn refusal_list(refusals: &BTreeMap<String, u32>) -> String {
    if refusals.is_empty() {
        return "none".into();
    }
    refusals
        .iter()
        .map(|(reason, count)| format!("{reason} ×{count}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The table.
fn print_figures(figures: &Figures, preset: &str) {
    println!(
        "otpd pumping corpus, seed {}: 12 h of traffic (00:00–12:00), {} requests, run in {:.1} s, default protections, pumping preset {preset}",
        figures.seed,
        figures.requests,
        figures.elapsed.as_secs_f64()
    );
    println!();
    println!(
        "{:<55} {:>9} {:>6} {:>7} {:>12} {:>9}  refused (status code ×n)",
        "attack shape", "attempted", "sent", "sent %", "max/10 min", "spend $"
    );
    for (shape, f) in &figures.shapes {
        println!(
            "{:<55} {:>9} {:>6} {:>6.1}% {:>12} {:>9.2}  {}",
            shape.names().1,
            f.attempted,
            f.sent,
            percent(f.sent, f.attempted),
            f.most_sent_in_ten_minutes(),
            f.spend,
            refusal_list(&f.refusals)
        );
    }
    println!();
    println!(
        "{:<55} {:>9} {:>15} {:>8} {:>9}  refused starts (status code ×n)",
        "real users", "users", "falsely blocked", "share", "approved"
    );
    for (label, group) in [
        (
            format!(
                "all real users ({} countries, {} prefixes)",
                REAL_COUNTRIES.len(),
                figures.real_prefixes
            ),
            &figures.real,
        ),
        (
            format!("users of the big-city prefix {BUSY_PREFIX}"),
            &figures.busy,
        ),
    ] {
        println!(
            "{:<55} {:>9} {:>15} {:>7.1}% {:>9}  {}",
            label,
            group.users,
            group.falsely_blocked,
            group.blocked_share(),
            group.approved,
            refusal_list(&group.refusals)
        );
    }
}

/// The same figures as JSON.
fn figures_json(figures: &Figures) -> Value {
    let shapes: serde_json::Map<String, Value> = figures
        .shapes
        .iter()
        .map(|(shape, f)| {
            let (key, description) = shape.names();
            (
                key.to_string(),
                json!({
                    "description": description,
                    "attempted": f.attempted,
                    "sent": f.sent,
                    "sentPercent": percent(f.sent, f.attempted),
                    "maxSentIn10Minutes": f.most_sent_in_ten_minutes(),
                    "spend": f.spend,
                    "refusals": f.refusals,
                }),
            )
        })
        .collect();
    let group = |g: &RealFigures| {
        json!({
            "users": g.users,
            "falselyBlocked": g.falsely_blocked,
            "falselyBlockedPercent": g.blocked_share(),
            "approved": g.approved,
            "refusals": g.refusals,
        })
    };
    let mut real = group(&figures.real);
    real["countries"] = json!(REAL_COUNTRIES.len());
    real["prefixes"] = json!(figures.real_prefixes);
    let mut busy = group(&figures.busy);
    busy["prefix"] = json!(BUSY_PREFIX);
    json!({
        "seed": figures.seed,
        "simulatedHours": HOURLY_TRAFFIC.len(),
        "runSeconds": figures.elapsed.as_secs_f64(),
        "requests": figures.requests,
        "shapes": shapes,
        "real": real,
        "busyPrefix": busy,
    })
}
