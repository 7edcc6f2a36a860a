//! Writing JSON text straight into a byte buffer, for sources that build record lines
//! themselves (no `Value` tree, no serializer state).

/// Writes `text` as a quoted JSON string.
pub fn write_str(out: &mut Vec<u8>, text: &str) {
    write_utf8(out, text.as_bytes());
}

/// Writes bytes the caller has already checked are UTF-8 (say a whole row validated at once)
/// as a quoted JSON string. Bytes that are not UTF-8 would pass through unchanged.
pub fn write_utf8(out: &mut Vec<u8>, text: &[u8]) {
    out.push(b'"');
    let mut start = 0;
    for (i, &b) in text.iter().enumerate().skip(plain_prefix(text)) {
        if !NEEDS_ESCAPE[b as usize] {
            continue;
        }
        out.extend_from_slice(&text[start..i]);
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 15) as usize]);
            }
        }
        start = i + 1;
    }
    out.extend_from_slice(&text[start..]);
    out.push(b'"');
}

/// Bytes that can't appear raw in a JSON string: control characters, `"` and `\`.
static NEEDS_ESCAPE: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        table[i] = true;
        i += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// Length of the prefix of `text` that needs no escaping, found 8 bytes at a time (most text
/// has nothing to escape; each word test is exact for "there is such a byte in the word").
fn plain_prefix(text: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let mut i = 0;
    while let Some(chunk) = text.get(i..i + 8) {
        let w = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        let control = w.wrapping_sub(ONES * 0x20) & !w & HIGHS;
        let quote = has_zero(w ^ (ONES * u64::from(b'"')));
        let backslash = has_zero(w ^ (ONES * u64::from(b'\\')));
        if control | quote | backslash != 0 {
            break;
        }
        i += 8;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn escapes_what_json_requires() {
        let mut out = Vec::new();
        write_str(&mut out, "a\"b\\c\nd\u{1}é€ and a longer plain tail");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#""a\"b\\c\nd\u0001é€ and a longer plain tail""#
        );
    }

    proptest! {
        // Any text, with specials anywhere (inside or past the 8-byte words), reads back as itself.
        #[test]
        fn any_text_reads_back_through_serde(s in "\\PC*|[\\x00-\\x1f\"\\\\a-z]{0,40}") {
            let mut out = Vec::new();
            write_str(&mut out, &s);
            prop_assert_eq!(serde_json::from_slice::<String>(&out).unwrap(), s);
        }
    }
}
