//! ipc-proto: the tile protocol, framed, over TCP and Unix sockets.
//!
//! This crate is what makes the classic socket mistakes impossible for
//! tessera's clients and servers: it never assumes TCP delivers whole
//! messages, answers on the connection the request came in on, keeps one
//! connection open for many requests, sets `TCP_NODELAY`, and understands
//! half-close. It also speaks the legacy line protocol
//! (`16_58001_25480\n...stop`) of the original desktop client.
//!
//! # Layout (being built; see the ipc-proto issue)
//! - `frame`: the pure frame codec (length prefix, version, kind).
//! - `message`: the tile-service messages and their encoding.
//! - `connection`: a buffered, blocking connection over any stream.
//! - `endpoint`: `tcp:HOST:PORT` and `unix:PATH` addresses and listeners.
//! - `auth`: shared-secret HMAC challenge–response.
//! - `legacy`: the line protocol of the original C# client.
//!
//! Nothing is public yet: the crate is a skeleton that compiles.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
