#!/usr/bin/env bash
# The outside cross-check of `cargo bench --bench load`: the very same servers (bare axum,
# tower-http's bearer check, a JWT layer, ours on a code hit, a session cookie, a bearer token and
# the Redis path, axum-login over tower-sessions signed in, and our three hot paths again with a
# metrics recorder installed), each driven by
# wrk with the requests it accepts, in one run, rounds interleaved
# so that any drift of the machine weighs on every server alike. Bare is sent the very requests
# each layer gets (the code, the cookie or the token: one bare row per header), so a ratio is the
# layer's work alone. Prints req/s, p50 and p99, each also as a ratio to the bare row with the same
# header in the same round, the median over the rounds; then metrics on against off.
#
#   benches/wrk.sh                      # 4 s a cell, 5 rounds, concurrency 16 and 128
#   WRK_SECS=2 WRK_ROUNDS=1 benches/wrk.sh
#
# wrk runs one thread with keep-alive connections; the servers run on one tokio worker. Installs
# wrk from Debian's packages when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

SECS="${WRK_SECS:-4}"
ROUNDS="${WRK_ROUNDS:-5}"
CONCURRENCIES="${WRK_CONCURRENCIES:-16 128}"

if ! command -v wrk >/dev/null; then
    apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi

bin="$(cargo bench --bench load --features metrics --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*\)).*/\1/p' | tail -1)"
[ -x "$bin" ] || { echo "the load bench did not build" >&2; exit 1; }

work="$(mktemp -d)"
servers=""
trap 'kill $servers 2>/dev/null || true; rm -rf "$work"' EXIT
# Fresh servers for each round: a code lives 5 minutes (so do the identities cached for it), and a
# whole run is longer than that.
start_servers() {
    [ -z "$servers" ] || { kill "$servers" 2>/dev/null || true; wait "$servers" 2>/dev/null || true; }
    rm -f "$work/targets.tsv"
    LOAD_SERVE_FOR_WRK="$work" "$bin" --bench >"$work/servers.log" 2>&1 &
    servers=$!
    for _ in $(seq 600); do
        [ -f "$work/targets.tsv" ] && break
        kill -0 $servers 2>/dev/null || { cat "$work/servers.log" >&2; exit 1; }
        sleep 0.1
    done
    [ -f "$work/targets.tsv" ] || { echo "the servers did not start" >&2; exit 1; }
}
start_servers

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
for round in $(seq "$ROUNDS"); do
    [ "$round" = 1 ] || start_servers
    for concurrency in $CONCURRENCIES; do
        index=0
        while IFS=$'\t' read -r name addr header values; do
            # A short warm-up on fresh connections, not counted.
            wrk -t1 -c"$concurrency" -d1s -s "$work/$index.lua" "http://$addr/" >/dev/null
            out="$(wrk -t1 -c"$concurrency" -d"${SECS}s" --latency -s "$work/$index.lua" "http://$addr/")"
            rps="$(echo "$out" | awk '/^Requests\/sec:/ { print $2 }')"
            p50="$(echo "$out" | awk '$1 == "50%" { print $2 }' | micros)"
            p99="$(echo "$out" | awk '$1 == "99%" { print $2 }' | micros)"
            non2xx="$(echo "$out" | awk '/Non-2xx/ { print $5 }')"
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$concurrency" "$round" "$index" "$name" "$rps" "$p50" "$p99" "$header" >>"$results"
            if [ -n "$non2xx" ]; then
                echo "$name answered $non2xx non-2xx responses at concurrency $concurrency" >&2
                exit 1
            fi
            index=$((index + 1))
        done <"$work/targets.tsv"
    done
done

# The median of list[1..count], for the tables' awk programs.
median='
function median(list, count,    sorted, i, j, t) {
    for (i = 1; i <= count; i++) sorted[i] = list[i]
    for (i = 2; i <= count; i++) for (j = i; j > 1 && sorted[j - 1] > sorted[j]; j--) { t = sorted[j]; sorted[j] = sorted[j - 1]; sorted[j - 1] = t }
    return count % 2 ? sorted[(count + 1) / 2] : (sorted[count / 2] + sorted[count / 2 + 1]) / 2
}
'

echo "wrk $(wrk --version 2>&1 | head -1 | awk '{ print $2 }'), 1 thread, keep-alive, ${SECS} s a cell, ${ROUNDS} rounds interleaved; each ratio is to bare sent the same header in the same round, the median over the rounds"
echo
echo "| concurrency | server | req/s | vs bare | p50 | p99 | p99 vs bare |"
echo "|---:|---|---:|---:|---:|---:|---:|"
# Fields: concurrency, round, index, name, req/s, p50, p99, header.
awk -F'\t' "$median"'
    { rows[NR] = $0 }
    $4 ~ /^bare axum/ { bare_rps[$1, $2, $8] = $5; bare_p99[$1, $2, $8] = $7 }
    END {
        for (i = 1; i <= NR; i++) {
            split(rows[i], f, "\t")
            key = f[1] SUBSEP f[3]
            if (!(key in seen)) { seen[key] = 1; order[++n] = key; name[key] = f[4]; conc[key] = f[1] }
            r = ++rounds[key]
            rps[key, r] = f[5]; p50[key, r] = f[6]; p99[key, r] = f[7]
            rps_ratio[key, r] = f[5] / bare_rps[f[1], f[2], f[8]]
            p99_ratio[key, r] = f[7] / bare_p99[f[1], f[2], f[8]]
        }
        for (j = 1; j <= n; j++) {
            k = order[j]; r = rounds[k]
            for (x = 1; x <= r; x++) { a[x] = rps[k, x]; b[x] = rps_ratio[k, x]; c[x] = p50[k, x]; d[x] = p99[k, x]; e[x] = p99_ratio[k, x] }
            printf "| %s | %s | %.0f | %.3f | %.0f µs | %.0f µs | %.2f |\n", conc[k], name[k], median(a, r), median(b, r), median(c, r), median(d, r), median(e, r)
        }
    }' "$results"

# Metrics on against off: each path with a recorder installed over the same path without, in the
# same round; the median over the rounds.
if grep -q ', metrics on' "$results"; then
    echo
    echo "| concurrency | path | req/s, metrics on vs off | p99, on vs off |"
    echo "|---:|---|---:|---:|"
    awk -F'\t' "$median"'
        { rows[NR] = $0; rps[$1, $2, $4] = $5; p99[$1, $2, $4] = $7 }
        END {
            for (i = 1; i <= NR; i++) {
                split(rows[i], f, "\t")
                if (f[4] !~ /, metrics on$/) continue
                off = f[4]; sub(/, metrics on$/, "", off)
                key = f[1] SUBSEP off
                if (!(key in seen)) { seen[key] = 1; order[++n] = key; name[key] = off; conc[key] = f[1] }
                r = ++rounds[key]
                ratio[key, r] = f[5] / rps[f[1], f[2], off]; lat[key, r] = f[7] / p99[f[1], f[2], off]
            }
            for (j = 1; j <= n; j++) {
                k = order[j]; r = rounds[k]
                for (x = 1; x <= r; x++) { a[x] = ratio[k, x]; b[x] = lat[k, x] }
                printf "| %s | %s | %.3f | %.2f |\n", conc[k], name[k], median(a, r), median(b, r)
            }
        }' "$results"
fi
