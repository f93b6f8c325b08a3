use std::collections::BTreeSet;

use ipc_proto::message::kind_name;
use ipc_proto::*;
use proptest::prelude::*;

use crate::support::{arb_message, samples};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn every_message_round_trips(msg in arb_message()) {
        let bytes = msg.to_bytes().unwrap();
        let back = Message::from_bytes(&bytes, DEFAULT_MAX_FRAME).unwrap();
        prop_assert_eq!(&back, &msg);
        // The length field is exact.
        let len = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        prop_assert_eq!(len + 4, bytes.len());
    }

    #[test]
    fn random_payloads_never_panic(kind in any::<u8>(), payload in prop::collection::vec(any::<u8>(), 0..64)) {
        let f = Frame::new(kind, payload);
        let _ = Message::decode(f.as_ref());
    }
}

#[test]
fn samples_cover_every_kind() {
    let sampled: BTreeSet<u8> = samples().iter().map(Message::kind).collect();
    let known: BTreeSet<u8> = (0..=255u8).filter(|k| kind_name(*k).is_some()).collect();
    assert_eq!(sampled, known);
    for m in samples() {
        let bytes = m.to_bytes().unwrap();
        assert_eq!(Message::from_bytes(&bytes, DEFAULT_MAX_FRAME).unwrap(), m);
    }
}

#[test]
fn encode_respects_peer_max_frame() {
    let m = Message::Goodbye {
        reason: "x".repeat(100),
    };
    let mut out = Vec::new();
    assert!(matches!(
        m.encode(&mut out, 50),
        Err(Error::FrameTooLarge { .. })
    ));
    assert!(out.is_empty());
    let too_long = Message::Goodbye {
        reason: "x".repeat(70_000),
    };
    assert!(matches!(
        too_long.encode(&mut out, usize::MAX),
        Err(Error::Unencodable {
            field: "reason",
            ..
        })
    ));
    assert!(out.is_empty());
}
