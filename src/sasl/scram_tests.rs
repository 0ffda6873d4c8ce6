//! Tests of [`super::ScramServer`]: the RFC 7677 vector, full exchanges, and attacks.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use super::*;
use crate::sasl::test_client::{parse_server_first, TestClient};

const RFC_CLIENT_NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
const RFC_SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";

fn rfc_store() -> CredentialStore {
    let mut store = CredentialStore::new().unwrap();
    let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
    let m = Mechanism::ScramSha256;
    let salted = m.salted_password(b"pencil", &salt, 4096);
    store
        .set_credential("user", m, &salt, 4096, &salted)
        .unwrap();
    store
}

fn store_with(users: &[(&str, &str)]) -> CredentialStore {
    let mut store = CredentialStore::new().unwrap();
    for (user, password) in users {
        store
            .add_user(user, &Mechanism::ALL, 4096, password.as_bytes())
            .unwrap();
    }
    store
}

fn continue_message(step: Step) -> Vec<u8> {
    match step {
        Step::Continue(m) => m,
        other => panic!("expected Continue, got {other:?}"),
    }
}

/// Runs client-first and returns the server and its server-first message.
fn start(store: &CredentialStore, client: &TestClient) -> (ScramServer, Vec<u8>) {
    let mut server = ScramServer::new(client.mechanism, store);
    let first = continue_message(server.step(&client.client_first()).unwrap());
    (server, first)
}

#[test]
fn rfc7677_test_vector() {
    let store = rfc_store();
    let mut server =
        ScramServer::with_server_nonce(Mechanism::ScramSha256, &store, RFC_SERVER_NONCE);
    let first = server
        .step(format!("n,,n=user,r={RFC_CLIENT_NONCE}").as_bytes())
        .unwrap();
    assert_eq!(
        first,
        Step::Continue(
            b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
              s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
                .to_vec()
        )
    );
    let last = server
        .step(
            b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
              p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        )
        .unwrap();
    assert_eq!(
        last,
        Step::Done {
            server_final: b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".to_vec(),
            principal: "user".to_string(),
        }
    );
    assert_eq!(server.fingerprint(), store.fingerprint("user"));
}

#[test]
fn full_exchanges_with_both_hashes_and_escaped_names() {
    let store = store_with(&[("alice", "wonderland"), ("we=ird,name", "pw")]);
    for mechanism in Mechanism::ALL {
        for (user, password) in [("alice", "wonderland"), ("we=ird,name", "pw")] {
            let client = TestClient::new(mechanism, user, password);
            let (mut server, first) = start(&store, &client);
            let sf = parse_server_first(&first);
            assert!(sf.nonce.starts_with(&client.nonce));
            assert!(sf.nonce.len() >= client.nonce.len() + 32);
            assert_eq!(sf.iterations, 4096);
            let (last, expected) = client.client_final(&first);
            assert_eq!(
                server.step(&last).unwrap(),
                Step::Done {
                    server_final: expected,
                    principal: user.to_string()
                }
            );
        }
    }
}

#[test]
fn server_nonces_are_random() {
    let store = store_with(&[("alice", "pw")]);
    let client = TestClient::new(Mechanism::ScramSha512, "alice", "pw");
    let a = parse_server_first(&start(&store, &client).1).nonce;
    let b = parse_server_first(&start(&store, &client).1).nonce;
    assert_ne!(a, b);
}

#[test]
fn librdkafka_nonce_quirk_is_accepted_with_y_header() {
    let store = store_with(&[("alice", "pw")]);
    let mut client = TestClient::new(Mechanism::ScramSha256, "alice", "pw");
    client.gs2_header = "y,,".to_string();
    let (mut server, first) = start(&store, &client);
    let server_nonce = parse_server_first(&first).nonce;
    let quirk = format!("{}{server_nonce}", client.nonce);
    let (last, expected) = client.client_final_with(&first, &quirk, "eSws");
    assert!(
        matches!(server.step(&last).unwrap(), Step::Done { server_final, .. } if server_final == expected)
    );
}

#[test]
fn every_other_nonce_is_refused() {
    let store = store_with(&[("alice", "pw")]);
    let client = TestClient::new(Mechanism::ScramSha256, "alice", "pw");
    let cn = client.nonce.clone();
    type Variant<'a> = Box<dyn Fn(&str) -> String + 'a>;
    let variants: Vec<Variant> = vec![
        Box::new(|r| r[..r.len() - 1].to_string()), // truncated
        Box::new(|r| r[cn.len()..].to_string()),    // server suffix only
        Box::new(|r| format!("{r}x")),              // extra character
        Box::new(|r| format!("x{r}")),              // extra prefix
        Box::new(|r| format!("{cn}{r}x")),          // quirk plus extra
        Box::new(|r| format!("{cn}{cn}{r}")),       // client nonce three times
        Box::new(|r| format!("other{}", &r[cn.len()..])), // different client nonce
        Box::new(|r| format!("other{r}")),          // quirk with another client nonce
        Box::new(|r| r.replacen('f', "g", 1)),      // one character changed
        Box::new(|_| cn.clone()),                   // client nonce only
    ];
    for (i, variant) in variants.iter().enumerate() {
        let (mut server, first) = start(&store, &client);
        let nonce = variant(&parse_server_first(&first).nonce);
        let (last, _) = client.client_final_with(&first, &nonce, "biws");
        assert_eq!(
            server.step(&last),
            Err(SaslError::AuthenticationFailed),
            "variant {i}: {nonce}"
        );
    }
}

#[test]
fn wrong_password_and_unknown_user_look_the_same() {
    let store = store_with(&[("alice", "pw")]);
    for mechanism in Mechanism::ALL {
        let wrong = TestClient::new(mechanism, "alice", "not-pw");
        let (mut server, real_first) = start(&store, &wrong);
        let wrong_err = server.step(&wrong.client_final(&real_first).0).unwrap_err();

        let ghost = TestClient::new(mechanism, "mallory", "pw");
        let (mut server, fake_first) = start(&store, &ghost);
        let ghost_err = server.step(&ghost.client_final(&fake_first).0).unwrap_err();
        assert_eq!(wrong_err, ghost_err);
        assert_eq!(ghost_err.to_string(), "authentication failed");

        let (real, fake) = (
            parse_server_first(&real_first),
            parse_server_first(&fake_first),
        );
        assert_eq!(real.salt.len(), fake.salt.len());
        assert_eq!(real.nonce.len(), fake.nonce.len());
        // The unknown user shows the iteration count the real users have.
        assert_eq!(fake.iterations, real.iterations);
        // Deterministic: a second attempt sees the same salt, as for a real user.
        let again = parse_server_first(&start(&store, &ghost).1);
        assert_eq!(again.salt, fake.salt);
        assert_eq!(again.iterations, fake.iterations);
    }
}

#[test]
fn tampered_or_short_proofs_fail() {
    let store = store_with(&[("alice", "pw")]);
    let client = TestClient::new(Mechanism::ScramSha512, "alice", "pw");
    let (mut server, first) = start(&store, &client);
    let (last, _) = client.client_final(&first);
    let text = String::from_utf8(last).unwrap();
    let (head, proof) = text.rsplit_once(",p=").unwrap();
    let mut bytes = B64.decode(proof).unwrap();
    bytes[0] ^= 1;
    let tampered = format!("{head},p={}", B64.encode(&bytes));
    assert_eq!(
        server.step(tampered.as_bytes()),
        Err(SaslError::AuthenticationFailed)
    );

    let (mut server, first) = start(&store, &client);
    let (last, _) = client.client_final(&first);
    let text = String::from_utf8(last).unwrap();
    let (head, _) = text.rsplit_once(",p=").unwrap();
    let short = format!("{head},p={}", B64.encode(&bytes[..32]));
    assert_eq!(
        server.step(short.as_bytes()),
        Err(SaslError::AuthenticationFailed)
    );
}

#[test]
fn channel_binding_must_match_the_gs2_header() {
    let store = store_with(&[("alice", "pw")]);
    let client = TestClient::new(Mechanism::ScramSha256, "alice", "pw");
    for cb in ["eSws", "cD10bHMtdW5pcXVlLCw=", ""] {
        let (mut server, first) = start(&store, &client);
        let nonce = parse_server_first(&first).nonce;
        let (last, _) = client.client_final_with(&first, &nonce, cb);
        let err = server.step(&last).unwrap_err();
        assert!(matches!(err, SaslError::Malformed(_)), "{cb}: {err}");
    }
}

#[test]
fn authzid_mismatch_and_channel_binding_are_refused() {
    let store = store_with(&[("alice", "pw")]);
    let mut server = ScramServer::new(Mechanism::ScramSha256, &store);
    assert!(matches!(
        server.step(b"n,a=admin,n=alice,r=abc"),
        Err(SaslError::Unsupported(_))
    ));
    assert_eq!(
        server.step(b"n,,n=alice,r=abc"),
        Err(SaslError::ExchangeFinished)
    );
    let mut server = ScramServer::new(Mechanism::ScramSha256, &store);
    assert!(matches!(
        server.step(b"p=tls-server-end-point,,n=alice,r=abc"),
        Err(SaslError::Unsupported(_))
    ));
    // An authzid equal to the user name is fine.
    let mut client = TestClient::new(Mechanism::ScramSha256, "alice", "pw");
    client.gs2_header = "n,a=alice,".to_string();
    let (mut server, first) = start(&store, &client);
    assert!(matches!(
        server.step(&client.client_final(&first).0),
        Ok(Step::Done { .. })
    ));
}

#[test]
fn the_server_is_single_use() {
    let store = store_with(&[("alice", "pw")]);
    let client = TestClient::new(Mechanism::ScramSha256, "alice", "pw");
    let (mut server, first) = start(&store, &client);
    let (last, _) = client.client_final(&first);
    assert!(matches!(server.step(&last), Ok(Step::Done { .. })));
    assert_eq!(server.step(&last), Err(SaslError::ExchangeFinished));
    assert_eq!(
        server.step(&client.client_first()),
        Err(SaslError::ExchangeFinished)
    );

    // After a failure, even the correct client-final is refused.
    let (mut server, first) = start(&store, &client);
    let (last, _) = client.client_final(&first);
    assert!(server.step(b"c=biws,r=x,p=AAAA").is_err());
    assert_eq!(server.step(&last), Err(SaslError::ExchangeFinished));

    // A client-final replayed into a new exchange fails (new server nonce).
    let (mut server, _) = start(&store, &client);
    assert_eq!(server.step(&last), Err(SaslError::AuthenticationFailed));
}

#[test]
fn errors_and_debug_never_show_secrets() {
    let store = store_with(&[("alice", "hunter2")]);
    let client = TestClient::new(Mechanism::ScramSha256, "alice", "hunter2");
    let (mut server, first) = start(&store, &client);
    let (last, _) = client.client_final(&first);
    let mut bad = last.clone();
    let n = bad.len();
    bad[n - 2] = if bad[n - 2] == b'A' { b'Q' } else { b'A' };
    let err = server.step(&bad).unwrap_err().to_string();
    let proof = String::from_utf8(last).unwrap();
    let proof = proof.rsplit_once("p=").unwrap().1;
    for text in [err, format!("{server:?}"), format!("{store:?}")] {
        assert!(!text.contains("hunter2") && !text.contains(proof), "{text}");
    }
}
