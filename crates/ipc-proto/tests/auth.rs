use std::os::unix::net::UnixStream;
use std::thread;

use ipc_proto::auth::{authenticate_client, authenticate_server};
use ipc_proto::*;

fn pair() -> (Connection<UnixStream>, Connection<UnixStream>) {
    let (a, b) = UnixStream::pair().unwrap();
    (Connection::new(a), Connection::new(b))
}

fn secret(s: &str) -> Secret {
    Secret::new(s).unwrap()
}

/// Runs the server side in a thread and the client side here.
fn run(server_secret: Option<Secret>, client_secret: Option<Secret>) -> (Result<()>, Result<()>) {
    let (mut server, mut client) = pair();
    let t = thread::spawn(move || {
        let r = authenticate_server(&mut server, server_secret.as_ref());
        drop(server); // the server closes on failure
        r
    });
    let c = authenticate_client(&mut client, client_secret.as_ref());
    drop(client);
    (t.join().unwrap(), c)
}

fn auth_reason(r: Result<()>) -> String {
    match r {
        Err(Error::AuthFailed { reason }) => reason,
        other => panic!("expected AuthFailed, got {other:?}"),
    }
}

#[test]
fn success_with_same_secret() {
    let (s, c) = run(Some(secret("correct horse")), Some(secret("correct horse")));
    s.unwrap();
    c.unwrap();
}

#[test]
fn success_without_secrets() {
    let (s, c) = run(None, None);
    s.unwrap();
    c.unwrap();
}

#[test]
fn wrong_secret_fails_on_both_sides() {
    let (s, c) = run(Some(secret("a")), Some(secret("b")));
    assert!(auth_reason(s).contains("wrong proof"));
    assert!(auth_reason(c).contains("refused"));
}

#[test]
fn client_without_secret_gets_a_clear_error() {
    let (s, c) = run(Some(secret("a")), None);
    assert!(auth_reason(c).contains("requires a shared secret"));
    assert!(auth_reason(s).contains("gave up"));
}

#[test]
fn client_with_secret_refuses_unauthenticated_server() {
    let (s, c) = run(None, Some(secret("a")));
    // The server sent AuthNone and is done; the client refuses (no downgrade).
    s.unwrap();
    assert!(auth_reason(c).contains("does not authenticate"));
}

#[test]
fn replayed_response_fails() {
    let key = secret("k");

    // 1. An attacker posing as a server records a genuine client's answer.
    let (mut fake_server, mut client) = pair();
    let k2 = key.clone();
    let t = thread::spawn(move || authenticate_client(&mut client, Some(&k2)));
    fake_server
        .send(&Message::AuthChallenge { nonce: [9; 32] })
        .unwrap();
    let recorded = fake_server.read_message().unwrap().unwrap();
    assert!(matches!(recorded, Message::AuthResponse { .. }));
    drop(fake_server);
    assert!(t.join().unwrap().is_err());

    // 2. It replays that answer to the real server's fresh challenge.
    let (mut server, mut attacker) = pair();
    let t = thread::spawn(move || authenticate_server(&mut server, Some(&key)));
    let challenge = attacker.read_message().unwrap().unwrap();
    assert!(matches!(challenge, Message::AuthChallenge { nonce } if nonce != [9; 32]));
    attacker.send(&recorded).unwrap();
    assert!(matches!(
        attacker.read_message().unwrap(),
        Some(Message::AuthFailed { .. })
    ));
    assert!(auth_reason(t.join().unwrap()).contains("wrong proof"));
}

#[test]
fn skipping_auth_is_refused() {
    let (mut server, mut client) = pair();
    let t = thread::spawn(move || authenticate_server(&mut server, Some(&secret("k"))));
    assert!(matches!(
        client.read_message().unwrap(),
        Some(Message::AuthChallenge { .. })
    ));
    client
        .send(&Message::Hello(Hello {
            versions: vec![1],
            client_name: "sneaky".into(),
            capabilities: Capabilities::NONE,
        }))
        .unwrap();
    assert!(matches!(
        client.read_message().unwrap(),
        Some(Message::AuthFailed { .. })
    ));
    assert!(auth_reason(t.join().unwrap()).contains("authentication required"));
}

#[test]
fn forged_server_proof_is_detected() {
    let (mut fake_server, mut client) = pair();
    let t = thread::spawn(move || authenticate_client(&mut client, Some(&secret("k"))));
    fake_server
        .send(&Message::AuthChallenge { nonce: [1; 32] })
        .unwrap();
    let _ = fake_server.read_message().unwrap();
    fake_server
        .send(&Message::AuthOk { proof: [0; 32] })
        .unwrap();
    assert!(auth_reason(t.join().unwrap()).contains("proof is wrong"));
}

#[test]
fn full_handshake_negotiates() {
    let (mut server, mut client) = pair();
    let t = thread::spawn(move || {
        server.server_handshake(Some(&secret("k")), "srv", Capabilities::STATS)
    });
    let welcome = client
        .client_handshake(
            Some(&secret("k")),
            &Hello {
                versions: vec![1, 99],
                client_name: "cli".into(),
                capabilities: Capabilities::NONE,
            },
        )
        .unwrap();
    assert_eq!(welcome.version, 1);
    assert_eq!(welcome.server_name, "srv");
    assert_eq!(welcome.max_frame as usize, DEFAULT_MAX_FRAME);
    let (hello, version) = t.join().unwrap().unwrap();
    assert_eq!((hello.client_name.as_str(), version), ("cli", 1));
}

#[test]
fn no_common_version_gets_goodbye() {
    let (mut server, mut client) = pair();
    let t = thread::spawn(move || server.server_handshake(None, "srv", Capabilities::NONE));
    let err = client
        .client_handshake(
            None,
            &Hello {
                versions: vec![42],
                client_name: "future".into(),
                capabilities: Capabilities::NONE,
            },
        )
        .unwrap_err();
    match err {
        Error::PeerGoodbye { reason } => assert!(reason.contains("no common protocol version")),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        t.join().unwrap(),
        Err(Error::NoCommonVersion { .. })
    ));
}
