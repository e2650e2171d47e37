#!/usr/bin/env bash
# Runs the word count example end to end: a data_receiver listening for the
# counts, machida3 running word_count.py, and the sender feeding input.txt.
# Prints the final count of every word and checks it against expected.json.
#
#   ./run.sh [INPUT_FILE EXPECTED_JSON]
# Environment: MACHIDA (default ../../../bin/machida3), IN_PORT (7010), OUT_PORT (7002).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="$(cd "$here/../../.." && pwd)/bin"
machida="${MACHIDA:-$bin/machida3}"
input="${1:-$here/input.txt}"
expected="${2:-$here/expected.json}"
in_port="${IN_PORT:-7010}"
out_port="${OUT_PORT:-7002}"
work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

cd "$here"
"$bin/data_receiver" --listen "127.0.0.1:$out_port" --ponythreads=1 --ponynoblock \
  >"$work/received.txt" 2>"$work/receiver.log" &
pids+=($!)

"$machida" --application-module word_count \
  --in "127.0.0.1:$in_port" --out "127.0.0.1:$out_port" \
  --metrics 127.0.0.1:5001 --control 127.0.0.1:6000 --data 127.0.0.1:6001 \
  --name worker-name --external 127.0.0.1:5050 --cluster-initializer \
  --ponythreads=1 --ponynoblock >"$work/machida.log" 2>&1 &
pids+=($!)

for _ in $(seq 1 100); do
  grep -qs "Application has successfully initialized" "$work/machida.log" && break
  if ! kill -0 "${pids[1]}" 2>/dev/null; then cat "$work/machida.log"; exit 1; fi
  sleep 0.1
done
grep -q "Application has successfully initialized" "$work/machida.log" || {
  echo "machida3 did not start:"; cat "$work/machida.log"; exit 1; }

lines=$(grep -c . "$input")
"$bin/sender" --host "127.0.0.1:$in_port" --file "$input" --batch-size 5 \
  --interval 100_000_000 --messages "$lines" --ponythreads=1 --ponynoblock --no-write

python3 "$here/validate.py" --expected "$expected" --output "$work/received.txt" --wait 30 || {
  echo "--- machida3 log:"; cat "$work/machida.log"; exit 1; }
echo "final counts (word => count), most frequent first:"
python3 - "$work/received.txt" <<'PY'
import sys
counts = {}
for line in open(sys.argv[1], encoding="utf-8"):
    word, _, n = line.rstrip("\n").rpartition(" => ")
    counts[word] = int(n)
for word, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
    print("%5d  %s" % (n, word))
PY
