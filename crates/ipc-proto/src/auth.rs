//! Optional shared-secret authentication: a mutual HMAC-SHA256
//! challenge–response that runs before any other message.
//!
//! It works like Python's `multiprocessing.connection` authkey, in both
//! directions, so a client also knows it reached the real server:
//!
//! 1. Server → `AuthChallenge { nonce: Ns }` (32 random bytes), or
//!    `AuthNone` if the server has no secret.
//! 2. Client → `AuthResponse { client_nonce: Nc, proof: Pc }` with
//!    `Pc = HMAC-SHA256(secret, "tessera-auth-v1/client" || Ns || Nc)`.
//! 3. Server checks `Pc` in constant time. Wrong: `AuthFailed { reason }`
//!    and close. Right: `AuthOk { proof: Ps }` with
//!    `Ps = HMAC-SHA256(secret, "tessera-auth-v1/server" || Ns || Nc)`.
//! 4. Client checks `Ps` in constant time; wrong: it closes.
//!
//! The labels separate the two directions, so a proof can never be reflected
//! back; the fresh server nonce makes a recorded `AuthResponse` worthless on
//! a new connection; the client nonce makes the server's proof fresh for the
//! client. A client with a secret refuses a server that answers `AuthNone`
//! (no downgrade); a client without a secret refuses an `AuthChallenge`
//! with a clear error instead of hanging.
//!
//! Authentication proves knowledge of the secret; it does not encrypt the
//! connection. Use it on loopback or trusted networks (or inside a tunnel).

use std::fmt;
use std::io::{Read, Write};
use std::path::Path;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tracing::{debug, warn};

use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::message::{Message, NONCE_LEN};

type HmacSha256 = Hmac<Sha256>;

/// Label mixed into the client's proof.
pub const CLIENT_LABEL: &[u8] = b"tessera-auth-v1/client";
/// Label mixed into the server's proof.
pub const SERVER_LABEL: &[u8] = b"tessera-auth-v1/server";

/// A shared secret. Never empty; its `Debug` output does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<{} bytes>)", self.0.len())
    }
}

impl Secret {
    /// A secret from bytes; empty is refused.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self> {
        let bytes = bytes.into();
        if bytes.is_empty() {
            return Err(Error::InvalidSecret {
                reason: "the secret is empty".into(),
            });
        }
        Ok(Self(bytes))
    }

    /// Reads a secret from a file. One trailing line ending (`\n` or
    /// `\r\n`) is removed, so `echo secret > file` works; an empty result is
    /// refused.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let mut bytes = std::fs::read(path)
            .map_err(|e| Error::io(format!("reading secret file {}", path.display()), e))?;
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
        }
        Self::new(bytes).map_err(|_| Error::InvalidSecret {
            reason: format!("secret file {} is empty", path.display()),
        })
    }

    fn mac(&self, label: &[u8], server_nonce: &[u8], client_nonce: &[u8]) -> HmacSha256 {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = match HmacSha256::new_from_slice(&self.0) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
        mac.update(label);
        mac.update(server_nonce);
        mac.update(client_nonce);
        mac
    }

    /// The client's proof for the two nonces.
    pub fn client_proof(
        &self,
        server_nonce: &[u8; NONCE_LEN],
        client_nonce: &[u8; NONCE_LEN],
    ) -> [u8; NONCE_LEN] {
        self.mac(CLIENT_LABEL, server_nonce, client_nonce)
            .finalize()
            .into_bytes()
            .into()
    }

    /// The server's proof for the two nonces.
    pub fn server_proof(
        &self,
        server_nonce: &[u8; NONCE_LEN],
        client_nonce: &[u8; NONCE_LEN],
    ) -> [u8; NONCE_LEN] {
        self.mac(SERVER_LABEL, server_nonce, client_nonce)
            .finalize()
            .into_bytes()
            .into()
    }

    /// Checks a proof in constant time.
    fn verify(
        &self,
        label: &[u8],
        server_nonce: &[u8; NONCE_LEN],
        client_nonce: &[u8; NONCE_LEN],
        proof: &[u8; NONCE_LEN],
    ) -> bool {
        self.mac(label, server_nonce, client_nonce)
            .verify_slice(proof)
            .is_ok()
    }
}

/// 32 bytes from the operating system's random source.
pub fn random_nonce() -> Result<[u8; NONCE_LEN]> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|e| Error::AuthFailed {
        reason: format!("no randomness for a nonce: {e}"),
    })?;
    Ok(nonce)
}

fn failed(reason: impl Into<String>) -> Error {
    Error::AuthFailed {
        reason: reason.into(),
    }
}

/// The server side of the handshake; call it right after accepting, before
/// reading anything else. Without a secret it only sends `AuthNone`.
///
/// On failure the client has been told (`AuthFailed`) and the caller must
/// close the connection.
pub fn authenticate_server<S: Read + Write>(
    conn: &mut Connection<S>,
    secret: Option<&Secret>,
) -> Result<()> {
    let Some(secret) = secret else {
        return conn.send(&Message::AuthNone);
    };
    let server_nonce = random_nonce()?;
    conn.send(&Message::AuthChallenge {
        nonce: server_nonce,
    })?;
    let reply = match conn.read_message() {
        Ok(Some(m)) => m,
        Ok(None) => return Err(failed("client closed the connection during authentication")),
        Err(e) => {
            let _ = conn.send(&Message::AuthFailed {
                reason: "invalid authentication response".into(),
            });
            return Err(e);
        }
    };
    let reject = |conn: &mut Connection<S>, reason: String| {
        warn!(%reason, "client failed authentication");
        let _ = conn.send(&Message::AuthFailed {
            reason: reason.clone(),
        });
        Err(failed(reason))
    };
    match reply {
        Message::AuthResponse {
            client_nonce,
            proof,
        } => {
            if !secret.verify(CLIENT_LABEL, &server_nonce, &client_nonce, &proof) {
                return reject(conn, "wrong proof: the client's secret differs".into());
            }
            conn.send(&Message::AuthOk {
                proof: secret.server_proof(&server_nonce, &client_nonce),
            })?;
            debug!("client authenticated");
            Ok(())
        }
        Message::Goodbye { reason } => reject(
            conn,
            format!("client gave up before authenticating: {reason}"),
        ),
        other => reject(
            conn,
            format!(
                "authentication required: expected AuthResponse, got {}",
                other.name()
            ),
        ),
    }
}

/// The client side of the handshake; call it right after connecting,
/// before sending anything else.
///
/// With a secret, the server must prove it knows the same secret. Without
/// one, a server that demands authentication gives a clear error.
pub fn authenticate_client<S: Read + Write>(
    conn: &mut Connection<S>,
    secret: Option<&Secret>,
) -> Result<()> {
    let first = conn
        .read_message()?
        .ok_or_else(|| failed("server closed the connection before authentication"))?;
    match (first, secret) {
        // The server refused the connection before authentication (e.g. too
        // many connections): pass its reason on.
        (Message::Goodbye { reason }, _) => Err(Error::PeerGoodbye { reason }),
        (Message::AuthNone, None) => Ok(()),
        (Message::AuthNone, Some(_)) => {
            let _ = conn.send(&Message::Goodbye {
                reason: "client requires authentication".into(),
            });
            Err(failed(
                "the server does not authenticate (it has no shared secret), \
                 but this client has one and requires mutual authentication",
            ))
        }
        (Message::AuthChallenge { .. }, None) => {
            let _ = conn.send(&Message::Goodbye {
                reason: "no shared secret configured on the client".into(),
            });
            Err(failed(
                "the server requires a shared secret, but none is configured",
            ))
        }
        (Message::AuthChallenge { nonce }, Some(secret)) => {
            let client_nonce = random_nonce()?;
            conn.send(&Message::AuthResponse {
                client_nonce,
                proof: secret.client_proof(&nonce, &client_nonce),
            })?;
            match conn.read_message()? {
                Some(Message::AuthOk { proof }) => {
                    if secret.verify(SERVER_LABEL, &nonce, &client_nonce, &proof) {
                        debug!("server authenticated");
                        Ok(())
                    } else {
                        Err(failed(
                            "the server's proof is wrong: it does not know the secret",
                        ))
                    }
                }
                Some(Message::AuthFailed { reason }) => {
                    Err(failed(format!("the server refused us: {reason}")))
                }
                Some(other) => Err(failed(format!(
                    "expected AuthOk or AuthFailed, got {}",
                    other.name()
                ))),
                None => Err(failed("server closed the connection during authentication")),
            }
        }
        (other, _) => Err(failed(format!(
            "expected AuthChallenge or AuthNone, got {}",
            other.name()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proofs_differ_by_direction_and_nonce() {
        let s = Secret::new("k").unwrap();
        let (a, b) = ([1u8; 32], [2u8; 32]);
        assert_ne!(s.client_proof(&a, &b), s.server_proof(&a, &b));
        assert_ne!(s.client_proof(&a, &b), s.client_proof(&b, &a));
        assert!(s.verify(CLIENT_LABEL, &a, &b, &s.client_proof(&a, &b)));
    }

    #[test]
    fn empty_secret_refused_and_debug_redacted() {
        assert!(Secret::new("").is_err());
        let s = Secret::new("hunter2").unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn secret_file_trims_one_newline() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        std::fs::write(&p, "abc\r\n").unwrap();
        assert_eq!(Secret::from_file(&p).unwrap(), Secret::new("abc").unwrap());
        std::fs::write(&p, "\n").unwrap();
        assert!(matches!(
            Secret::from_file(&p),
            Err(Error::InvalidSecret { .. })
        ));
    }
}
