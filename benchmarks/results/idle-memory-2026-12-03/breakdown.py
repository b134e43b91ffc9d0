#!/usr/bin/env python3
"""Sorts heaptrack's peak allocations of relay-server into what made them.

Usage: breakdown.py PEAK_STACKS CONNECTIONS
PEAK_STACKS is `heaptrack_print -F FILE --flamegraph-cost-type peak` output (one
"frame;frame;... bytes" line per stack); CONNECTIONS the TLS connections open at the peak
(2 per paired session). Prints bytes per connection by owner, largest first. The figures
are heap bytes allocated, not resident: pages never written (most of a large buffer)
count here but not in RSS. Fixed costs (start-up, the store) are divided too.
"""
import collections
import re
import subprocess
import sys

path, connections = sys.argv[1], int(sys.argv[2])
rows = []
for line in open(path):
    stack, _, size = line.rstrip("\n").rpartition(" ")
    rows.append(([frame.split(" (")[0] for frame in stack.split(";")], int(size)))
symbols = sorted({frame for frames, _ in rows for frame in frames})
demangled = subprocess.run(
    ["swift", "demangle", "--simplified", "--compact"], input="\n".join(symbols), capture_output=True, text=True, check=True
).stdout.splitlines()
names = dict(zip(symbols, demangled))

# Frames that only say "allocation" or "collection growth", skipped to find the owner.
plumbing = re.compile(
    r"swift_slowAlloc|swift_allocObject|malloc|swift_allocBox|_allocateUninitialized|Array|Dictionary|ContiguousArrayBuffer|"
    r"_NativeDictionary|_NativeSet|Set\.|String|swift_|__allocating_init|reserveCapacity|Data|CircularBuffer|^$|0x"
)


def owner(frames):
    text = ";".join(frames)
    if "NIOSSLHandler.handlerAdded" in text:
        if "ByteBufferBIO" in text:
            return "NIOSSL: outbound record buffer (ByteBufferBIO, 16 KiB)"
        return "NIOSSL: plaintext read buffer (2 records, 32 KiB)"
    if "CNIOBoringSSL" in text:
        return "BoringSSL: SSL object, record keys, session, peer certificate"
    if "NIOSSL" in text and "MarkedCircularBuffer" in text:
        return "NIOSSL: buffered-writes queue"
    if "NIOSSL" in text:
        return "NIOSSL: handler and connection objects"
    if "sqlite" in text.lower() or "GRDB" in text:
        return "SQLite store (fixed, not per connection)"
    leaf = [frame for frame in frames if not plumbing.search(frame)]
    last = leaf[-1] if leaf else frames[-1]
    if re.search(r"Relay|ConnectionLink|ALPNGate|TLSHandshakeObserver|AgentKey|Pairing|Session|Store|Usage", last):
        return "relay-server: connection state, session, pairing"
    if "ByteBuffer._Storage.allocateStorage" in last:
        return "NIO: pooled receive buffer"
    if re.search(r"NIO|Channel|Pipeline|Socket|EventLoop|PendingStream|ByteBuffer|Selectable", last):
        return "NIO: channel, pipeline, pending writes"
    if re.search(r"Log", last):
        return "logging"
    return "other (runtime, start-up)"


totals = collections.Counter()
for frames, size in rows:
    totals[owner([names[frame] for frame in frames])] += size
for name, size in totals.most_common():
    print(f"{size / connections:9.0f}  {name}")
print(f"{sum(totals.values()) / connections:9.0f}  bytes allocated per connection in all ({connections} connections)")
