//! SMS arithmetic and rules (Altinn §4.9).

/// Length of `text` URL-encoded the way Altinn measures it (.NET `WebUtility.UrlEncode`: space
/// is `+`, `A-Z a-z 0-9 - _ . ! * ( )` stay, every other UTF-8 byte is `%XX`).
pub fn url_encoded_len(text: &str) -> usize {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'!' | b'*' | b'(' | b')' | b' ' => 1,
            _ => 3,
        })
        .sum()
}

/// Most segments one SMS may take; longer texts are cut by the gateway.
pub const MAX_SEGMENTS: u32 = 16;

/// How many SMS segments `text` takes: one up to 160 URL-encoded characters, otherwise one per
/// 134, at most 16.
pub fn segments(text: &str) -> u32 {
    let len = url_encoded_len(text);
    if len <= 160 { 1 } else { (len.div_ceil(134) as u32).min(MAX_SEGMENTS) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_follow_altinn() {
        assert_eq!(segments(""), 1);
        assert_eq!(segments(&"a".repeat(160)), 1);
        assert_eq!(segments(&"a".repeat(161)), 2);
        assert_eq!(segments(&"a".repeat(268)), 2);
        assert_eq!(segments(&"a".repeat(269)), 3);
        // "ø" is two UTF-8 bytes, six URL-encoded characters.
        assert_eq!(url_encoded_len("ø"), 6);
        assert_eq!(segments(&"ø".repeat(27)), 2);
        assert_eq!(segments(&"a".repeat(10_000)), 16);
    }
}
