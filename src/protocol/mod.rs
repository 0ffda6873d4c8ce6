//! Wire protocol: the codec (frames to typed requests and back) and the dispatch table.

pub mod codec;
pub mod dispatch;
