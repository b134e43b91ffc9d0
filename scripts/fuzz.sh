#!/usr/bin/env bash
# Build the RelayWire libFuzzer harness (fuzz/) and run it.
#
#   scripts/fuzz.sh [SECONDS] [-- EXTRA_LIBFUZZER_ARGS...]     (default: 60 seconds)
#
# Seeds come from the hex test vectors in docs/PROTOCOL.md: every ```hex block that
# follows a "#### Vector: name" or "#### Invalid: name (kind)" heading.
# Exits 0 when the run ends without a finding, 1 when libFuzzer found a crash, leak,
# timeout or out-of-memory input (the path is printed), 2 on a usage or setup error.
#
# Environment (all optional):
#   PROTOCOL_DOC   the document to take seeds from      (default: docs/PROTOCOL.md)
#   FUZZ_WORK_DIR  corpus, artifacts and logs            (default: fuzz/corpus-work, gitignored)
#   FUZZ_MAX_LEN   libFuzzer -max_len                    (default: 70000)
#   FUZZ_TIMEOUT   seconds per input before it is a hang (default: 10)
#   FUZZ_TARGET    all (default: SECONDS split evenly over the four), FuzzRelayWire (frame
#                  and message decoder), FuzzFrameScanner (forwarding scanner),
#                  FuzzTileDecoder (tile-delta codec, PROTOCOL.md §7; seeds from §7.8) or
#                  FuzzClientHelloALPN (the relay's ClientHello ALPN reader, PROTOCOL.md §1;
#                  seeds: real ClientHellos in fuzz/seeds/FuzzClientHelloALPN/*.hex)
# libFuzzer runs with -use_value_profile=1 (it finds constants compared byte by byte;
# without it a planted trap on a 2-byte prefix went unfound for 60 s). Later arguments
# override earlier ones: `scripts/fuzz.sh 60 -- -use_value_profile=0`.
set -euo pipefail

die() { echo "fuzz.sh: error: $*" >&2; exit 2; }
say() { echo "fuzz.sh: $*" >&2; }

usage() {
    sed -n '2,23p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

# --- arguments ------------------------------------------------------------------------
duration=60
extra_args=()
while (($#)); do
    case $1 in
        -h|--help) usage; exit 0 ;;
        --) shift; extra_args=("$@"); break ;;
        *)
            [[ $1 =~ ^[0-9]+$ && $1 -gt 0 ]] || die "SECONDS must be a positive whole number, got '$1' (see --help)"
            duration=$1 ;;
    esac
    shift
done

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
root=$(cd -- "$script_dir/.." && pwd)
fuzz_dir=$root/fuzz
protocol_doc=${PROTOCOL_DOC:-$root/docs/PROTOCOL.md}
work=${FUZZ_WORK_DIR:-$fuzz_dir/corpus-work}
max_len=${FUZZ_MAX_LEN:-70000}
timeout=${FUZZ_TIMEOUT:-10}
target=${FUZZ_TARGET:-all}
if [[ $target == all ]]; then
    # CI's fuzz budget (scripts/test.sh: FUZZ_SECONDS, 30 s) is shared by all targets.
    targets=(FuzzRelayWire FuzzFrameScanner FuzzTileDecoder FuzzClientHelloALPN)
    share=$((duration / ${#targets[@]}))
    ((share > 0)) || share=1
    overall=0
    for each in "${targets[@]}"; do
        FUZZ_TARGET=$each "${BASH_SOURCE[0]}" "$share" ${extra_args[@]+-- "${extra_args[@]}"} || {
            code=$?
            ((code > overall)) && overall=$code
        }
    done
    exit $overall
fi
[[ -d $fuzz_dir/Sources/$target ]] || die "FUZZ_TARGET '$target' is not a target of $fuzz_dir (see fuzz/Sources/)"
[[ $max_len =~ ^[0-9]+$ ]] || die "FUZZ_MAX_LEN must be a number, got '$max_len'"
[[ $timeout =~ ^[0-9]+$ ]] || die "FUZZ_TIMEOUT must be a number, got '$timeout'"
[[ -f $fuzz_dir/Package.swift ]] || die "no fuzz package at $fuzz_dir"

# --- prerequisites ----------------------------------------------------------------------
# Everything except git comes with the Swift toolchain (swiftc, clang, the libFuzzer and
# ASan runtimes). git is needed by SwiftPM to check out swift-nio; install it if missing.
apt_install() {
    command -v apt-get >/dev/null || die "'$1' is missing and there is no apt-get to install it; install it and retry"
    say "installing $1 with apt-get"
    local sudo=()
    ((EUID == 0)) || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq && "${sudo[@]}" apt-get install -y -qq "$1" >/dev/null \
        || die "apt-get could not install $1"
}
command -v swift >/dev/null || die "swift is not on PATH (a swift.org toolchain, 6.x, is needed)"
command -v git >/dev/null || apt_install git

swiftc_path=$(readlink -f -- "$(command -v swiftc || command -v swift)")
toolchain_lib=$(cd -- "$(dirname -- "$swiftc_path")/../lib" && pwd)
fuzzer_runtime=$(find "$toolchain_lib" -path '*clang*' \( -name 'libclang_rt.fuzzer-*.a' -o -name 'libclang_rt.fuzzer.a' -o -name 'libclang_rt.fuzzer_osx.a' \) 2>/dev/null | head -n 1)
[[ -n $fuzzer_runtime ]] || die "the Swift toolchain at $toolchain_lib has no libFuzzer runtime (libclang_rt.fuzzer); \
use a swift.org toolchain (Xcode's does not ship libFuzzer)"
asan_runtime=$(find "$toolchain_lib" -path '*clang*' -name 'libclang_rt.asan*' 2>/dev/null | head -n 1)
[[ -n $asan_runtime ]] || die "the Swift toolchain at $toolchain_lib has no AddressSanitizer runtime (libclang_rt.asan)"

# --- build ------------------------------------------------------------------------------
build_flags=(--package-path "$fuzz_dir" -c release
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library)
say "building $target (release, -sanitize=fuzzer,address) in $fuzz_dir/.build"
swift build "${build_flags[@]}" --product "$target" >&2 || die "building the fuzz package failed (see above)"
binary=$(swift build "${build_flags[@]}" --show-bin-path)/$target
[[ -x $binary ]] || die "the build finished but $binary is missing"

# --- seed corpus from docs/PROTOCOL.md ----------------------------------------------------
[[ -f $protocol_doc ]] || die "no $protocol_doc to take seed vectors from (set PROTOCOL_DOC to use another file)"
seeds=$work/seeds
corpus=$work/corpus/$target
artifacts=$work/artifacts
logs=$work/logs
mkdir -p "$corpus" "$artifacts" "$logs"
rm -rf "$seeds"
mkdir -p "$seeds"

# write_seed FILE "hex bytes..." DOC_LINE
write_seed() {
    local file=$1 hex=$2 line=$3 format="" token
    for token in $hex; do
        [[ $token =~ ^[0-9a-fA-F]{2}$ ]] || die "$protocol_doc:$line: '$token' is not a hex byte"
        format+="\\x$token"
    done
    printf "$format" >"$file"
}

state=none      # none | heading (saw a vector heading) | skip (other fence) | hex (inside ```hex)
name="" hex="" count=0 valid_count=0 line_no=0 block_line=0
all_valid=$seeds/stream-all-vectors
: >"$all_valid.tmp"
while IFS= read -r line || [[ -n $line ]]; do
    line_no=$((line_no + 1))
    line=${line%$'\r'}
    case $state in
        hex)
            if [[ $line =~ ^[[:space:]]*\`\`\` ]]; then
                count=$((count + 1))
                file=$(printf '%s/%03d-%s' "$seeds" "$count" "$(tr -c 'A-Za-z0-9._-' '-' <<<"$name" | sed 's/-*$//; s/--*/-/g')")
                write_seed "$file" "$hex" "$block_line"
                if [[ $name == vector-* ]]; then
                    cat "$file" >>"$all_valid.tmp"
                    valid_count=$((valid_count + 1))
                fi
                state=none
            else
                hex+=" $line"
            fi
            continue ;;
        skip)
            [[ $line =~ ^[[:space:]]*\`\`\` ]] && state=heading
            continue ;;
    esac
    if [[ $line =~ ^####[[:space:]]+(Vector|Invalid):[[:space:]]*(.*[^[:space:]])[[:space:]]*$ ]]; then
        kind=${BASH_REMATCH[1],,}
        name="$kind-${BASH_REMATCH[2]}"
        state=heading
    elif [[ $state == heading && $line =~ ^[[:space:]]*\`\`\`hex[[:space:]]*$ ]]; then
        state=hex hex="" block_line=$line_no
    elif [[ $state == heading && $line =~ ^[[:space:]]*\`\`\` ]]; then
        state=skip      # a diagram or other block between the heading and its hex
    elif [[ $state == heading && $line =~ ^# ]]; then
        state=none      # another heading: that vector had no hex block
    fi
done <"$protocol_doc"
[[ $state != hex ]] || die "$protocol_doc:$block_line: the \`\`\`hex block is not closed"

# FuzzTileDecoder reads a session: width − 1, height − 1, then u16-length-prefixed bodies.
# Each "#### Tile vector:"/"#### Tile invalid:" of §7.8 becomes one, its size taken from
# the "N×M screen" of its description (4×2 for invalid vectors, as §7.8 says).
if [[ $target == FuzzTileDecoder ]]; then
    rm -rf "$seeds" "$all_valid.tmp"
    mkdir -p "$seeds"
    tile_count=0 tile_valid=0 in_body=0 name="" kind="" size="" bodies=()
    flush_tile() {
        [[ -n $name && ${#bodies[@]} -gt 0 ]] || return 0
        local w=${size%x*} h=${size#*x} format body n
        format=$(printf '\\x%02x\\x%02x' $((w - 1)) $((h - 1)))
        for body in "${bodies[@]}"; do
            n=$(wc -w <<<"$body")
            format+=$(printf '\\x%02x\\x%02x' $((n >> 8)) $((n & 255)))
            for token in $body; do format+="\\x$token"; done
        done
        tile_count=$((tile_count + 1))
        [[ $kind == vector ]] && tile_valid=$((tile_valid + 1))
        printf "$format" >"$(printf '%s/tile-%03d-%s' "$seeds" "$tile_count" "$name")"
    }
    while IFS= read -r line || [[ -n $line ]]; do
        line=${line%$'\r'}
        if ((in_body)); then
            if [[ $line == '```' ]]; then in_body=0; bodies+=("$current"); else current+=" $line"; fi
            continue
        fi
        if [[ $line =~ ^#### ]]; then
            flush_tile
            name="" bodies=()
            if [[ $line =~ ^####\ Tile\ (vector|invalid):\ ([A-Za-z0-9-]+) ]]; then
                kind=${BASH_REMATCH[1]} name=${BASH_REMATCH[2]} size=4x2 label=""
            fi
        elif [[ -n $name && $line =~ ([0-9]+)×([0-9]+)\ screen && $size == 4x2 && ${#bodies[@]} -eq 0 ]]; then
            size="${BASH_REMATCH[1]}x${BASH_REMATCH[2]}"
        elif [[ -n $name && $line =~ ^(Inflated|Body) ]]; then
            label=${BASH_REMATCH[1]}
        elif [[ -n $name && $line == '```hex' && $label == Body ]]; then
            in_body=1 current=""
        fi
    done <"$protocol_doc"
    flush_tile
    ((tile_count > 0)) || die "found no '#### Tile vector:' heading with a Body block in $protocol_doc"
    count=$tile_count valid_count=$tile_valid
fi
# FuzzClientHelloALPN starts from real ClientHellos (openssl s_client, TLS 1.2 and 1.3,
# with and without ALPN), kept as hex in fuzz/seeds/.
if [[ $target == FuzzClientHelloALPN ]]; then
    rm -rf "$seeds" "$all_valid.tmp"
    mkdir -p "$seeds"
    count=0
    for file in "$fuzz_dir/seeds/$target"/*.hex; do
        [[ -f $file ]] || continue
        count=$((count + 1))
        write_seed "$seeds/$(basename "$file" .hex)" "$(cat "$file")" 1
    done
    ((count > 0)) || die "no seed in $fuzz_dir/seeds/$target/*.hex"
    valid_count=$count
fi
if ((valid_count > 1)) && [[ -f $all_valid.tmp ]]; then mv "$all_valid.tmp" "$all_valid"; else rm -f "$all_valid.tmp"; fi
((count > 0)) || die "found no '#### Vector:' or '#### Invalid:' heading with a \`\`\`hex block in $protocol_doc"
say "seed corpus: $count vectors ($valid_count valid, $((count - valid_count)) invalid) from ${protocol_doc#"$root"/} in ${seeds#"$root"/}"

# --- run ----------------------------------------------------------------------------------
stamp=$(date +%Y%m%d-%H%M%S)
log=$logs/$target-$stamp.log
marker=$work/.run-$stamp
: >"$marker"
say "fuzzing $target for ${duration}s (max_len $max_len, timeout ${timeout}s); corpus ${corpus#"$root"/}, log ${log#"$root"/}"
status=0
(cd "$work" && SWIFT_BACKTRACE=enable=no "$binary" \
    -max_total_time="$duration" -max_len="$max_len" -timeout="$timeout" \
    -use_value_profile=1 -print_final_stats=1 -artifact_prefix="$artifacts/$target-" \
    ${extra_args[@]+"${extra_args[@]}"} \
    "$corpus" "$seeds") 2>&1 | tee "$log" || status=$?

findings=()
while IFS= read -r file; do findings+=("$file"); done < <(find "$artifacts" -type f -newer "$marker" | sort)
rm -f "$marker"

execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[0-9A-Za-z]+' "$log" | tail -n 1 || true)
echo
say "summary: ${execs:-?} inputs, ${rate:-?} exec/s, ${cov:-no coverage line}"

if ((status != 0 || ${#findings[@]} > 0)); then
    say "FAILED: libFuzzer exited with status $status"
    if ((${#findings[@]})); then
        for file in "${findings[@]}"; do
            say "  finding: $file"
            say "    hex:   $(od -An -v -tx1 "$file" | tr -s ' \n' ' ' | sed 's/^ //; s/ $//' | cut -c1-600)"
        done
        say "reproduce: SWIFT_BACKTRACE=enable=no $binary ${findings[0]}"
        say "minimize:  SWIFT_BACKTRACE=enable=no $binary -minimize_crash=1 -runs=100000 -exact_artifact_path=/tmp/min ${findings[0]}"
    fi
    say "full log: $log"
    exit 1
fi
say "OK: no findings in ${duration}s"
