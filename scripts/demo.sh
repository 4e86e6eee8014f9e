#!/usr/bin/env bash
# The quick-start demo (`make demo`): sample orders -> target-meta-capi -> local sandbox,
# then what the sandbox received. Needs the package installed in .venv (make demo does that).
#
#   DEMO_PORT=8788 DEMO_ORDERS=2000 bash scripts/demo.sh
set -euo pipefail

cd "$(dirname "$0")/.."
VENV_BIN="${VENV_BIN:-.venv/bin}"
PORT="${DEMO_PORT:-8787}"
ORDERS="${DEMO_ORDERS:-500}"
OUT=demo-output
SANDBOX_URL="http://127.0.0.1:${PORT}"

rm -rf "$OUT"
mkdir -p "$OUT"

echo "==> 1/4 Writing ${ORDERS} sample orders (messy customer data, last 24 hours) to ${OUT}/orders.singer"
"$VENV_BIN/python" examples/make_orders.py --count "$ORDERS" --output "$OUT/orders.singer"

echo "==> 2/4 Starting the sandbox Conversions API on ${SANDBOX_URL}"
"$VENV_BIN/target-meta-capi-sandbox" --port "$PORT" --quiet \
    --record-jsonl "$OUT/sandbox-events.jsonl" 2>"$OUT/sandbox.log" &
SANDBOX_PID=$!
stop_sandbox() {
    if kill -0 "$SANDBOX_PID" 2>/dev/null; then
        kill -TERM "$SANDBOX_PID" && wait "$SANDBOX_PID" || true
    fi
}
trap stop_sandbox EXIT

# Ready when it says so in its log; if it exits first (port taken), say why.
for _ in $(seq 100); do
    grep -q "listening on" "$OUT/sandbox.log" && break
    if ! jobs -rp | grep -qx "$SANDBOX_PID"; then
        cat "$OUT/sandbox.log" >&2
        echo "The sandbox could not start on port ${PORT}; pick another: DEMO_PORT=8788 make demo" >&2
        exit 1
    fi
    sleep 0.2
done
grep -q "listening on" "$OUT/sandbox.log" || { echo "The sandbox did not start" >&2; exit 1; }

# config.sample.json, pointed at this sandbox and writing its files into demo-output/.
"$VENV_BIN/python" - "$SANDBOX_URL" "$OUT" <<'PY'
import json, sys
url, out = sys.argv[1], sys.argv[2]
with open("config.sample.json", encoding="utf-8") as sample:
    config = json.load(sample)
config.update(graph_url=url, dead_letter_path=f"{out}/dead_letters.jsonl",
              summary_path=f"{out}/summary.json", progress_interval=2)
with open(f"{out}/config.json", "w", encoding="utf-8") as demo_config:
    json.dump(config, demo_config, indent=2)
PY

echo "==> 3/4 Running: target-meta-capi --config ${OUT}/config.json < ${OUT}/orders.singer"
"$VENV_BIN/target-meta-capi" --config "$OUT/config.json" \
    < "$OUT/orders.singer" > "$OUT/state.jsonl" 2> "$OUT/target.log"
grep -E "Run summary|Stream '|Requests:" "$OUT/target.log" | sed -E 's/^.*(Run summary|Stream |Requests:)/  \1/' || true
echo "  last STATE emitted (after Meta acknowledged): $(tail -n 1 "$OUT/state.jsonl")"

echo "==> 4/4 What the sandbox received"
"$VENV_BIN/target-meta-capi-sandbox" report --url "$SANDBOX_URL"

echo
echo "Files in ${OUT}/: orders.singer (input), config.json, target.log, state.jsonl,"
echo "summary.json (run summary), sandbox-events.jsonl (every accepted event), sandbox.log."
# The dead-letter file is created only when an event is dead-lettered.
if [[ -s "$OUT/dead_letters.jsonl" ]]; then
    echo "dead_letters.jsonl: $(wc -l < "$OUT/dead_letters.jsonl") events Meta would not or did not accept, with the reason."
else
    echo "No dead_letters.jsonl: no event was dead-lettered."
fi
