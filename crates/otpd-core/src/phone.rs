//! Phone numbers, parsed and normalised to E.164 once at the edge with libphonenumber's rules.

use phonenumber::{Mode, country};

/// A valid phone number in E.164 form (`+33612345678`).
#[derive(Clone)]
pub struct E164Phone {
    e164: String,
    /// What the number ranges said when it was parsed (`None` for numbers read back from
    /// storage): parsing and typing a number runs libphonenumber's regular expressions,
    /// about a fifth of a start's request-path time when it was done twice.
    ranges: Option<NumberRanges>,
}

/// Equal when the E.164 text is: the cached ranges are derived from it.
impl PartialEq for E164Phone {
    fn eq(&self, other: &E164Phone) -> bool {
        self.e164 == other.e164
    }
}

impl Eq for E164Phone {}

impl std::hash::Hash for E164Phone {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.e164.hash(state);
    }
}

/// An ISO 3166-1 alpha-2 country code, upper case (`FR`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CountryIso([u8; 2]);

/// Why a phone number or country was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    /// A national-format number arrived without a country to read it in.
    #[error("a national number needs a country")]
    CountryMissing,
    /// The country code is not a known ISO 3166-1 alpha-2 region.
    #[error("unknown country")]
    InvalidCountry,
    /// The text is not a valid number for its country.
    #[error("invalid phone number")]
    InvalidNumber,
}

impl CountryIso {
    /// Parses a two-letter region known to the phone-number metadata (case-insensitive).
    pub fn parse(text: &str) -> Result<CountryIso, PhoneError> {
        let upper = text.trim().to_ascii_uppercase();
        let bytes: [u8; 2] = upper
            .as_bytes()
            .try_into()
            .map_err(|_| PhoneError::InvalidCountry)?;
        upper
            .parse::<country::Id>()
            .map_err(|_| PhoneError::InvalidCountry)?;
        Ok(CountryIso(bytes))
    }

    /// The two upper-case letters.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("ZZ")
    }
}

impl std::fmt::Display for CountryIso {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl E164Phone {
    /// Parses `input` (E.164, or national format read in `country`) and returns the
    /// normalised number with the country it belongs to. An E.164 number ignores `country`.
    pub fn parse(
        input: &str,
        country: Option<CountryIso>,
    ) -> Result<(E164Phone, CountryIso), PhoneError> {
        let trimmed = input.trim();
        let phone_like = trimmed
            .chars()
            .all(|c| c.is_ascii_digit() || " +-().".contains(c));
        if trimmed.is_empty() || !phone_like || !trimmed.chars().any(|c| c.is_ascii_digit()) {
            return Err(PhoneError::InvalidNumber);
        }
        let international = trimmed.starts_with('+') || trimmed.starts_with("00");
        let region = if international {
            None
        } else {
            let iso = country.ok_or(PhoneError::CountryMissing)?;
            Some(
                iso.as_str()
                    .parse::<country::Id>()
                    .map_err(|_| PhoneError::InvalidCountry)?,
            )
        };
        let number = phonenumber::parse(region, trimmed).map_err(|_| PhoneError::InvalidNumber)?;
        // `is_valid` is exactly "the ranges give it a type": one typing serves both.
        let ranges = NumberRanges::of(&number);
        if ranges.line_type == LineType::Unknown {
            return Err(PhoneError::InvalidNumber);
        }
        let iso = number
            .country()
            .id()
            .map(|id| CountryIso::parse(id.as_ref()))
            .transpose()?
            .or(country)
            .ok_or(PhoneError::InvalidNumber)?;
        let e164 = number.format().mode(Mode::E164).to_string();
        Ok((
            E164Phone {
                e164,
                ranges: Some(ranges),
            },
            iso,
        ))
    }

    /// Wraps a number that was validated before it was stored.
    pub fn from_trusted(e164: String) -> E164Phone {
        E164Phone { e164, ranges: None }
    }

    /// The E.164 text.
    pub fn as_str(&self) -> &str {
        &self.e164
    }

    /// The form used in logs: country code and first digits, then `***`, then the last four
    /// (`+1555***4567`), enough to correlate without exposing the subscriber.
    pub fn masked(&self) -> String {
        mask_phone(&self.e164)
    }
}

/// What kind of line a number is, from libphonenumber's number ranges (offline: a ported
/// number keeps the type of its original range).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineType {
    /// A mobile number.
    Mobile,
    /// A landline.
    FixedLine,
    /// Either (the US and Canada do not tell them apart).
    FixedLineOrMobile,
    /// Free to the caller.
    TollFree,
    /// Premium rate: the caller pays extra (the target of SMS pumping).
    PremiumRate,
    /// Cost shared between caller and receiver.
    SharedCost,
    /// Internet telephony.
    Voip,
    /// Personal numbers, pagers, UAN, voicemail and the like.
    Other,
    /// Not known.
    Unknown,
}

impl LineType {
    /// The spelling in Twilio's `lookup.carrier.type` (`mobile`, `landline`, `voip`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            LineType::Mobile => "mobile",
            LineType::FixedLine => "landline",
            LineType::FixedLineOrMobile => "fixed_line_or_mobile",
            LineType::TollFree => "toll_free",
            LineType::PremiumRate => "premium_rate",
            LineType::SharedCost => "shared_cost",
            LineType::Voip => "voip",
            LineType::Other => "other",
            LineType::Unknown => "unknown",
        }
    }

    /// Numbers that charge the sender more than a normal message: no codes go there unless a
    /// service allows it.
    pub fn is_costly(self) -> bool {
        matches!(self, LineType::PremiumRate | LineType::SharedCost)
    }
}

/// What the number ranges say about one number, from a single parse (parsing runs the
/// metadata's regular expressions: do it once per request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NumberRanges {
    /// The line type.
    pub line_type: LineType,
    /// How many digits the country calling code has (`+44` → 2).
    pub calling_code_digits: usize,
}

impl E164Phone {
    /// The number's line type.
    pub fn line_type(&self) -> LineType {
        self.ranges().line_type
    }

    /// How many digits its country calling code has (`+44…` → 2). Calling codes are a prefix
    /// code (no code begins another), so the first of the number's 1-, 2- and 3-digit
    /// prefixes that the metadata knows is the one — a table lookup, not a parse (the check
    /// path keys the pumping defence's counter by it, inside the store's serial step).
    pub fn calling_code_digits(&self) -> usize {
        if let Some(ranges) = self.ranges {
            return ranges.calling_code_digits;
        }
        let digits = self.e164.trim_start_matches('+');
        (1..=3)
            .find(|&n| {
                digits
                    .get(..n)
                    .and_then(|p| p.parse::<u16>().ok())
                    .is_some_and(|code| phonenumber::metadata::DATABASE.by_code(&code).is_some())
            })
            .unwrap_or(1)
    }

    /// The line type and calling-code length: from the parse that made this number, or
    /// (for a number read back from storage) from one parse now.
    pub fn ranges(&self) -> NumberRanges {
        if let Some(ranges) = self.ranges {
            return ranges;
        }
        match phonenumber::parse(None, &self.e164) {
            Ok(number) => NumberRanges::of(&number),
            Err(_) => NumberRanges {
                line_type: LineType::Unknown,
                calling_code_digits: 1,
            },
        }
    }
}

impl NumberRanges {
    fn of(number: &phonenumber::PhoneNumber) -> NumberRanges {
        use phonenumber::Type;
        let line_type = match number.number_type(&phonenumber::metadata::DATABASE) {
            Type::Mobile => LineType::Mobile,
            Type::FixedLine => LineType::FixedLine,
            Type::FixedLineOrMobile => LineType::FixedLineOrMobile,
            Type::TollFree => LineType::TollFree,
            Type::PremiumRate => LineType::PremiumRate,
            Type::SharedCost => LineType::SharedCost,
            Type::Voip => LineType::Voip,
            Type::Unknown => LineType::Unknown,
            _ => LineType::Other,
        };
        NumberRanges {
            line_type,
            calling_code_digits: number.code().value().to_string().len(),
        }
    }
}

/// Masks any phone-like string for logs: keeps the first five and last four characters.
pub fn mask_phone(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    if chars.len() <= 9 {
        return "***".to_string();
    }
    let head: String = chars[..5].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}***{tail}")
}

impl std::fmt::Debug for E164Phone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "E164Phone({})", self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_numbers_find_their_calling_code_without_a_parse() {
        for (number, digits) in [
            ("+14155552671", 1),
            ("+447400123456", 2),
            ("+33612345678", 2),
            ("+358401234567", 3),
            ("+5511987654321", 2),
            ("+971501234567", 3),
        ] {
            let (parsed, _) = E164Phone::parse(number, None).unwrap();
            let stored = E164Phone::from_trusted(number.to_string());
            assert_eq!(stored.calling_code_digits(), digits, "{number}");
            assert_eq!(parsed.calling_code_digits(), digits, "{number}");
            assert_eq!(stored, parsed, "equal by their text");
            assert_eq!(stored.ranges(), parsed.ranges(), "{number}");
        }
    }

    #[test]
    fn e164_numbers_are_normalised_and_their_country_derived() {
        let (phone, iso) = E164Phone::parse("+33 6 12 34 56 78", None).unwrap();
        assert_eq!(phone.as_str(), "+33612345678");
        assert_eq!(iso.as_str(), "FR");
        let (phone, iso) =
            E164Phone::parse("+447400123456", Some(CountryIso::parse("FR").unwrap())).unwrap();
        assert_eq!(phone.as_str(), "+447400123456");
        assert_eq!(iso.as_str(), "GB");
    }

    #[test]
    fn national_numbers_need_and_use_a_country() {
        assert_eq!(
            E164Phone::parse("0612345678", None),
            Err(PhoneError::CountryMissing)
        );
        let (phone, iso) =
            E164Phone::parse("06 12 34 56 78", Some(CountryIso::parse("fr").unwrap())).unwrap();
        assert_eq!(phone.as_str(), "+33612345678");
        assert_eq!(iso.as_str(), "FR");
    }

    #[test]
    fn invalid_numbers_and_countries_are_refused() {
        assert_eq!(
            E164Phone::parse("+1234", None),
            Err(PhoneError::InvalidNumber)
        );
        assert_eq!(
            E164Phone::parse("hello", None),
            Err(PhoneError::InvalidNumber)
        );
        assert_eq!(CountryIso::parse("UK"), Err(PhoneError::InvalidCountry));
        assert_eq!(CountryIso::parse("FRA"), Err(PhoneError::InvalidCountry));
    }

    #[test]
    fn line_types_come_from_the_number_ranges() {
        let kind = |n: &str| E164Phone::parse(n, None).unwrap().0.line_type();
        assert_eq!(kind("+447400123456"), LineType::Mobile);
        assert_eq!(kind("+441212345678"), LineType::FixedLine);
        assert_eq!(kind("+14155552671"), LineType::FixedLineOrMobile);
        assert_eq!(kind("+448001234567"), LineType::TollFree);
        assert_eq!(kind("+449098765432"), LineType::PremiumRate);
        assert_eq!(kind("+33810123456"), LineType::SharedCost);
        assert!(LineType::PremiumRate.is_costly() && !LineType::Mobile.is_costly());
    }

    #[test]
    fn masking_keeps_only_prefix_and_last_four() {
        assert_eq!(mask_phone("+15551234567"), "+1555***4567");
        let (phone, _) = E164Phone::parse("+33612345678", None).unwrap();
        assert_eq!(phone.masked(), "+3361***5678");
        assert!(!format!("{phone:?}").contains("612345678"));
    }
}
