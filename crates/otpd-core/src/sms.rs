//! SMS segmentation: how many parts a message costs, by the GSM 03.38 and UCS-2 rules.

/// Characters of the GSM 7-bit default alphabet (one septet each).
const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
/// Characters of the GSM extension table (an escape plus one septet: two each).
const GSM7_EXTENDED: &str = "^{}\\[~]|€\u{000C}";

/// Septets per ASCII character (0: not in GSM-7), from the two tables above: every message is
/// segmented on the start path, and searching the tables per character showed in profiles.
const GSM7_ASCII_COST: [u8; 128] = {
    let mut table = [0u8; 128];
    let basic = GSM7_BASIC.as_bytes();
    let mut i = 0;
    while i < basic.len() {
        // Bytes below 0x80 in UTF-8 are exactly the ASCII characters.
        if basic[i] < 128 {
            table[basic[i] as usize] = 1;
        }
        i += 1;
    }
    let extended = GSM7_EXTENDED.as_bytes();
    i = 0;
    while i < extended.len() {
        if extended[i] < 128 {
            table[extended[i] as usize] = 2;
        }
        i += 1;
    }
    table
};

/// Septets `c` costs in GSM-7, or `None` when only UCS-2 can carry it.
fn gsm7_cost(c: char) -> Option<u32> {
    if c.is_ascii() {
        return match GSM7_ASCII_COST[c as usize] {
            0 => None,
            cost => Some(u32::from(cost)),
        };
    }
    if GSM7_BASIC.contains(c) {
        Some(1)
    } else if GSM7_EXTENDED.contains(c) {
        Some(2)
    } else {
        None
    }
}

/// Whether `text` can go as GSM-7 (every character in the default or extension table);
/// otherwise it must be sent as Unicode (UCS-2), which some providers must be told.
pub fn is_gsm7(text: &str) -> bool {
    text.chars().all(|c| gsm7_cost(c).is_some())
}

/// The number of SMS segments `text` needs: GSM-7 160 (153 per part when concatenated),
/// otherwise UCS-2 70 (67 per part), counted in UTF-16 code units. Parts are filled greedily
/// and never split an escape pair or a surrogate pair (a conforming splitter moves the whole
/// character to the next part, which can cost one more part than dividing). Never less than
/// one.
pub fn segment_count(text: &str) -> u32 {
    let gsm7 = is_gsm7(text);
    let cost = |c: char| {
        if gsm7 {
            gsm7_cost(c).unwrap_or(2)
        } else {
            c.len_utf16() as u32
        }
    };
    let (single, multi) = if gsm7 { (160, 153) } else { (70, 67) };
    if text.chars().map(cost).sum::<u32>() <= single {
        return 1;
    }
    let mut parts = 1;
    let mut used = 0;
    for c in text.chars() {
        let units = cost(c);
        if used + units > multi {
            parts += 1;
            used = 0;
        }
        used += units;
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::{GSM7_BASIC, GSM7_EXTENDED, gsm7_cost, is_gsm7, segment_count};

    #[test]
    fn gsm7_detection_follows_the_tables() {
        assert!(is_gsm7("Your ACME code is 482910 {ref} €"));
        assert!(!is_gsm7("Your ACME code is 482910 — don't share it"));
        assert!(!is_gsm7("Ваш код 482910"));
        assert!(!is_gsm7("ç"));
    }

    #[test]
    fn gsm7_limits() {
        assert_eq!(segment_count(""), 1);
        assert_eq!(segment_count(&"a".repeat(160)), 1);
        assert_eq!(segment_count(&"a".repeat(161)), 2);
        assert_eq!(segment_count(&"a".repeat(306)), 2);
        assert_eq!(segment_count(&"a".repeat(307)), 3);
    }

    #[test]
    fn the_ascii_table_agrees_with_the_alphabets() {
        for byte in 0u8..128 {
            let c = char::from(byte);
            let expected = if GSM7_BASIC.contains(c) {
                Some(1)
            } else if GSM7_EXTENDED.contains(c) {
                Some(2)
            } else {
                None
            };
            assert_eq!(gsm7_cost(c), expected, "{c:?}");
        }
        assert_eq!(gsm7_cost('`'), None);
        assert_eq!(gsm7_cost('['), Some(2));
    }

    #[test]
    fn extension_characters_count_twice() {
        assert_eq!(segment_count(&"€".repeat(80)), 1);
        assert_eq!(segment_count(&"€".repeat(81)), 2);
    }

    #[test]
    fn ucs2_limits() {
        assert_eq!(segment_count(&"ж".repeat(70)), 1);
        assert_eq!(segment_count(&"ж".repeat(71)), 2);
        assert_eq!(segment_count(&"ж".repeat(134)), 2);
        assert_eq!(segment_count(&"ж".repeat(135)), 3);
        // One emoji is two UTF-16 code units.
        assert_eq!(segment_count(&"😀".repeat(35)), 1);
        assert_eq!(segment_count(&"😀".repeat(36)), 2);
    }

    #[test]
    fn parts_never_split_an_escape_or_a_surrogate_pair() {
        // 306 septets would fit two parts by division, but the euro sign cannot straddle
        // the boundary after 152 plain characters.
        let gsm = format!("{}€{}", "a".repeat(152), "a".repeat(152));
        assert_eq!(segment_count(&gsm), 3);
        assert_eq!(
            segment_count(&format!("{}€{}", "a".repeat(151), "a".repeat(153))),
            2
        );
        let ucs2 = format!("{}😀{}", "ж".repeat(66), "ж".repeat(66));
        assert_eq!(segment_count(&ucs2), 3);
        assert_eq!(
            segment_count(&format!("{}😀{}", "ж".repeat(65), "ж".repeat(67))),
            2
        );
    }
}
