//! A minimal SCRAM client for tests: drives full exchanges against [`super::ScramServer`].

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use super::scram_messages::encode_saslname;
use super::Mechanism;

pub struct TestClient {
    pub mechanism: Mechanism,
    pub user: String,
    pub password: Vec<u8>,
    pub nonce: String,
    pub gs2_header: String,
}

pub struct ServerFirst {
    pub nonce: String,
    pub salt: Vec<u8>,
    pub iterations: u32,
}

pub fn parse_server_first(message: &[u8]) -> ServerFirst {
    let text = std::str::from_utf8(message).unwrap();
    let parts: Vec<&str> = text.split(',').collect();
    assert_eq!(parts.len(), 3, "{text}");
    ServerFirst {
        nonce: parts[0].strip_prefix("r=").unwrap().to_string(),
        salt: B64.decode(parts[1].strip_prefix("s=").unwrap()).unwrap(),
        iterations: parts[2].strip_prefix("i=").unwrap().parse().unwrap(),
    }
}

impl TestClient {
    pub fn new(mechanism: Mechanism, user: &str, password: &str) -> Self {
        TestClient {
            mechanism,
            user: user.to_string(),
            password: password.as_bytes().to_vec(),
            nonce: "fyko+d2lbbFgONRv9qkxdawL".to_string(),
            gs2_header: "n,,".to_string(),
        }
    }

    pub fn bare(&self) -> String {
        format!("n={},r={}", encode_saslname(&self.user), self.nonce)
    }

    pub fn client_first(&self) -> Vec<u8> {
        format!("{}{}", self.gs2_header, self.bare()).into_bytes()
    }

    /// The client-final message answering `server_first`, sending `nonce` as `r=`, and the
    /// server-final message the client expects back.
    pub fn client_final_with(
        &self,
        server_first: &[u8],
        nonce: &str,
        channel_binding: &str,
    ) -> (Vec<u8>, Vec<u8>) {
        let sf = parse_server_first(server_first);
        let m = self.mechanism;
        let salted = m.salted_password(&self.password, &sf.salt, sf.iterations);
        let client_key = m.hmac(&salted, b"Client Key").unwrap();
        let stored_key = m.hash(&client_key);
        let server_key = m.hmac(&salted, b"Server Key").unwrap();
        let without_proof = format!("c={channel_binding},r={nonce}");
        let auth_message = format!(
            "{},{},{}",
            self.bare(),
            std::str::from_utf8(server_first).unwrap(),
            without_proof
        );
        let signature = m.hmac(&stored_key, auth_message.as_bytes()).unwrap();
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_signature = m.hmac(&server_key, auth_message.as_bytes()).unwrap();
        (
            format!("{without_proof},p={}", B64.encode(proof)).into_bytes(),
            format!("v={}", B64.encode(server_signature)).into_bytes(),
        )
    }

    /// The RFC 5802 client-final (`r=` is the server's combined nonce).
    pub fn client_final(&self, server_first: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let nonce = parse_server_first(server_first).nonce;
        let cb = B64.encode(&self.gs2_header);
        self.client_final_with(server_first, &nonce, &cb)
    }
}
