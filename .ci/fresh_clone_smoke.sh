#!/usr/bin/env bash
# The README's first command on a fresh clone: `git clone` of this checkout's HEAD (not the
# working tree, whose ignored files would hide a missing or tracked one), `palisade serve` there
# with no config, then the README's client commands against it: kcat -L over PLAINTEXT (9092),
# a SCRAM login over SASL_SSL (9093) after `palisade user add`, kcat -L over mTLS (9094) with
# the generated client certificate; SIGTERM must end it with exit 0.
#
# Usage: .ci/fresh_clone_smoke.sh BINARY   (an already built palisade; README's command builds
# a release binary first, which is the same code)
set -euo pipefail

binary="$(realpath "${1:?usage: fresh_clone_smoke.sh BINARY}")"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
head="$(git -C "$repo" rev-parse HEAD)"
deadline_secs="${SMOKE_DEADLINE_SECS:-120}"

work="$(mktemp -d)"
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "fresh-clone smoke: FAILED: $*" >&2
  if [ -f "$work/serve.log" ]; then
    echo "--- palisade serve log ---" >&2
    tail -n 40 "$work/serve.log" >&2
  fi
  exit 1
}

for port in 9092 9093 9094 9644; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    fail "port $port is already in use; the dev default needs 9092-9094 and 9644"
  fi
done

# The committed tree exactly: clone the repository, then check out this HEAD (works from a
# worktree or a branch that is not the clone's default).
git clone -q --no-checkout "$repo" "$work/clone"
git -C "$work/clone" checkout -q --detach "$head"
clone="$work/clone"
[ ! -e "$clone/credentials.json" ] || fail "credentials.json is in the clone (tracked in git)"

cd "$clone"
"$binary" serve >"$work/serve.log" 2>&1 &
pid=$!

# Polls `cmd...` until it succeeds, the broker exits, or the deadline passes.
until_ok() {
  local what="$1"; shift
  local end=$((SECONDS + deadline_secs))
  until "$@" >"$work/last.out" 2>&1; do
    kill -0 "$pid" 2>/dev/null || fail "palisade serve exited while waiting for $what"
    [ "$SECONDS" -lt "$end" ] || fail "$what not within ${deadline_secs}s: $(tail -n 5 "$work/last.out")"
    sleep 0.2
  done
}

listening() {
  for port in 9092 9093 9094; do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || return 1; done
}
until_ok "the listeners 9092, 9093, 9094" listening

mode="$(stat -c %a credentials.json)"
[ "$mode" = 600 ] || fail "credentials.json created with mode $mode, not 600"

# kcat -L that got the broker list.
kcat_ok() {
  local out
  out="$(kcat -m 10 "$@" -L 2>&1)" && grep -q ' brokers:' <<<"$out" && return 0
  echo "$out"
  return 1
}

until_ok "kcat -L on 9092 (PLAINTEXT)" kcat_ok -b 127.0.0.1:9092

echo 'a-long-passphrase' | "$binary" user add smoke --password-stdin >/dev/null \
  || fail "palisade user add"
# The broker reloads the credential file on change: poll until the login succeeds.
until_ok "a SCRAM-SHA-512 login on 9093 (SASL_SSL)" kcat_ok -b 127.0.0.1:9093 \
  -X security.protocol=sasl_ssl -X sasl.mechanisms=SCRAM-SHA-512 \
  -X sasl.username=smoke -X sasl.password=a-long-passphrase -X ssl.ca.location=certs/ca.pem

# A wrong password must not get in (the check above is not vacuous).
if kcat -m 5 -b 127.0.0.1:9093 -X security.protocol=sasl_ssl -X sasl.mechanisms=SCRAM-SHA-512 \
  -X sasl.username=smoke -X sasl.password=wrong-passphrase -X ssl.ca.location=certs/ca.pem \
  -L >/dev/null 2>&1; then
  fail "a wrong password was accepted on 9093"
fi

until_ok "kcat -L on 9094 (mTLS, certs/admin.pem)" kcat_ok -b 127.0.0.1:9094 \
  -X security.protocol=ssl -X ssl.ca.location=certs/ca.pem \
  -X ssl.certificate.location=certs/admin.pem -X ssl.key.location=certs/admin-key.pem

kill -TERM "$pid"
status=0
wait "$pid" || status=$?
pid=""
[ "$status" -eq 0 ] || fail "palisade serve exited with $status after SIGTERM"
echo "fresh-clone smoke: ok (serve, kcat on 9092, SCRAM on 9093, mTLS on 9094, SIGTERM exit 0)"
