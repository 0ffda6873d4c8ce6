#!/usr/bin/env bash
# An Apache Kafka cluster in KRaft mode on loopback ports, from the jars .ci/kafka/fetch.sh
# fetched. Every node is broker and controller at once (node ids 1..N); topics are created
# explicitly (auto-create off) and default to replication factor min(3, N) with
# min.insync.replicas min(2, N).
#
#   cluster.sh start DIR    format DIR (once) and start every node in the background; prints the
#                           bootstrap address (also written to DIR/bootstrap)
#   cluster.sh stop DIR     stop the nodes started by `start` (SIGTERM, then SIGKILL after 30 s)
#   cluster.sh format DIR   write DIR/node<ID>/server.properties and format the storage
#   cluster.sh node DIR ID  run node ID in the foreground until standard input closes, then
#                           SIGKILL it (how the Rust tests run nodes: a test process that dies
#                           takes its brokers with it)
#
# Ports: KAFKA_BROKER_PORTS and KAFKA_CONTROLLER_PORTS, one per node, space separated
# (default "39092 39093 39094" and "39192 39193 39194"); their count is the number of nodes.
# Jars: ${PALISADE_KAFKA_HOME:-~/.cache/palisade/kafka-4.4.0}/libs. Heap per node: KAFKA_HEAP
# (default 512m); more JVM options: KAFKA_JVM_OPTS.
set -euo pipefail

home="${PALISADE_KAFKA_HOME:-$HOME/.cache/palisade/kafka-4.4.0}"
libs="$home/libs"
heap="${KAFKA_HEAP:-512m}"
read -r -a broker_ports <<< "${KAFKA_BROKER_PORTS:-39092 39093 39094}"
read -r -a controller_ports <<< "${KAFKA_CONTROLLER_PORTS:-39192 39193 39194}"
nodes=${#broker_ports[@]}
# Any base64 of 16 bytes names the cluster; one fixed id keeps reruns reproducible.
cluster_id="cGFsaXNhZGUtdGVzdHMtMQ"

usage() { sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }

require_jars() {
  if [ ! -f "$libs/.complete" ]; then
    echo "cluster.sh: no Kafka jars in $libs; run .ci/kafka/fetch.sh first" >&2
    exit 1
  fi
}

# kafka-run-class.sh's JVM options, reduced: small heap, G1, headless.
read -r -a extra_opts <<< "${KAFKA_JVM_OPTS:-}"
java_opts=("-Xmx$heap" -Xms64m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true
  ${extra_opts[@]+"${extra_opts[@]}"})

write_config() {
  local dir="$1" id="$2" node="$1/node$2"
  local idx=$((id - 1))
  local voters="" i
  for ((i = 0; i < nodes; i++)); do
    voters+="${voters:+,}$((i + 1))@127.0.0.1:${controller_ports[$i]}"
  done
  local rf=$((nodes < 3 ? nodes : 3)) isr=$((nodes < 2 ? nodes : 2))
  mkdir -p "$node/data"
  cat > "$node/server.properties" <<PROPS
process.roles=broker,controller
node.id=$id
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:${broker_ports[$idx]},CONTROLLER://127.0.0.1:${controller_ports[$idx]}
advertised.listeners=PLAINTEXT://127.0.0.1:${broker_ports[$idx]}
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$node/data
num.partitions=1
default.replication.factor=$rf
min.insync.replicas=$isr
offsets.topic.replication.factor=$rf
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$isr
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=2
num.recovery.threads.per.data.dir=1
log.segment.bytes=67108864
PROPS
  cat > "$node/log4j2.properties" <<PROPS
rootLogger.level=INFO
rootLogger.appenderRef.file.ref=file
appender.file.type=File
appender.file.name=file
appender.file.fileName=$node/server.log
appender.file.layout.type=PatternLayout
appender.file.layout.pattern=[%d] %p %m (%c)%n
logger.kafka.name=org.apache.kafka
logger.kafka.level=INFO
PROPS
}

format() {
  local dir="$1" id pids=()
  require_jars
  mkdir -p "$dir"
  for ((id = 1; id <= nodes; id++)); do
    write_config "$dir" "$id"
  done
  # One JVM per node, side by side; an already formatted node keeps its data.
  for ((id = 1; id <= nodes; id++)); do
    java "${java_opts[@]}" -XX:TieredStopAtLevel=1 -cp "$libs/*" kafka.tools.StorageTool format --ignore-formatted -t "$cluster_id" \
      -c "$dir/node$id/server.properties" > "$dir/node$id/format.log" 2>&1 &
    pids+=($!)
  done
  for id in "${!pids[@]}"; do
    if ! wait "${pids[$id]}"; then
      echo "cluster.sh: formatting node $((id + 1)) failed:" >&2
      cat "$dir/node$((id + 1))/format.log" >&2
      exit 1
    fi
  done
}

node_args() {
  local dir="$1" id="$2"
  node_cmd=(java "${java_opts[@]}" -cp "$libs/*"
    "-Dlog4j2.configurationFile=$dir/node$id/log4j2.properties"
    kafka.Kafka "$dir/node$id/server.properties")
}

run_node() {
  local dir="$1" id="$2"
  require_jars
  exec 3<&0
  node_args "$dir" "$id"
  "${node_cmd[@]}" < /dev/null > "$dir/node$id/stdout.log" 2>&1 &
  local child=$!
  echo "$child" > "$dir/node$id/pid"
  # Until the caller closes our standard input (or dies): then the node is killed, hard.
  cat <&3 > /dev/null || true
  kill -9 "$child" 2>/dev/null || true
  wait "$child" 2>/dev/null || true
}

start() {
  local dir="$1" id
  format "$dir"
  for ((id = 1; id <= nodes; id++)); do
    # The wait below reads this run's log only.
    [ -f "$dir/node$id/server.log" ] && mv "$dir/node$id/server.log" "$dir/node$id/server.log.prev"
    node_args "$dir" "$id"
    nohup "${node_cmd[@]}" < /dev/null > "$dir/node$id/stdout.log" 2>&1 &
    echo $! > "$dir/node$id/pid"
  done
  local bootstrap=""
  for ((id = 1; id <= nodes; id++)); do
    bootstrap+="${bootstrap:+,}127.0.0.1:${broker_ports[$((id - 1))]}"
  done
  echo "$bootstrap" > "$dir/bootstrap"
  # A KRaft broker logs "Kafka Server started" once the controller quorum unfenced it; its
  # port then accepts connections. (Cheaper than a tool's JVM per poll on a busy machine.)
  local deadline=$((SECONDS + 300)) up=0
  while [ $SECONDS -lt $deadline ]; do
    up=0
    for ((id = 1; id <= nodes; id++)); do
      if grep -q "Kafka Server started" "$dir/node$id/server.log" 2>/dev/null &&
        (exec 3<>"/dev/tcp/127.0.0.1/${broker_ports[$((id - 1))]}") 2>/dev/null; then
        up=$((up + 1))
      fi
    done
    [ "$up" -ge "$nodes" ] && { echo "$bootstrap"; return 0; }
    sleep 1
  done
  echo "cluster.sh: only $up of $nodes brokers started within 300 s; logs in $dir/node*/server.log" >&2
  exit 1
}

stop() {
  local dir="$1" id pid
  for ((id = 1; id <= nodes; id++)); do
    [ -f "$dir/node$id/pid" ] || continue
    pid="$(cat "$dir/node$id/pid")"
    kill "$pid" 2>/dev/null || true
  done
  for ((id = 1; id <= nodes; id++)); do
    [ -f "$dir/node$id/pid" ] || continue
    pid="$(cat "$dir/node$id/pid")"
    local deadline=$((SECONDS + 30))
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$dir/node$id/pid"
  done
}

[ $# -ge 2 ] || usage
case "$1" in
  start) start "$2" ;;
  stop) stop "$2" ;;
  format) format "$2" ;;
  node) [ $# -eq 3 ] || usage; run_node "$2" "$3" ;;
  *) usage ;;
esac
