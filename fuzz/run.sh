#!/bin/sh
# Runs the ipc-proto fuzz targets with cargo-fuzz (libFuzzer).
#
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Needs `cargo install cargo-fuzz`. cargo-fuzz needs nightly Rust for
# -Zsanitizer; on a stable toolchain RUSTC_BOOTSTRAP=1 unlocks the same
# flags (that is what this script does when no nightly is installed).
set -eu
cd "$(dirname "$0")"
secs="${1:-120}"
[ $# -gt 0 ] && shift
targets="${*:-frame_decoder legacy_lines}"
if rustup toolchain list 2>/dev/null | grep -q nightly; then
    fuzz="cargo +nightly fuzz"
else
    export RUSTC_BOOTSTRAP=1
    fuzz="cargo fuzz"
fi
for t in $targets; do
    mkdir -p "corpus/$t"
    echo "== $t for ${secs}s"
    $fuzz run "$t" "corpus/$t" -- -max_total_time="$secs" -max_len=4096
done
