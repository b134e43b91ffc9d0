#!/usr/bin/env python3
"""Where relay-server's CPU goes while it forwards: perf samples sorted into buckets.

    perf record -e cpu-clock -F 999 -g -p <relay-server pid> -o perf.data -- sleep 6
    python3 benchmarks/profile-buckets.py perf.data [more.data …] [--cpu-s-per-gb X]

Each sample is put in the first bucket its call chain matches, leaf first for user-space
work and by system call for kernel work (a write on loopback also delivers the bytes to
the reader's socket, inside the writer's system call). With --cpu-s-per-gb (the relay's
CPU-seconds per GB forwarded, from the same run), each bucket's share is also given in
CPU-seconds per GB. Several files are added up.
"""

import collections
import subprocess
import sys

BUCKETS = [
    "TLS decrypt (AES-GCM open)",
    "TLS encrypt (AES-GCM seal)",
    "BoringSSL record layer, other",
    "copies in the relay process (memmove/memcpy)",
    "allocation (malloc, free, Swift objects)",
    "Swift reference counting (retain/release)",
    "NIO and relay code (pipeline, handlers, frame scanning)",
    "kernel: write system calls (incl. loopback delivery to the reader)",
    "kernel: read system calls",
    "kernel: epoll and other system calls",
    "kernel: page faults",
    "kernel: scheduling and wake-ups",
    "kernel: other (interrupts, timers)",
]


def classify(frames):
    """frames: list of (symbol, dso), leaf first."""
    leaf, dso = frames[0]
    kernel = dso.startswith("[kernel")
    names = [f[0] for f in frames]
    if kernel:
        joined = " ".join(names)
        if "exc_page_fault" in joined:
            return BUCKETS[10]
        if any(n in ("schedule", "__schedule", "finish_task_switch.isra.0", "schedule_hrtimeout_range") for n in names[:8]) and "tcp_sendmsg" not in joined:
            return BUCKETS[11]
        if "ksys_write" in joined or "do_writev" in joined or "__sys_sendmsg" in joined or "__sys_sendto" in joined:
            return BUCKETS[7]
        if "ksys_read" in joined or "do_readv" in joined or "__sys_recvmsg" in joined or "__sys_recvfrom" in joined:
            return BUCKETS[8]
        if "do_syscall_64" in joined:
            return BUCKETS[9]
        return BUCKETS[12]
    low = leaf.lower()
    if "aes_gcm_dec" in low or ("gcm" in low and "decrypt" in low) or "aesni_gcm_decrypt" in low:
        return BUCKETS[0]
    if "aes_gcm_enc" in low or ("gcm" in low and "encrypt" in low) or "aesni_gcm_encrypt" in low:
        return BUCKETS[1]
    if "cnioboringssl" in low or low.startswith("bssl::") or "ghash" in low or "aes" in low:
        return BUCKETS[2]
    if "memmove" in low or "memcpy" in low:
        return BUCKETS[3]
    if any(k in low for k in ("malloc", "free", "swift_allocobject", "swift_slowalloc", "swift_deallocobject", "swift_slowdealloc", "cfree", "tcache")):
        return BUCKETS[4]
    if "swift_retain" in low or "swift_release" in low or "swift_bridgeobject" in low:
        return BUCKETS[5]
    return BUCKETS[6]


def samples(path):
    text = subprocess.run(["perf", "script", "-i", path, "-F", "ip,sym,dso"], capture_output=True, text=True).stdout
    block = []
    for line in text.splitlines():
        if not line.strip():
            if block:
                yield block
            block = []
            continue
        parts = line.strip().split(None, 1)
        if len(parts) < 2:
            continue
        rest = parts[1]
        dso = rest[rest.rfind("(") + 1 : -1] if rest.endswith(")") else ""
        symbol = rest[: rest.rfind("(")].strip() if "(" in rest else rest
        symbol = symbol.split("+0x")[0]
        block.append((symbol, "[kernel" if "kernel" in dso else dso))
    if block:
        yield block


def main():
    args = sys.argv[1:]
    per_gb = None
    if "--cpu-s-per-gb" in args:
        index = args.index("--cpu-s-per-gb")
        per_gb = float(args[index + 1])
        del args[index : index + 2]
    if not args:
        raise SystemExit(__doc__)
    counts = collections.Counter()
    total = 0
    for path in args:
        for frames in samples(path):
            counts[classify(frames)] += 1
            total += 1
    header = "| where | share of the relay's CPU |" + (" CPU-s per GB |" if per_gb else "")
    print(header)
    print("|---|---:|" + ("---:|" if per_gb else ""))
    for bucket in BUCKETS:
        share = counts[bucket] / total
        print(f"| {bucket} | {100 * share:.1f}% |" + (f" {share * per_gb:.2f} |" if per_gb else ""))
    print(f"| all ({total} samples) | 100% |" + (f" {per_gb:.2f} |" if per_gb else ""))


if __name__ == "__main__":
    main()
