//! The `_airbyte_*` fields every format writes: a random `_airbyte_raw_id` per record (UUID v4
//! from a fast generator seeded once), and `_airbyte_meta` as `{"sync_id", "changes"}`.

use cdk::protocol::AirbyteRecordMessageMetaChange;

pub const RAW_ID: &str = "_airbyte_raw_id";
pub const EXTRACTED_AT: &str = "_airbyte_extracted_at";
pub const GENERATION_ID: &str = "_airbyte_generation_id";
pub const META: &str = "_airbyte_meta";
pub const DATA: &str = "_airbyte_data";

/// UUID v4 texts from a xorshift generator (one syscall-backed seed, not one per record).
pub struct RawIds {
    state: [u64; 2],
}

impl RawIds {
    pub fn new() -> Self {
        let seed = uuid::Uuid::new_v4().as_u128();
        Self {
            state: [(seed >> 64) as u64 | 1, seed as u64 | 1],
        }
    }

    fn next_u64(&mut self) -> u64 {
        // xorshift128+
        let [mut s1, s0] = self.state;
        self.state[0] = s0;
        s1 ^= s1 << 23;
        self.state[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
        self.state[1].wrapping_add(s0)
    }

    /// The next id, as 36 ASCII bytes: 122 random bits with the version (4) and variant
    /// (RFC 4122) bits set, in the hyphenated lower-case form.
    pub fn next_id(&mut self) -> [u8; 36] {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let hi = (self.next_u64() & !0xf000) | 0x4000;
        let lo = (self.next_u64() & !(0b11 << 62)) | (0b10 << 62);
        let bits = (u128::from(hi) << 64) | u128::from(lo);
        let mut out = [b'-'; 36];
        let mut nibble = 32;
        for (i, slot) in out.iter_mut().enumerate() {
            if matches!(i, 8 | 13 | 18 | 23) {
                continue;
            }
            nibble -= 1;
            *slot = HEX[((bits >> (nibble * 4)) & 0xf) as usize];
        }
        out
    }
}

impl Default for RawIds {
    fn default() -> Self {
        Self::new()
    }
}

/// Appends `{"sync_id":N,"changes":[...]}` to `out`.
pub fn write_meta_json(
    out: &mut Vec<u8>,
    sync_id: i64,
    source: &[AirbyteRecordMessageMetaChange],
    ours: &[AirbyteRecordMessageMetaChange],
) {
    out.extend_from_slice(b"{\"sync_id\":");
    out.extend_from_slice(itoa::Buffer::new().format(sync_id).as_bytes());
    out.extend_from_slice(b",\"changes\":[");
    for (i, change) in source.iter().chain(ours).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        // Serialising a plain struct into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, change);
    }
    out.extend_from_slice(b"]}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use cdk::protocol::ChangeReason;

    #[test]
    fn raw_ids_are_distinct_v4_uuids() {
        let mut ids = RawIds::new();
        let a = ids.next_id();
        let b = ids.next_id();
        assert_ne!(a, b);
        for id in [a, b] {
            let parsed = uuid::Uuid::parse_str(std::str::from_utf8(&id).unwrap()).unwrap();
            assert_eq!(parsed.get_version_num(), 4);
            assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122);
            assert_eq!(parsed.hyphenated().to_string().as_bytes(), id);
        }
    }

    #[test]
    fn meta_json() {
        let mut out = Vec::new();
        let change = AirbyteRecordMessageMetaChange::nulled(
            "age",
            ChangeReason::DestinationSerializationError,
        );
        write_meta_json(&mut out, 7, &[], &[change]);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"sync_id":7,"changes":[{"field":"age","change":"NULLED","reason":"DESTINATION_SERIALIZATION_ERROR"}]}"#
        );
    }
}
