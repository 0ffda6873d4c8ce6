#!/usr/bin/env bash
# Fetches Apache Kafka (broker, command-line tools, Java client) and all their runtime
# dependencies into one folder, once: `$PALISADE_KAFKA_HOME/libs` (default
# ~/.cache/palisade/kafka-4.4.0/libs), a classpath of `libs/*` for `kafka.Kafka`, the tools'
# main classes and the tests' Java client. Maven resolves them with its default configuration.
#
# Idempotent and fast when cached: a `.complete` stamp holding the hash of pom.xml marks a
# finished copy; a changed pom.xml or an interrupted copy is fetched again from scratch.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
home="${PALISADE_KAFKA_HOME:-$HOME/.cache/palisade/kafka-4.4.0}"
libs="$home/libs"
stamp="$libs/.complete"
want="$(sha256sum "$here/pom.xml" | cut -d' ' -f1)"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi

command -v java >/dev/null 2>&1 || { echo "fetch.sh: java not found (Kafka 4.4 needs Java 17)" >&2; exit 1; }
command -v mvn >/dev/null 2>&1 || { echo "fetch.sh: mvn not found" >&2; exit 1; }

mkdir -p "$home"
partial="$(mktemp -d "$home/libs.partial.XXXXXX")"
trap 'rm -rf "$partial"' EXIT
echo "fetching Apache Kafka jars into $libs"
mvn -q -B -Dstyle.color=never -f "$here/pom.xml" dependency:copy-dependencies \
  -DincludeScope=runtime -DoutputDirectory="$partial"
for jar in kafka_2.13-4.4.0.jar kafka-tools-4.4.0.jar kafka-clients-4.4.0.jar; do
  [ -f "$partial/$jar" ] || { echo "fetch.sh: $jar missing after the copy" >&2; exit 1; }
done
echo "$want" > "$partial/.complete"
rm -rf "$libs"
mv "$partial" "$libs"
trap - EXIT
echo "fetched $(ls "$libs" | wc -l) jars into $libs"
