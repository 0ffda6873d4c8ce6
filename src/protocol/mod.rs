//! Wire protocol: codec and dispatch table.
