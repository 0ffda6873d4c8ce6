//! The host functions of `interface host`: logging, cryptography by key id (key bytes never
//! enter plugin memory), and the policy question. A plugin may use only the key ids its
//! manifest lists, and only for the topic of the call it is serving.

use hmac::{Hmac, Mac};
use palisade_sdk::byte_list::ByteList;
use sha2::{Digest, Sha256};

use super::bindings::palisade::plugin::{host, types};
use super::bindings::LogLevel;
use super::envelope::{self, EnvelopeStore};
use super::keyring::Keyring;
use super::state::State;

/// Longest log line a plugin may write; longer ones are cut.
const MAX_LOG_CHARS: usize = 2048;

impl types::Host for State {}

impl State {
    /// Runs a host function's work off the plugin's clock.
    fn off_the_clock<R>(&mut self, f: impl FnOnce(&Self) -> R) -> R {
        let started = super::state::thread_cpu();
        let r = f(self);
        if let (Some(start), Some(end)) = (started, super::state::thread_cpu()) {
            self.clock.in_host += end.saturating_sub(start);
        }
        r
    }

    /// Runs envelope work for `topic` (which must be the call's) off the plugin's clock.
    fn with_envelopes<R>(
        &mut self,
        topic: &str,
        f: impl FnOnce(&EnvelopeStore, &Keyring) -> Result<R, envelope::EnvelopeError>,
    ) -> Result<R, String> {
        self.check_topic(topic)?;
        self.off_the_clock(|s| {
            let keyring = s.services.keyring.current();
            f(&s.services.envelopes, &keyring).map_err(|e| e.to_string())
        })
    }

    fn check_key(&self, key_id: &str) -> Result<(), String> {
        if self.grant.keys.contains(key_id) {
            Ok(())
        } else {
            Err(format!(
                "key `{key_id}` is not listed in the `keys` of plugin `{}`",
                self.grant.plugin
            ))
        }
    }

    fn check_topic(&self, topic: &str) -> Result<(), String> {
        match &self.call {
            Some(call) if call.topic == topic => Ok(()),
            Some(call) => Err(format!(
                "topic `{topic}` is not the topic of this call (`{}`)",
                call.topic
            )),
            None => Err("cryptography is only available while serving a batch".into()),
        }
    }
}

impl host::Host for State {
    fn log(&mut self, level: LogLevel, message: String) {
        let message: String = message.chars().take(MAX_LOG_CHARS).collect();
        let plugin = self.grant.plugin.as_str();
        match level {
            LogLevel::Trace => tracing::trace!(plugin, "{message}"),
            LogLevel::Debug => tracing::debug!(plugin, "{message}"),
            LogLevel::Info => tracing::info!(plugin, "{message}"),
            LogLevel::Warn => tracing::warn!(plugin, "{message}"),
            LogLevel::Error => tracing::error!(plugin, "{message}"),
        }
    }

    fn encrypt(
        &mut self,
        key_id: String,
        topic: String,
        plaintext: Vec<u8>,
        aad: Vec<u8>,
    ) -> Result<Vec<u8>, String> {
        self.check_key(&key_id)?;
        self.with_envelopes(&topic, |store, keyring| {
            store.encrypt(keyring, &key_id, &topic, &plaintext, &aad)
        })
    }

    fn decrypt(
        &mut self,
        topic: String,
        ciphertext: Vec<u8>,
        aad: Vec<u8>,
    ) -> Result<Vec<u8>, String> {
        let header = envelope::parse(&ciphertext).map_err(|e| e.to_string())?;
        self.check_key(header.kek)?;
        self.with_envelopes(&topic, |store, keyring| {
            store.decrypt(keyring, &topic, &ciphertext, &aad)
        })
    }

    fn encrypt_many(
        &mut self,
        key_id: String,
        topic: String,
        plaintexts: Vec<u8>,
        aads: Vec<u8>,
    ) -> Result<Vec<u8>, String> {
        self.check_key(&key_id)?;
        self.with_envelopes(&topic, |store, keyring| {
            store.encrypt_many(keyring, &key_id, &topic, &plaintexts, &aads)
        })
    }

    fn decrypt_many(
        &mut self,
        topic: String,
        ciphertexts: Vec<u8>,
        aads: Vec<u8>,
    ) -> Result<Vec<u8>, String> {
        // Every key id the ciphertexts name must be one the plugin may use.
        let list = ByteList::parse(&ciphertexts).map_err(|e| e.to_string())?;
        for (i, ciphertext) in list.iter().enumerate() {
            let header = envelope::parse(ciphertext).map_err(|e| format!("item {i}: {e}"))?;
            self.check_key(header.kek)
                .map_err(|e| format!("item {i}: {e}"))?;
        }
        self.with_envelopes(&topic, |store, keyring| {
            store.decrypt_many(keyring, &topic, &ciphertexts, &aads)
        })
    }

    fn hmac_sha256(&mut self, key_id: String, data: Vec<u8>) -> Result<Vec<u8>, String> {
        self.check_key(&key_id)?;
        self.off_the_clock(|s| {
            let keyring = s.services.keyring.current();
            let key = keyring
                .get(&key_id)
                .ok_or_else(|| format!("key `{key_id}` is not in the keyring"))?;
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.bytes())
                .map_err(|_| "hmac key".to_string())?;
            mac.update(&data);
            Ok(mac.finalize().into_bytes().to_vec())
        })
    }

    fn ed25519_verify(
        &mut self,
        public_key: Vec<u8>,
        message: Vec<u8>,
        signature: Vec<u8>,
    ) -> bool {
        self.off_the_clock(|_| ed25519_verify(&public_key, &message, &signature))
    }

    fn sha256(&mut self, data: Vec<u8>) -> Vec<u8> {
        self.off_the_clock(|_| Sha256::digest(&data).to_vec())
    }

    fn authorize(&mut self, principal: String, action: String, topic: String) -> bool {
        self.off_the_clock(|s| {
            let Some(call) = &s.call else {
                return false;
            };
            let question = super::oracle::Question {
                plugin: &s.grant.plugin,
                principal: &principal,
                action: &action,
                topic: &topic,
            };
            s.services.oracle().allowed(&question, &call.caller)
        })
    }
}

fn ed25519_verify(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    let Ok(key) = <[u8; 32]>::try_from(public_key) else {
        return false;
    };
    let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(&key) else {
        return false;
    };
    let Ok(signature) = ed25519_dalek::Signature::from_slice(signature) else {
        return false;
    };
    key.verify_strict(message, &signature).is_ok()
}
