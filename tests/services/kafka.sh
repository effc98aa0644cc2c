#!/usr/bin/env bash
# An Apache Kafka 4.x broker for tests: fetches its jars from Maven Central once into a shared
# cache, and starts/stops a single-node KRaft broker on loopback on a random port (-Xmx512m).
#
#   bash tests/services/kafka.sh install        -> fetch the jars (idempotent; prints the folder)
#   bash tests/services/kafka.sh start|status|stop DIR   a broker that outlives the script, data in
#                                               DIR/kafka (start prints host:port; idempotent;
#                                               after a stop, it restarts on its port and data)
#   source tests/services/kafka.sh; ws_svc_kafka -> WS_KAFKA_BROKERS (127.0.0.1:PORT)
#   ws_svc_kafka_stop / ws_svc_kafka_restart    (same port, same data: a broker restart)
#
# Sourced after tests/services/services.sh, the EXIT trap of that file stops the broker.
# Cache: $WS_TOOLS_CACHE (default ~/.cache/whatstyle-tools)/kafka-$WS_KAFKA_VERSION/libs.
WS_KAFKA_VERSION=${WS_KAFKA_VERSION:-4.1.2}
WS_KAFKA_CACHE=${WS_TOOLS_CACHE:-$HOME/.cache/whatstyle-tools}/kafka-$WS_KAFKA_VERSION

ws_kafka_install() {
  local d=$WS_KAFKA_CACHE tmp
  if [ -f "$d/libs/.complete" ]; then echo "$d"; return 0; fi
  command -v mvn >/dev/null || { echo "kafka: mvn not found (apt package maven)" >&2; return 1; }
  command -v java >/dev/null || { echo "kafka: java not found (apt package default-jre-headless)" >&2; return 1; }
  mkdir -p "$d"
  tmp=$(mktemp -d "$d/fetch.XXXXXX")
  # slf4j-api 2.0.x first: otherwise Maven picks Kafka's 1.7 and every log line is dropped
  cat > "$tmp/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>whatstyle.test</groupId><artifactId>kafka-broker</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>2.0.17</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$WS_KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>2.25.3</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j2-impl</artifactId><version>2.25.3</version></dependency>
  </dependencies>
</project>
POM
  if ! (cd "$tmp" && mvn -q -B dependency:copy-dependencies -DoutputDirectory=libs >mvn.log 2>&1); then
    echo "kafka: maven could not fetch the broker's jars:" >&2; tail -20 "$tmp/mvn.log" >&2
    rm -rf "$tmp"; return 1
  fi
  cat > "$tmp/libs/log4j2.yaml" <<'YAML'
Configuration:
  status: warn
  Appenders:
    Console:
      name: out
      target: SYSTEM_OUT
      PatternLayout:
        Pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: warn
      AppenderRef:
        ref: out
    Logger:
      - name: kafka.server.KafkaRaftServer
        level: info
YAML
  touch "$tmp/libs/.complete"
  rm -rf "$d/libs" && mv "$tmp/libs" "$d/libs" && rm -rf "$tmp"
  echo "$d"
}

# Starts the broker (data under ${WS_SVC_DIR:-tmp}/kafka); waits until it answers metadata.
ws_svc_kafka() {
  local lib dir port cport id
  ws_kafka_install >/dev/null || return 1
  lib=$WS_KAFKA_CACHE/libs
  dir=${WS_SVC_DIR:-$(mktemp -d /tmp/ws-kafka.XXXXXX)}/kafka
  mkdir -p "$dir/data"
  port=$(ws_svc_free_port) || { echo "kafka: no free port"; return 1; }
  cport=$(ws_svc_free_port) || { echo "kafka: no free port"; return 1; }
  cat > "$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
PROPS
  id=$(java -cp "$lib/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)
  if ! java -Dlog4j2.configurationFile="$lib/log4j2.yaml" -cp "$lib/*" kafka.tools.StorageTool \
        format --standalone -t "$id" -c "$dir/server.properties" >"$dir/format.log" 2>&1; then
    echo "kafka: storage format failed"; cat "$dir/format.log"; return 1
  fi
  WS_KAFKA_DIR=$dir WS_KAFKA_LIB=$lib WS_KAFKA_BROKERS=127.0.0.1:$port
  export WS_KAFKA_BROKERS
  declare -p WS_SVC_STOPS >/dev/null 2>&1 && WS_SVC_STOPS+=("ws_svc_kafka_stop")
  ws_svc_kafka_run
}

# (Re)starts the broker process of ws_svc_kafka and waits up to 60 s for it to serve metadata.
ws_svc_kafka_run() {
  local i
  java -Xmx512m -Xms512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Dlog4j2.configurationFile="$WS_KAFKA_LIB/log4j2.yaml" -cp "$WS_KAFKA_LIB/*" \
    kafka.Kafka "$WS_KAFKA_DIR/server.properties" >>"$WS_KAFKA_DIR/log" 2>&1 &
  WS_KAFKA_PID=$!
  for i in $(seq 1 600); do
    if kcat -b "$WS_KAFKA_BROKERS" -L -m 1 >/dev/null 2>&1; then return 0; fi
    kill -0 "$WS_KAFKA_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "kafka: the broker did not start"; tail -40 "$WS_KAFKA_DIR/log"; return 1
}

ws_svc_kafka_stop() {
  [ -n "${WS_KAFKA_PID:-}" ] || return 0
  kill "$WS_KAFKA_PID" 2>/dev/null || true
  local i
  for i in $(seq 1 150); do kill -0 "$WS_KAFKA_PID" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$WS_KAFKA_PID" 2>/dev/null || true
  wait "$WS_KAFKA_PID" 2>/dev/null || true
  WS_KAFKA_PID=
}

ws_svc_kafka_restart() { ws_svc_kafka_stop && ws_svc_kafka_run; }

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  here=$(cd "$(dirname "$0")" && pwd)
  case "${1:-}" in
    install) ws_kafka_install ;;
    start) # start DIR: a broker that outlives this script (tools/cluster.sh); prints its address.
      # A broker of DIR that was stopped restarts on its port with its data (a broker restart).
      [ -n "${2:-}" ] || { echo "usage: $0 start DIR" >&2; exit 2; }
      mkdir -p "$2"; WS_SVC_DIR=$(cd "$2" && pwd)
      if [ -f "$WS_SVC_DIR/kafka/pid" ] && kill -0 "$(cat "$WS_SVC_DIR/kafka/pid")" 2>/dev/null; then
        cat "$WS_SVC_DIR/kafka/brokers"; exit 0
      fi
      if [ -s "$WS_SVC_DIR/kafka/brokers" ] && [ -f "$WS_SVC_DIR/kafka/meta.properties.ok" ]; then
        WS_KAFKA_DIR=$WS_SVC_DIR/kafka WS_KAFKA_LIB=$WS_KAFKA_CACHE/libs
        WS_KAFKA_BROKERS=$(cat "$WS_KAFKA_DIR/brokers")
        ws_svc_kafka_run >&2
        echo "$WS_KAFKA_PID" > "$WS_KAFKA_DIR/pid"; echo "$WS_KAFKA_BROKERS"; exit 0
      fi
      rm -rf "$WS_SVC_DIR/kafka"
      source "$here/services.sh" >/dev/null; trap - EXIT   # ws_svc_free_port; keep what starts
      rmdir "$WS_SVC_DIR" 2>/dev/null || true
      WS_SVC_DIR=$(cd "$2" && pwd)
      ws_svc_kafka >&2
      echo "$WS_KAFKA_PID" > "$WS_SVC_DIR/kafka/pid"; echo "$WS_KAFKA_BROKERS" > "$WS_SVC_DIR/kafka/brokers"
      touch "$WS_SVC_DIR/kafka/meta.properties.ok" # formatted and started once: restart in place
      echo "$WS_KAFKA_BROKERS" ;;
    status) # status DIR: exit 0 when the broker of DIR answers
      b=$(cat "$2/kafka/brokers" 2>/dev/null) && kcat -b "$b" -L -m 2 >/dev/null 2>&1 && echo "kafka up at $b" ;;
    stop) # stop DIR
      p=$(cat "$2/kafka/pid" 2>/dev/null) || exit 0
      kill "$p" 2>/dev/null || true
      for _ in $(seq 1 150); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$p" 2>/dev/null || true; rm -f "$2/kafka/pid" ;;
    *) echo "usage: $0 install | start DIR | status DIR | stop DIR   (or source it: ws_svc_kafka)" >&2; exit 2 ;;
  esac
fi
