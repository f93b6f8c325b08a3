//! The one integration-test binary of ipc-proto.

// Everything in this crate is test code: helpers outside `#[test]` functions
// may unwrap too (clippy.toml only exempts the test functions themselves).
#![allow(clippy::unwrap_used)]

// Shared helpers: a stream that hands out bytes in chosen chunks, sample
// messages, proptest strategies.
mod support;

// Property test: every message survives encode → decode unchanged.
mod roundtrip;
// Partial reads: one byte at a time, split at every offset, many frames per read.
mod delivery;
// Invalid input at the frame and message layers: truncated, oversized,
// unknown kind, bad version, malformed fields.
mod bad_frames;
// The shared-secret handshake: success, wrong secret, replay, missing secret.
mod auth;
// Real sockets on loopback: TCP on port 0 and Unix sockets in a tempdir,
// half-close, split, socket file mode and stale/in-use/not-a-socket paths.
mod transport;
// The legacy line protocol: decoder cases and the port+1 callback end to end.
mod legacy;
// The hex test vectors of docs/protocol.md agree with the code.
mod vectors;
