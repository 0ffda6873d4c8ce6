//! A backend for tests of the layers in front: it records every request that reaches it
//! (with the version it was asked at) and answers from a script, so a test can prove that a
//! refused request never got this far, and that an allowed one arrived unchanged.

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;
use kafka_protocol::messages::{RequestKind, ResponseKind};
use parking_lot::Mutex;

use super::{Backend, BackendError, Call};

type Script = dyn Fn(&RequestKind) -> Result<ResponseKind, BackendError> + Send + Sync;

pub struct Recording {
    seen: Mutex<Vec<(i16, RequestKind)>>,
    script: Box<Script>,
}

impl Recording {
    /// A backend answering each request with `script(request)`.
    pub fn answering(
        script: impl Fn(&RequestKind) -> Result<ResponseKind, BackendError> + Send + Sync + 'static,
    ) -> Arc<Recording> {
        Arc::new(Recording {
            seen: Mutex::new(Vec::new()),
            script: Box::new(script),
        })
    }

    /// A backend that cannot be reached: every request fails with
    /// [`BackendError::Unavailable`].
    pub fn unreachable() -> Arc<Recording> {
        Self::answering(|_| Err(BackendError::Unavailable("upstream unreachable".into())))
    }

    /// Every request that reached the backend so far, in order.
    pub fn requests(&self) -> Vec<RequestKind> {
        self.seen.lock().iter().map(|(_, r)| r.clone()).collect()
    }

    /// The version each request was asked at, in order.
    pub fn versions(&self) -> Vec<i16> {
        self.seen.lock().iter().map(|(v, _)| *v).collect()
    }
}

impl Backend for Recording {
    fn serve<'a>(
        &'a self,
        call: Call<'a>,
        request: RequestKind,
    ) -> BoxFuture<'a, Result<ResponseKind, BackendError>> {
        let answer = (self.script)(&request);
        self.seen.lock().push((call.api_version, request));
        async move { answer }.boxed()
    }

    fn produce<'a>(
        &'a self,
        _call: Call<'a>,
        _request: super::produce::ProduceBatches,
    ) -> BoxFuture<'a, super::produce::ProduceAck> {
        let ack: super::produce::ProduceAck =
            futures::future::ready(Err(BackendError::Unsupported("Produce"))).boxed();
        futures::future::ready(ack).boxed()
    }

    fn has_topic(&self, _name: &str) -> Option<bool> {
        None
    }

    fn apis(&self) -> std::sync::Arc<[crate::protocol::apis::ApiEntry]> {
        std::sync::Arc::from(crate::protocol::apis::APIS)
    }
}
