#!/usr/bin/env bash
# The outside cross-check of `cargo bench --bench load`: the very same servers (bare axum,
# tower-http's bearer check, a JWT layer, ours on a code hit, a session cookie, a bearer token and
# the Redis path, and our three hot paths again with a metrics recorder installed), each driven by
# wrk with the requests it accepts, in one run, rounds interleaved
# so that any drift of the machine weighs on every server alike. Prints req/s, p50 and p99, each
# also as a ratio to bare axum measured in the same round.
#
#   benches/wrk.sh                      # 4 s a cell, 3 rounds, concurrency 16 and 128
#   WRK_SECS=2 WRK_ROUNDS=1 benches/wrk.sh
#
# wrk runs one thread with keep-alive connections; the servers run on one tokio worker. Installs
# wrk from Debian's packages when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

SECS="${WRK_SECS:-4}"
ROUNDS="${WRK_ROUNDS:-3}"
CONCURRENCIES="${WRK_CONCURRENCIES:-16 128}"

if ! command -v wrk >/dev/null; then
    apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi

bin="$(cargo bench --bench load --features metrics --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*\)).*/\1/p' | tail -1)"
[ -x "$bin" ] || { echo "the load bench did not build" >&2; exit 1; }

work="$(mktemp -d)"
LOAD_SERVE_FOR_WRK="$work" "$bin" --bench >"$work/servers.log" 2>&1 &
servers=$!
trap 'kill $servers 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 600); do
    [ -f "$work/targets.tsv" ] && break
    kill -0 $servers 2>/dev/null || { cat "$work/servers.log" >&2; exit 1; }
    sleep 0.1
done
[ -f "$work/targets.tsv" ] || { echo "the servers did not start" >&2; exit 1; }

# One Lua script per server: its header, with each of its values in turn.
index=0
while IFS=$'\t' read -r name addr header values; do
    cat >"$work/$index.lua" <<LUA
local values = {}
for line in io.lines("$values") do values[#values + 1] = line end
local next = 0
request = function()
  next = next % #values + 1
  return wrk.format("GET", "/", { ["$header"] = values[next] })
end
LUA
    index=$((index + 1))
done <"$work/targets.tsv"

# wrk's latencies in microseconds.
micros() { awk '{ v = $1; if (v ~ /us$/) { sub(/us$/, "", v); print v } else if (v ~ /ms$/) { sub(/ms$/, "", v); print v * 1000 } else if (v ~ /s$/) { sub(/s$/, "", v); print v * 1000000 } }'; }

results="$work/results.tsv"
for concurrency in $CONCURRENCIES; do
    for round in $(seq "$ROUNDS"); do
        index=0
        while IFS=$'\t' read -r name addr header values; do
            # A short warm-up on fresh connections, not counted.
            wrk -t1 -c"$concurrency" -d1s -s "$work/$index.lua" "http://$addr/" >/dev/null
            out="$(wrk -t1 -c"$concurrency" -d"${SECS}s" --latency -s "$work/$index.lua" "http://$addr/")"
            rps="$(echo "$out" | awk '/^Requests\/sec:/ { print $2 }')"
            p50="$(echo "$out" | awk '$1 == "50%" { print $2 }' | micros)"
            p99="$(echo "$out" | awk '$1 == "99%" { print $2 }' | micros)"
            non2xx="$(echo "$out" | awk '/Non-2xx/ { print $5 }')"
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$concurrency" "$round" "$index" "$name" "$rps" "$p50" "$p99" >>"$results"
            if [ -n "$non2xx" ]; then
                echo "$name answered $non2xx non-2xx responses at concurrency $concurrency" >&2
                exit 1
            fi
            index=$((index + 1))
        done <"$work/targets.tsv"
    done
done

echo "wrk $(wrk --version 2>&1 | head -1 | awk '{ print $2 }'), 1 thread, keep-alive, ${SECS} s a cell, ${ROUNDS} rounds interleaved; ratios are to bare axum in the same round, then averaged"
echo
echo "| concurrency | server | req/s | vs bare | p50 | p99 | p99 vs bare |"
echo "|---:|---|---:|---:|---:|---:|---:|"
awk -F'\t' '
    $3 == 0 { bare_rps[$1, $2] = $5; bare_p99[$1, $2] = $7 }
    { rows[NR] = $0 }
    END {
        for (i = 1; i <= NR; i++) {
            split(rows[i], f, "\t")
            key = f[1] SUBSEP f[3]
            if (!(key in seen)) { seen[key] = 1; order[++n] = key; name[key] = f[4]; conc[key] = f[1] }
            rounds[key]++
            rps[key] += f[5]; p50[key] += f[6]; p99[key] += f[7]
            rps_ratio[key] += f[5] / bare_rps[f[1], f[2]]
            p99_ratio[key] += f[7] / bare_p99[f[1], f[2]]
        }
        for (j = 1; j <= n; j++) {
            k = order[j]; r = rounds[k]
            printf "| %s | %s | %.0f | %.3f | %.0f µs | %.0f µs | %.2f |\n", conc[k], name[k], rps[k] / r, rps_ratio[k] / r, p50[k] / r, p99[k] / r, p99_ratio[k] / r
        }
    }' "$results"
