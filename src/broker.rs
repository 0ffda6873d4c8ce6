//! The state every request handler shares.

use std::sync::Arc;

use crate::config::Config;
use crate::group::GroupCoordinator;
use crate::storage::{LogManager, TopicConfig};

/// One running broker: configuration, logs and the group coordinator.
pub struct Broker {
    pub config: Arc<Config>,
    pub logs: Arc<LogManager>,
    pub groups: Arc<GroupCoordinator>,
    /// Topic config defaults, validated once at start.
    pub topic_defaults: TopicConfig,
    /// SCRAM credentials (reloaded when the file changes).
    pub credentials: crate::sasl::SharedCredentials,
    /// WebAssembly plugins and their keyring (reloaded when their files change).
    pub plugins: Arc<crate::plugin::PluginHost>,
    _credential_watcher: Option<crate::reload::Watch>,
    /// The audit trail (file + topic sinks).
    pub audit: crate::audit::Audit,
    /// Prometheus metrics.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Cedar policies (reloaded when the policy folder changes).
    pub authorizer: Arc<crate::authz::Authorizer>,
    /// Client byte-rate quotas and their buckets.
    pub quotas: Arc<crate::quota::Quotas>,
    /// Request and response bytes held in memory, broker-wide.
    pub memory: crate::memory_budget::MemoryBudget,
    /// What serves a request once the layers in front have passed it (`crate::backend`).
    pub backend: Arc<dyn crate::backend::Backend>,
    /// Gateway mode: the upstream cluster and the node ports (`None` in broker mode).
    pub gateway: Option<crate::gateway::serve::GatewayPlan>,
    upstream: Option<Arc<crate::backend::upstream::Upstream>>,
    /// Topic tags, kept in front of the backend (`crate::topic_tags`).
    pub topic_tags: Arc<dyn crate::topic_tags::TagStore>,
    _policy_watcher: Option<crate::authz::PolicyWatcher>,
    pub node_id: i32,
    pub cluster_id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid config: {0}")]
    Config(String),
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
    #[error(transparent)]
    Group(#[from] crate::group::GroupError),
    #[error(transparent)]
    Bind(#[from] crate::server::BindError),
    #[error(transparent)]
    Credentials(#[from] crate::sasl::CredentialError),
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    #[error("policy folder `{dir}` does not validate:\n{diagnostics}")]
    Policies { dir: String, diagnostics: String },
    #[error(transparent)]
    Plugins(#[from] crate::plugin::PluginError),
    #[error("client quotas: {0}")]
    Quotas(String),
    #[error(transparent)]
    Gateway(#[from] crate::gateway::serve::GatewayStartError),
    #[error(transparent)]
    TopicTags(#[from] crate::topic_tags::TagError),
}

impl Broker {
    /// Opens storage and group state (running crash recovery) for `config`.
    pub fn open(config: Config) -> Result<Arc<Self>, StartError> {
        let topic_defaults = config
            .topic_defaults()
            .map_err(|e| StartError::Config(e.to_string()))?;
        let storage = config
            .storage_config()
            .map_err(|e| StartError::Config(e.to_string()))?;
        let logs = LogManager::open(storage)?;
        let groups =
            GroupCoordinator::open_with(&config.storage.data_dir, config.group_settings())?;
        let credentials = crate::sasl::SharedCredentials::open(&config.sasl.credentials)?;
        let watcher = match credentials.watch() {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::error!("credential file is not watched (changes need a restart): {e}");
                None
            }
        };
        let authorizer = load_policies(&config)?;
        let quotas = crate::quota::Quotas::open(&config.quotas, Some(&config.storage.data_dir))
            .map(Arc::new)
            .map_err(StartError::Quotas)?;
        let metrics = Arc::new(crate::metrics::Metrics::new());
        // Kept in front of the backend: an upstream cluster refuses the tag config.
        let topic_tags: Arc<dyn crate::topic_tags::TagStore> = if config.gateway.is_enabled() {
            Arc::new(crate::topic_tags::file::FileTags::open(
                &config.storage.data_dir,
            )?)
        } else {
            Arc::new(crate::topic_tags::local::LocalTags::new(logs.clone()))
        };
        // Gateway mode: the upstream backend (nothing dialled yet), whose cluster also keeps
        // the audit topic.
        let gateway = match config.gateway.is_enabled() {
            true => Some(crate::gateway::serve::open(&config)?),
            false => None,
        };
        let audit = match &gateway {
            Some((_, plan)) => crate::audit::Audit::start_gateway(
                &config.audit,
                &config.storage.data_dir,
                plan.cluster.clone(),
                metrics.clone(),
            )?,
            None => crate::audit::Audit::start(
                &config.audit,
                &config.storage.data_dir,
                &logs,
                &topic_defaults,
                metrics.clone(),
            )?,
        };
        // Plugins' `authorize` calls are decided at the broker's one enforcement point.
        let plugins = crate::plugin::PluginHost::builder(&config.plugins, &config.storage.data_dir)
            .audit(audit.clone(), metrics.clone())
            .oracle(Box::new(crate::api::access::PluginAccess::new(
                authorizer.clone(),
                topic_tags.clone(),
                audit.clone(),
            )))
            .open()
            .inspect_err(|_| audit.close())?;
        plugins.start_watching();
        let policy_watcher = match crate::authz::PolicyWatcher::start(authorizer.clone()) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::error!("policy folder is not watched (changes need a restart): {e}");
                None
            }
        };
        let memory = crate::memory_budget::MemoryBudget::new(config.limits.memory_budget_bytes);
        let (backend, gateway, upstream): (Arc<dyn crate::backend::Backend>, _, _) =
            if let Some((upstream, plan)) = gateway {
                (upstream.clone(), Some(plan), Some(upstream))
            } else {
                let local = crate::backend::local::Local::new(
                    logs.clone(),
                    groups.clone(),
                    memory.clone(),
                    &config,
                    topic_defaults.clone(),
                );
                (Arc::new(local), None, None)
            };
        Ok(Arc::new(Broker {
            audit,
            metrics,
            node_id: config.broker.node_id,
            cluster_id: config.broker.cluster_id.clone(),
            config: Arc::new(config),
            logs,
            groups,
            topic_defaults,
            credentials,
            plugins,
            _credential_watcher: watcher,
            authorizer,
            quotas,
            memory,
            backend,
            gateway,
            upstream,
            topic_tags,
            _policy_watcher: policy_watcher,
        }))
    }

    /// Flushes logs and group state; called once every connection has finished.
    pub fn close(&self) {
        // The audit writer appends to the audit topic: stop it before the logs.
        self.audit.close();
        if let Err(e) = self.logs.shutdown() {
            tracing::error!("flushing logs on shutdown failed: {e}");
        }
        if let Err(e) = self.groups.shutdown() {
            tracing::error!("flushing group state on shutdown failed: {e}");
        }
    }
}

/// Loads the policy folder; a folder that does not validate stops the start (fail closed:
/// serving with no policy would deny everything, serving with a guess would be worse).
fn load_policies(config: &Config) -> Result<Arc<crate::authz::Authorizer>, StartError> {
    let section = &config.authorization;
    crate::authz::Authorizer::load(&section.policy_dir, section.super_users.iter().cloned())
        .map(Arc::new)
        .map_err(|diagnostics| StartError::Policies {
            dir: section.policy_dir.display().to_string(),
            diagnostics: diagnostics
                .iter()
                .map(|d| format!("  {d}"))
                .collect::<Vec<_>>()
                .join("\n"),
        })
}

/// A broker serving on its listeners, as started by `palisade serve` and by tests.
pub struct Running {
    pub broker: Arc<Broker>,
    /// Bound address of each listener, in config order.
    pub addresses: Vec<std::net::SocketAddr>,
    /// Bound address of the metrics endpoint, when `[metrics] bind` is set.
    pub metrics_address: Option<std::net::SocketAddr>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Opens the broker and starts serving every listener.
    pub async fn start(config: Config) -> Result<Self, StartError> {
        let broker = Broker::open(config)?;
        if let (Some(plan), Some(upstream)) = (&broker.gateway, &broker.upstream) {
            plan.start(upstream).await;
        }
        let listeners = crate::server::bind(&broker.config, &broker.credentials).await?;
        let addresses = listeners
            .iter()
            .filter_map(|l| l.socket.local_addr().ok())
            .collect();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let side = crate::server::side_tasks::start(&broker, &listeners)
            .await
            .map_err(crate::server::BindError::from)?;
        let metrics_address = side.metrics_address;
        let serving = broker.clone();
        let task = tokio::spawn(async move {
            crate::server::run(serving.clone(), listeners, async {
                let _ = stopped.await;
            })
            .await;
            side.stop().await;
            serving.close();
        });
        Ok(Running {
            broker,
            addresses,
            metrics_address,
            stop,
            task,
        })
    }

    /// Stops accepting, lets in-flight requests finish, flushes, and waits for all of it.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }

    /// Waits until the server stops by itself (it only does on shutdown).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}
