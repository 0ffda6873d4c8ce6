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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::RecordListBuilder;
    use crate::verdict::Rejection;

    struct Echo {
        tag: String,
    }

    impl Plugin for Echo {
        fn init(config: &str) -> Result<Self, String> {
            if config == "bad" {
                return Err("bad config".to_string());
            }
            Ok(Echo {
                tag: config.to_string(),
            })
        }

        fn on_produce(&self, _ctx: &CallContext, records: &RecordList<'_>) -> ProduceVerdict {
            ProduceVerdict::reject_all(records.len(), &self.tag)
        }
    }

    struct Other;

    impl Plugin for Other {
        fn init(_config: &str) -> Result<Self, String> {
            Ok(Other)
        }
    }

    fn two_records() -> Vec<u8> {
        let mut b = RecordListBuilder::new();
        b.push(0, 0, None, Some(b"a"), &[]).unwrap();
        b.push(1, 0, None, Some(b"b"), &[]).unwrap();
        b.finish()
    }

    fn ctx() -> CallContext {
        CallContext::new("t", "p")
    }

    #[test]
    fn hooks_before_init_fail_closed() {
        INSTANCE.with(|slot| *slot.borrow_mut() = None);
        assert_eq!(
            on_produce::<Echo>(&ctx(), &two_records()),
            ProduceVerdict::Reject(vec![
                Rejection::new(0, "plugin is not initialised"),
                Rejection::new(1, "plugin is not initialised"),
            ])
        );
        assert_eq!(
            on_fetch::<Echo>(&ctx(), &two_records()),
            FetchVerdict::Fail("plugin is not initialised".to_string())
        );
        // A failed init leaves no instance behind either.
        assert_eq!(on_init::<Echo>("bad"), Err("bad config".to_string()));
        assert!(matches!(
            on_fetch::<Echo>(&ctx(), &two_records()),
            FetchVerdict::Fail(_)
        ));
    }

    #[test]
    fn init_keeps_the_instance_for_later_calls() {
        on_init::<Echo>("first").unwrap();
        assert_eq!(
            on_produce::<Echo>(&ctx(), &two_records()),
            ProduceVerdict::reject_all(2, "first")
        );
        on_init::<Echo>("second").unwrap();
        assert_eq!(
            on_produce::<Echo>(&ctx(), &two_records()),
            ProduceVerdict::reject_all(2, "second")
        );
        // Default hooks: fetch passes.
        assert_eq!(on_fetch::<Echo>(&ctx(), &two_records()), FetchVerdict::Pass);
        // The kept instance is an Echo: asking for another type fails closed.
        assert!(matches!(
            on_produce::<Other>(&ctx(), &two_records()),
            ProduceVerdict::Reject(_)
        ));
    }

    #[test]
    fn malformed_record_lists_fail_closed() {
        on_init::<Other>("").unwrap();
        let mut bytes = two_records();
        bytes.pop();
        let ProduceVerdict::Reject(rejections) = on_produce::<Other>(&ctx(), &bytes) else {
            panic!("expected a rejection");
        };
        assert_eq!(rejections.len(), 1);
        assert!(rejections[0].reason.starts_with("malformed record list"));
        assert!(matches!(
            on_fetch::<Other>(&ctx(), &bytes),
            FetchVerdict::Fail(_)
        ));
        // The well-formed list passes Other's default hooks.
        assert_eq!(
            on_produce::<Other>(&ctx(), &two_records()),
            ProduceVerdict::Accept
        );
    }

    #[test]
    fn verdict_helpers() {
        assert_eq!(
            ProduceVerdict::reject_all(0, "r"),
            ProduceVerdict::Reject(vec![Rejection::new(0, "r")])
        );
        assert_eq!(
            ProduceVerdict::reject_or_accept(vec![]),
            ProduceVerdict::Accept
        );
        assert_eq!(Rejection::new(usize::MAX, "r").index, u32::MAX);
    }
}
