//! The glue between the WIT exports and a `Plugin`: `export_plugin!` and the functions it calls.
//!
//! The instance `init` returns lives in a thread-local slot (a Wasm instance has one thread) and
//! serves every later call until the next `init`. Hooks called before a successful `init`, or
//! with a record list that does not parse, fail closed: produce rejects, fetch fails.

use std::any::Any;
use std::cell::RefCell;

use crate::plugin::Plugin;
use crate::records::RecordList;
use crate::verdict::{CallContext, FetchVerdict, ProduceVerdict};

thread_local! {
    static INSTANCE: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
}

/// Makes `$plugin` (a type implementing [`Plugin`](crate::Plugin)) the plugin's entry point.
/// Use it once per plugin crate. On wasm32 it exports the WIT functions `init`, `on-produce`
/// and `on-fetch`; natively it only checks that the type is a `Plugin`, so the same source
/// builds for unit tests.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct PalisadeExports;

            impl $crate::__private::Guest for PalisadeExports {
                fn init(
                    config: ::std::string::String,
                ) -> ::core::result::Result<(), ::std::string::String> {
                    $crate::__private::on_init::<$plugin>(&config)
                }

                fn on_produce(
                    ctx: $crate::__private::WitCallContext,
                    records: ::std::vec::Vec<u8>,
                ) -> $crate::__private::WitProduceVerdict {
                    $crate::__private::wit_on_produce::<$plugin>(ctx, &records)
                }

                fn on_fetch(
                    ctx: $crate::__private::WitCallContext,
                    records: ::std::vec::Vec<u8>,
                ) -> $crate::__private::WitFetchVerdict {
                    $crate::__private::wit_on_fetch::<$plugin>(ctx, &records)
                }
            }

    $crate::__private::export!(PalisadeExports with_types_in $crate::__private::bindings);
        };

        #[cfg(not(target_arch = "wasm32"))]
        const _: fn() = || {
            fn is_plugin<P: $crate::Plugin>() {}
            is_plugin::<$plugin>();
        };
    };
}

/// `init`: builds the instance and keeps it for later calls.
pub fn on_init<P: Plugin>(config: &str) -> Result<(), String> {
    #[cfg(target_arch = "wasm32")]
    log_panics();
    let plugin = P::init(config)?;
    INSTANCE.with(|slot| match slot.try_borrow_mut() {
        Ok(mut slot) => {
            *slot = Some(Box::new(plugin));
            Ok(())
        }
        Err(_) => Err("init called while a hook was running".to_string()),
    })
}

/// `on-produce` over raw bytes.
pub fn on_produce<P: Plugin>(ctx: &CallContext, records: &[u8]) -> ProduceVerdict {
    let list = match RecordList::parse(records) {
        Ok(list) => list,
        Err(e) => return ProduceVerdict::reject_all(1, &e.to_string()),
    };
    with_instance::<P, _>(|p| p.on_produce(ctx, &list))
        .unwrap_or_else(|| ProduceVerdict::reject_all(list.len(), "plugin is not initialised"))
}

/// `on-fetch` over raw bytes.
pub fn on_fetch<P: Plugin>(ctx: &CallContext, records: &[u8]) -> FetchVerdict {
    let list = match RecordList::parse(records) {
        Ok(list) => list,
        Err(e) => return FetchVerdict::Fail(e.to_string()),
    };
    with_instance::<P, _>(|p| p.on_fetch(ctx, &list))
        .unwrap_or_else(|| FetchVerdict::Fail("plugin is not initialised".to_string()))
}

/// Sends panic messages to the broker's log. std's default hook would read the environment and
/// write to stderr, WASI imports the broker links as traps, so the operator would only see
/// "unknown import" instead of the message. After the hook the panic aborts: an `unreachable`
/// trap, as before.
#[cfg(target_arch = "wasm32")]
fn log_panics() {
    std::panic::set_hook(Box::new(|info| {
        crate::host::log(crate::LogLevel::Error, &format!("plugin panicked: {info}"));
    }));
}

fn with_instance<P: Plugin, R>(f: impl FnOnce(&P) -> R) -> Option<R> {
    INSTANCE.with(|slot| {
        let slot = slot.try_borrow().ok()?;
        let plugin = slot.as_ref()?.downcast_ref::<P>()?;
        Some(f(plugin))
    })
}

#[cfg(target_arch = "wasm32")]
pub use wit::{wit_on_fetch, wit_on_produce};

/// Conversions between the wit-bindgen types and the SDK's.
#[cfg(target_arch = "wasm32")]
mod wit {
    use crate::bindings::palisade::plugin::types as w;
    use crate::plugin::Plugin;
    use crate::verdict::{CallContext, FetchVerdict, ProduceVerdict};

    fn context(ctx: w::CallContext) -> CallContext {
        CallContext {
            topic: ctx.topic,
            partition: ctx.partition,
            principal: ctx.principal,
            auth_method: ctx.auth_method,
            client_id: ctx.client_id,
            listener: ctx.listener,
        }
    }

    pub fn wit_on_produce<P: Plugin>(ctx: w::CallContext, records: &[u8]) -> w::ProduceVerdict {
        match super::on_produce::<P>(&context(ctx), records) {
            ProduceVerdict::Accept => w::ProduceVerdict::Accept,
            ProduceVerdict::Reject(rejections) => w::ProduceVerdict::Reject(
                rejections
                    .into_iter()
                    .map(|r| w::RecordRejection {
                        index: r.index,
                        reason: r.reason,
                    })
                    .collect(),
            ),
            ProduceVerdict::Replace(list) => w::ProduceVerdict::Replace(list),
        }
    }

    pub fn wit_on_fetch<P: Plugin>(ctx: w::CallContext, records: &[u8]) -> w::FetchVerdict {
        match super::on_fetch::<P>(&context(ctx), records) {
            FetchVerdict::Pass => w::FetchVerdict::Pass,
            FetchVerdict::Replace(list) => w::FetchVerdict::Replace(list),
            FetchVerdict::Fail(reason) => w::FetchVerdict::Fail(reason),
        }
    }
}
