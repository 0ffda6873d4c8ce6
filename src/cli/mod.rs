//! The `palisade` subcommands.
