//! CreateAcls, DescribeAcls, DeleteAcls: Kafka ACLs stored as generated Cedar policies (see
//! [`crate::authz::acls`]). Creating and deleting need Alter on the cluster, describing needs
//! Describe on it, as in Kafka.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};

use super::access::Access;
use super::RequestContext;
use crate::authz::acl_store::{self, AclStoreError};
use crate::authz::acls::{AclBinding, AclFilter};
use crate::authz::Action;
use crate::broker::Broker;

/// An ACL binding as the audit trail names it.
fn acl_label(b: &AclBinding) -> String {
    format!(
        "id={},principal={},host={},operation={},permission={},resource_type={},resource={},pattern={}",
        b.id(),
        b.principal,
        b.host,
        b.operation,
        b.permission,
        b.resource_type,
        b.resource_name,
        b.pattern_type
    )
}

use super::str_bytes as s;

fn store_error(e: &AclStoreError) -> ResponseError {
    match e {
        AclStoreError::Invalid(_) | AclStoreError::Rejected(_) => ResponseError::InvalidRequest,
        AclStoreError::Io { .. } => ResponseError::UnknownServerError,
    }
}

pub fn create(broker: &Broker, ctx: &RequestContext, req: CreateAclsRequest) -> CreateAclsResponse {
    let fail = |code: ResponseError, message: String| {
        AclCreationResult::default()
            .with_error_code(code.code())
            .with_error_message(Some(s(message)))
    };
    if !Access::new(broker, ctx).cluster(Action::Alter) {
        let results = req
            .creations
            .iter()
            .map(|_| {
                fail(
                    ResponseError::ClusterAuthorizationFailed,
                    "not authorized to create ACLs (Alter on the cluster)".into(),
                )
            })
            .collect();
        return CreateAclsResponse::default().with_results(results);
    }
    let bindings: Vec<AclBinding> = req
        .creations
        .into_iter()
        .map(|c| AclBinding {
            resource_type: c.resource_type,
            resource_name: c.resource_name.to_string(),
            pattern_type: c.resource_pattern_type,
            principal: c.principal.to_string(),
            host: c.host.to_string(),
            operation: c.operation,
            permission: c.permission_type,
        })
        .collect();
    let checks: Vec<Result<(), String>> = bindings
        .iter()
        .map(|b| b.validate().map_err(|e| e.0))
        .collect();
    let valid: Vec<AclBinding> = bindings
        .iter()
        .zip(&checks)
        .filter(|(_, c)| c.is_ok())
        .map(|(b, _)| b.clone())
        .collect();
    let stored = if valid.is_empty() {
        Ok(())
    } else {
        acl_store::modify(&broker.authorizer, |all| {
            for b in valid {
                if !all.contains(&b) {
                    all.push(b);
                }
            }
        })
    };
    let results = checks
        .into_iter()
        .zip(&bindings)
        .map(|(check, b)| match (check, &stored) {
            (Err(reason), _) => fail(ResponseError::InvalidRequest, reason),
            (Ok(()), Err(e)) => fail(store_error(e), e.to_string()),
            (Ok(()), Ok(())) => {
                tracing::info!(principal = %ctx.principal, acl = %b.id(), resource = %b.resource_name, "created ACL");
                broker.audit.record(crate::audit::Event::acl_changed(
                    &crate::audit::Origin::of_request(ctx),
                    true,
                    &acl_label(b),
                    true,
                ));
                AclCreationResult::default()
            }
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}

pub fn describe(
    broker: &Broker,
    ctx: &RequestContext,
    req: DescribeAclsRequest,
) -> DescribeAclsResponse {
    if !Access::new(broker, ctx).cluster(Action::Describe) {
        return DescribeAclsResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            .with_error_message(Some(s(
                "not authorized to describe ACLs (Describe on the cluster)",
            )));
    }
    let filter = AclFilter {
        resource_type: req.resource_type_filter,
        resource_name: req.resource_name_filter.map(|n| n.to_string()),
        pattern_type: req.pattern_type_filter,
        principal: req.principal_filter.map(|n| n.to_string()),
        host: req.host_filter.map(|n| n.to_string()),
        operation: req.operation,
        permission: req.permission_type,
    };
    let bindings = match acl_store::list(&broker.authorizer) {
        Ok(b) => b,
        Err(e) => {
            return DescribeAclsResponse::default()
                .with_error_code(store_error(&e).code())
                .with_error_message(Some(s(e.to_string())))
        }
    };
    let mut resources: Vec<DescribeAclsResource> = Vec::new();
    for b in bindings.iter().filter(|b| filter.matches(b)) {
        let acl = AclDescription::default()
            .with_principal(s(b.principal.clone()))
            .with_host(s(b.host.clone()))
            .with_operation(b.operation)
            .with_permission_type(b.permission);
        let same = |r: &&mut DescribeAclsResource| {
            r.resource_type == b.resource_type
                && r.resource_name.as_str() == b.resource_name
                && r.pattern_type == b.pattern_type
        };
        match resources.iter_mut().find(same) {
            Some(r) => r.acls.push(acl),
            None => resources.push(
                DescribeAclsResource::default()
                    .with_resource_type(b.resource_type)
                    .with_resource_name(s(b.resource_name.clone()))
                    .with_pattern_type(b.pattern_type)
                    .with_acls(vec![acl]),
            ),
        }
    }
    DescribeAclsResponse::default().with_resources(resources)
}

pub fn delete(broker: &Broker, ctx: &RequestContext, req: DeleteAclsRequest) -> DeleteAclsResponse {
    if !Access::new(broker, ctx).cluster(Action::Alter) {
        let results = req
            .filters
            .iter()
            .map(|_| {
                DeleteAclsFilterResult::default()
                    .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
                    .with_error_message(Some(s(
                        "not authorized to delete ACLs (Alter on the cluster)",
                    )))
            })
            .collect();
        return DeleteAclsResponse::default().with_filter_results(results);
    }
    let filters: Vec<AclFilter> = req
        .filters
        .into_iter()
        .map(|f| AclFilter {
            resource_type: f.resource_type_filter,
            resource_name: f.resource_name_filter.map(|n| n.to_string()),
            pattern_type: f.pattern_type_filter,
            principal: f.principal_filter.map(|n| n.to_string()),
            host: f.host_filter.map(|n| n.to_string()),
            operation: f.operation,
            permission: f.permission_type,
        })
        .collect();
    let removed = acl_store::modify(&broker.authorizer, |all| {
        filters
            .iter()
            .map(|f| {
                let (gone, kept): (Vec<AclBinding>, Vec<AclBinding>) =
                    std::mem::take(all).into_iter().partition(|b| f.matches(b));
                *all = kept;
                gone
            })
            .collect::<Vec<_>>()
    });
    let results = match removed {
        Err(e) => filters
            .iter()
            .map(|_| {
                DeleteAclsFilterResult::default()
                    .with_error_code(store_error(&e).code())
                    .with_error_message(Some(s(e.to_string())))
            })
            .collect(),
        Ok(per_filter) => per_filter
            .into_iter()
            .map(|gone| {
                for b in &gone {
                    tracing::info!(principal = %ctx.principal, acl = %b.id(), resource = %b.resource_name, "deleted ACL");
                    broker.audit.record(crate::audit::Event::acl_changed(
                        &crate::audit::Origin::of_request(ctx),
                        false,
                        &acl_label(b),
                        true,
                    ));
                }
                DeleteAclsFilterResult::default().with_matching_acls(
                    gone.into_iter()
                        .map(|b| {
                            DeleteAclsMatchingAcl::default()
                                .with_resource_type(b.resource_type)
                                .with_resource_name(s(b.resource_name))
                                .with_pattern_type(b.pattern_type)
                                .with_principal(s(b.principal))
                                .with_host(s(b.host))
                                .with_operation(b.operation)
                                .with_permission_type(b.permission)
                        })
                        .collect(),
                )
            })
            .collect(),
    };
    DeleteAclsResponse::default().with_filter_results(results)
}
