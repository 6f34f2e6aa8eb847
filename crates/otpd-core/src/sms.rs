//! SMS segmentation: how many parts a message costs, by the GSM 03.38 and UCS-2 rules.

/// Characters of the GSM 7-bit default alphabet (one septet each).
const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
/// Characters of the GSM extension table (an escape plus one septet: two each).
const GSM7_EXTENDED: &str = "^{}\\[~]|€\u{000C}";

/// The number of SMS segments `text` needs: GSM-7 160 (153 per part when concatenated),
/// otherwise UCS-2 70 (67 per part), counted in UTF-16 code units. Never less than one.
pub fn segment_count(text: &str) -> u32 {
    let mut septets = 0u32;
    let mut gsm7 = true;
    for c in text.chars() {
        if GSM7_BASIC.contains(c) {
            septets += 1;
        } else if GSM7_EXTENDED.contains(c) {
            septets += 2;
        } else {
            gsm7 = false;
            break;
        }
    }
    let (units, single, multi) = if gsm7 {
        (septets, 160, 153)
    } else {
        (text.encode_utf16().count() as u32, 70, 67)
    };
    if units <= single {
        1
    } else {
        units.div_ceil(multi)
    }
}

#[cfg(test)]
mod tests {
    use super::segment_count;

    #[test]
    fn gsm7_limits() {
        assert_eq!(segment_count(""), 1);
        assert_eq!(segment_count(&"a".repeat(160)), 1);
        assert_eq!(segment_count(&"a".repeat(161)), 2);
        assert_eq!(segment_count(&"a".repeat(306)), 2);
        assert_eq!(segment_count(&"a".repeat(307)), 3);
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
}
