//! Arbitrary bytes through the legacy line decoder, whole and in pieces.
//!
//! Properties: nothing panics; the events do not depend on how the input is
//! split; every valid line is reported, its text decodes to the same tile
//! and so does `format_tile` of it; there is at most one event per line.
#![no_main]

use ipc_proto::legacy::{format_tile, LegacyDecoder, LegacyEvent};
use libfuzzer_sys::fuzz_target;

fn decode(data: &[u8], step: usize, max: usize) -> Vec<LegacyEvent> {
    let mut d = LegacyDecoder::with_max_line(max);
    let mut out = Vec::new();
    for piece in data.chunks(step.max(1)) {
        d.feed(piece, &mut out);
    }
    d.finish(&mut out);
    out
}

fuzz_target!(|data: &[u8]| {
    let (max, step) = match data.first() {
        Some(&b) => (usize::from(b % 80), usize::from(b % 13) + 1),
        None => (64, 1),
    };
    let whole = decode(data, data.len(), max);
    assert_eq!(whole, decode(data, step, max));
    assert_eq!(whole, decode(data, 1, max));
    let lines = data.split(|&b| b == b'\n').count();
    assert!(whole.len() <= lines);
    for e in &whole {
        if let LegacyEvent::Tile { tile, text } = e {
            // The text is echoed as written and names the same tile.
            assert_eq!(
                LegacyDecoder::decode_all(text.as_bytes()),
                vec![LegacyEvent::Tile {
                    tile: *tile,
                    text: text.clone()
                }]
            );
            let canonical = format_tile(*tile);
            assert_eq!(
                LegacyDecoder::decode_all(canonical.as_bytes()),
                vec![LegacyEvent::Tile {
                    tile: *tile,
                    text: canonical
                }]
            );
        }
    }
});
