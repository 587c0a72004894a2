#!/usr/bin/env bash
# run-cluster.sh — `make run`: a small picos cluster on this machine.
#
#     apps/examples/run-cluster.sh BUILD_DIR [--once]
#
# Starts a registry (picos-registry, its log in a temporary data dir, its
# web dashboard on a port of its choosing: the address is printed first), a
# service node (picos-node hosting the example service library
# pico_service.so: the service "pico_service", and computations on 2 worker
# processes: --compute), a client node that finds
# the service by name and calls it a few times, collecting every result
# (picos-rps-pico-client), then calls it from the command line (picos call),
# lists the cluster (picos ls) and runs a distributed computation on the
# node (picos submit of primes.so, one job per number, then picos jobs);
# then the client goes on calling the service every second (live figures
# on the dashboard, `picos top`) until Ctrl-C, which stops everything
# cleanly. With --once (the test suite) it stops after the computation. Every line is prefixed with the process it
# comes from.
# All processes share one temporary cluster secret (mode 0600). Ctrl-C, or
# any failure, stops whatever was started and removes the temporary files.
set -euo pipefail

bin=${1:?usage: run-cluster.sh BUILD_DIR [--once]}
once=false
[ "${2:-}" = --once ] && once=true
registry_bin=$bin/apps/registry/picos-registry
node_bin=$bin/apps/node/picos-node
service_lib=$bin/apps/examples/pico_service.so
client_bin=$bin/apps/examples/picos-rps-pico-client
cli_bin=$bin/apps/picos/picos
primes_lib=$bin/apps/examples/primes.so

work=$(mktemp -d /tmp/picos-run.XXXXXX)
pids=()
cleanup() {
    trap - EXIT INT TERM
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true # the registry's tail, which ends with it
    rm -rf "$work"
}
trap cleanup EXIT
trap 'echo "run-cluster: interrupted, stopping"; exit 130' INT TERM

# Lines of a program, prefixed with its name.
tag() { sed -u "s/^/[$1] /"; }

# Wait up to 10 s for `pattern` in `file`, then print the first endpoint on
# that line.
endpoint_in() {
    local file=$1 pattern=$2
    for _ in $(seq 100); do
        if grep -q "$pattern" "$file" 2>/dev/null; then
            grep -m1 "$pattern" "$file" | grep -o 'tcp://[0-9.]*:[0-9]*' | head -1
            return 0
        fi
        sleep 0.1
    done
    echo "run-cluster: no '$pattern' from $file after 10 s:" >&2
    cat "$file" >&2
    return 1
}

umask 077
head -c 32 /dev/urandom | base64 >"$work/secret"
export PICOS_SECRET_FILE=$work/secret
mkdir "$work/data"

echo "run-cluster: a registry, a service node and a client node on 127.0.0.1"
"$registry_bin" --listen tcp://127.0.0.1:0 --data-dir "$work/data" \
    --http 127.0.0.1:0 >"$work/registry.out" 2>&1 &
registry_pid=$!
pids+=($registry_pid)
reg=$(endpoint_in "$work/registry.out" "listening on")
dashboard=$(grep -m1 -o 'http://[0-9.]*:[0-9]*/' "$work/registry.out")
echo "run-cluster: the dashboard: $dashboard  (JSON under ${dashboard}api/v1/, ${dashboard}metrics)"
# its lines, tagged, for as long as it runs (tail ends with it)
tail --pid="$registry_pid" -s 0.1 -n +1 -f "$work/registry.out" 2>/dev/null |
    tag registry &

"$node_bin" --registry "$reg" --name service-node --service "$service_lib" \
    --compute --cpus 2 --data-dir "$work/node-data" \
    > >(tee "$work/node.out" | tag picos-node) 2>&1 &
pids+=($!)
endpoint_in "$work/node.out" "listening on" >/dev/null

"$client_bin" --registry "$reg" -n 5 2>&1 | tag client

echo "run-cluster: the same service from the command line:"
echo "run-cluster: \$ echo time | picos call pico_service --data -"
{ echo time | "$cli_bin" --registry "$reg" call pico_service --data - && echo; } 2>&1 |
    tag picos  # (the reply is the service's bytes, as they are: no newline)

echo "run-cluster: the cluster, as \`picos ls\` shows it:"
"$cli_bin" --registry "$reg" ls nodes 2>&1 | tag picos
"$cli_bin" --registry "$reg" ls names 2>&1 | tag picos

echo "run-cluster: a computation: primes.so sent to the node, one job per number, on its 2 sandboxed workers:"
echo "run-cluster: \$ printf '10000\\n20000\\n40000\\n80000\\n' | picos submit primes.so count --lines -"
printf '10000\n20000\n40000\n80000\n' |
    "$cli_bin" --registry "$reg" submit "$primes_lib" count --lines - 2>&1 | tag picos
"$cli_bin" --registry "$reg" jobs 2>&1 | tag picos

if ! $once; then
    echo "run-cluster: running until Ctrl-C: the client calls pico_service every second"
    echo "run-cluster: watch it at $dashboard or with: PICOS_REGISTRY=$reg PICOS_SECRET_FILE=$PICOS_SECRET_FILE $cli_bin top"
    while :; do
        "$client_bin" --registry "$reg" -n 5 >/dev/null 2>"$work/client.err" ||
            tag client <"$work/client.err"
        sleep 1
    done
fi

echo "run-cluster: stopping"
for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
done
status=0
for pid in "${pids[@]}"; do
    wait "$pid" || status=$?
done
pids=()
wait # the registry's tail, which ends with it
echo "run-cluster: done (exit status $status)"
exit "$status"
