//! AlterUserScramCredentials and DescribeUserScramCredentials (KIP-554): manage the SCRAM
//! credential store from a stock admin client.
//!
//! Only configured super users may call them until Cedar authorization decides it; everyone
//! else gets CLUSTER_AUTHORIZATION_FAILED (fail closed). The store keeps only salt, iterations,
//! StoredKey and ServerKey: the salted password a client sends is reduced to those at once.

use std::collections::BTreeSet;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};

use super::access::Access;
use super::RequestContext;
use crate::authz::Action;
use crate::broker::Broker;
use crate::sasl::{CredentialStore, Mechanism};

/// Describe needs Describe on the cluster, alter needs Alter on it (Kafka's table).
fn allowed(broker: &Broker, ctx: &RequestContext, action: Action) -> bool {
    Access::new(broker, ctx).cluster(action)
}

use super::str_bytes as s;

pub fn describe(
    broker: &Broker,
    ctx: &RequestContext,
    req: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    if !allowed(broker, ctx, Action::Describe) {
        tracing::warn!(principal = %ctx.principal, "DescribeUserScramCredentials denied");
        let denied = "not authorized to describe SCRAM credentials (Describe on the cluster)";
        // Named users get the error per user: librdkafka 2.16 frees an invalid pointer when a
        // top-level error comes with named users (seen with confluent-kafka's AdminClient).
        return match req.users.filter(|u| !u.is_empty()) {
            Some(users) => DescribeUserScramCredentialsResponse::default().with_results(
                users
                    .into_iter()
                    .map(|u| {
                        DescribeUserScramCredentialsResult::default()
                            .with_user(u.name)
                            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
                            .with_error_message(Some(s(denied)))
                    })
                    .collect(),
            ),
            None => DescribeUserScramCredentialsResponse::default()
                .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
                .with_error_message(Some(s(denied))),
        };
    }
    let store = broker.credentials.current();
    let users: Vec<(String, bool)> = match req.users {
        // null or empty: every user that has credentials.
        None => store
            .list_users()
            .into_iter()
            .map(|(u, _)| (u, false))
            .collect(),
        Some(list) if list.is_empty() => store
            .list_users()
            .into_iter()
            .map(|(u, _)| (u, false))
            .collect(),
        Some(list) => {
            let mut seen = BTreeSet::new();
            list.into_iter()
                .map(|u| {
                    let name = u.name.to_string();
                    let duplicate = !seen.insert(name.clone());
                    (name, duplicate)
                })
                .collect()
        }
    };
    let results = users
        .into_iter()
        .map(|(user, duplicate)| describe_user(&store, user, duplicate))
        .collect();
    DescribeUserScramCredentialsResponse::default().with_results(results)
}

fn describe_user(
    store: &CredentialStore,
    user: String,
    duplicate: bool,
) -> DescribeUserScramCredentialsResult {
    let result = DescribeUserScramCredentialsResult::default().with_user(s(user.clone()));
    if duplicate {
        return result
            .with_error_code(ResponseError::DuplicateResource.code())
            .with_error_message(Some(s(format!("user `{user}` named twice"))));
    }
    let infos: Vec<CredentialInfo> = [Mechanism::ScramSha256, Mechanism::ScramSha512]
        .into_iter()
        .filter_map(|m| {
            store.lookup(&user, m).map(|c| {
                CredentialInfo::default()
                    .with_mechanism(m.kafka_type())
                    .with_iterations(i32::try_from(c.iterations).unwrap_or(i32::MAX))
            })
        })
        .collect();
    if infos.is_empty() {
        return result
            .with_error_code(ResponseError::ResourceNotFound.code())
            .with_error_message(Some(s(format!("no SCRAM credentials for user `{user}`"))));
    }
    result.with_credential_infos(infos)
}

pub fn alter(
    broker: &Broker,
    ctx: &RequestContext,
    req: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    let permitted = allowed(broker, ctx, Action::Alter);
    let mut results = Vec::new();
    for d in req.deletions {
        let user = d.name.to_string();
        let outcome = if !permitted {
            Err((
                ResponseError::ClusterAuthorizationFailed,
                "not authorized to alter SCRAM credentials (Alter on the cluster)".to_string(),
            ))
        } else {
            match Mechanism::from_kafka_type(d.mechanism) {
                None => Err((
                    ResponseError::UnsupportedSaslMechanism,
                    format!("unknown mechanism {}", d.mechanism),
                )),
                Some(m) => broker
                    .credentials
                    .update(|store| store.delete_credential(&user, m))
                    .map_err(|e| (ResponseError::ResourceNotFound, e.to_string())),
            }
        };
        results.push(result(broker, ctx, &user, "deleted", outcome));
    }
    for u in req.upsertions {
        let user = u.name.to_string();
        let outcome = if !permitted {
            Err((
                ResponseError::ClusterAuthorizationFailed,
                "not authorized to alter SCRAM credentials (Alter on the cluster)".to_string(),
            ))
        } else {
            match (
                Mechanism::from_kafka_type(u.mechanism),
                u32::try_from(u.iterations),
            ) {
                (None, _) => Err((
                    ResponseError::UnsupportedSaslMechanism,
                    format!("unknown mechanism {}", u.mechanism),
                )),
                (_, Err(_)) => Err((
                    ResponseError::UnacceptableCredential,
                    "iterations must be positive".to_string(),
                )),
                (Some(m), Ok(iterations)) => broker
                    .credentials
                    .update(|store| {
                        store.set_credential(&user, m, &u.salt, iterations, &u.salted_password)
                    })
                    .map_err(|e| (ResponseError::UnacceptableCredential, e.to_string())),
            }
        };
        results.push(result(broker, ctx, &user, "upserted", outcome));
    }
    AlterUserScramCredentialsResponse::default().with_results(results)
}

fn result(
    broker: &Broker,
    ctx: &RequestContext,
    user: &str,
    action: &str,
    outcome: Result<(), (ResponseError, String)>,
) -> AlterUserScramCredentialsResult {
    let r = AlterUserScramCredentialsResult::default().with_user(s(user));
    let refusal = outcome.as_ref().err().map(|(_, m)| m.as_str());
    broker.audit.record(
        crate::audit::Event::user_credential_changed(
            &crate::audit::Origin::of_request(ctx),
            user,
            None,
            outcome.is_ok(),
            refusal,
        )
        .detail("change", action),
    );
    match outcome {
        Ok(()) => {
            tracing::info!(principal = %ctx.principal, user, "SCRAM credential {action}");
            r
        }
        Err((code, message)) => {
            tracing::warn!(principal = %ctx.principal, user, "SCRAM credential change refused: {message}");
            r.with_error_code(code.code())
                .with_error_message(Some(s(message)))
        }
    }
}
