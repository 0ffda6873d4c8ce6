#!/usr/bin/env bash
# Prints the security-critical crates whose lockfile version has a newer release: a newer patch
# of the same line (take it: `cargo update`) or a newer line (a deliberate upgrade). Reads what
# `cargo update --dry-run --verbose` reports for each lockfile, so it needs nothing but the crate
# registry, changes nothing, and never fails: an unreachable registry is reported and skipped.
#
# Usage: .ci/dependency_report.sh [MANIFEST...]   (default: the broker, sdk/ and plugins/)
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Crates that parse untrusted bytes, hold keys or enforce security decisions.
critical=" $(echo wasmtime rustls tokio-rustls rustls-webpki cedar-policy tokio kafka-protocol ring \
  x509-parser rcgen aes-gcm ed25519-dalek hmac sha2 pbkdf2 flate2 zstd lz4 lz4_flex snap) "

manifests=("$@")
[ ${#manifests[@]} -gt 0 ] || manifests=(Cargo.toml sdk/Cargo.toml plugins/Cargo.toml)

# Same line: same major version, or same minor while the major is 0 (Cargo's compatibility).
same_line() {
  local a="$1" b="$2"
  local a_major="${a%%.*}" b_major="${b%%.*}"
  [ "$a_major" = "$b_major" ] || return 1
  [ "$a_major" != 0 ] && return 0
  local a_rest="${a#*.}" b_rest="${b#*.}"
  [ "${a_rest%%.*}" = "${b_rest%%.*}" ]
}

echo "security-critical crates with newer releases:"
for manifest in "${manifests[@]}"; do
  if ! out="$(CARGO_RESOLVER_INCOMPATIBLE_RUST_VERSIONS=fallback timeout 180 \
      cargo update --dry-run --verbose --manifest-path "$manifest" 2>&1)"; then
    echo "  $manifest: not checked (crate registry unreachable?): $(tail -n 1 <<<"$out")"
    continue
  fi
  found=0
  # "Updating NAME vA -> vB": the lockfile is behind a release its requirement allows.
  # "Unchanged NAME vA (available: vB)": the requirement (or the toolchain) holds it back.
  while read -r verb name from rest; do
    [[ "$critical" == *" $name "* ]] || continue
    case "$verb" in
      Updating) to="${rest#-> v}" ;;
      Unchanged) to="${rest#(available: v}"; to="${to%)}" ;;
      *) continue ;;
    esac
    from="${from#v}"
    if same_line "$from" "$to"; then kind="newer patch"; else kind="newer line"; fi
    note=""
    [ "$verb" = Updating ] && note=" (cargo update takes it)"
    echo "  $manifest: $name $from -> $to: $kind$note"
    found=1
  done < <(sed -E 's/^[[:space:]]+//' <<<"$out" | grep -E '^(Updating|Unchanged) [^ ]+ v')
  [ "$found" = 1 ] || echo "  $manifest: all current"
done
exit 0
