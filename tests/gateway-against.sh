#!/usr/bin/env bash
# Runs the gateway's tests (tests/gateway/: rdkafka, the Python clients and kcat, field-encrypt)
# against any Kafka cluster: a Palisade gateway is started in front of it and
# real clients go through the gateway and directly to the cluster.
#
#   tests/gateway-against.sh HOST:PORT[,HOST:PORT...]
#
# The cluster must be reachable over PLAINTEXT from this machine, let an anonymous client
# create, write and read topics, and number its nodes 0..15. Every topic the tests create has
# a suffix unique to the run (nothing is deleted afterwards). The tests that kill brokers,
# reassign partitions between nodes 1..3 or run the dev default on its fixed ports run only
# against the cluster the tests start themselves, so they are skipped here.
set -euo pipefail
if [ $# -ne 1 ]; then
  sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PALISADE_UPSTREAM="$1" exec cargo test --test gateway -- --skip killed --skip reassignment --skip one_command
