//! Refuses a Wasm build in which getrandom would use WASI randomness (a trap in the broker on the
//! first schema compile) instead of `src/seed.rs`. The repository's `.cargo/config.toml` sets the
//! flag; cargo only reads it when run from inside the repository.

fn main() {
    println!("cargo:rerun-if-env-changed=CARGO_ENCODED_RUSTFLAGS");
    let wasm = std::env::var("CARGO_CFG_TARGET_ARCH").is_ok_and(|arch| arch == "wasm32");
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    if wasm && !flags.contains("getrandom_backend=\"custom\"") {
        eprintln!(
            "json-schema: build for Wasm from inside the Palisade repository (its \
             .cargo/config.toml sets --cfg getrandom_backend=\"custom\"), or add that flag to \
             RUSTFLAGS; without it the plugin traps in the broker"
        );
        std::process::exit(1);
    }
}
