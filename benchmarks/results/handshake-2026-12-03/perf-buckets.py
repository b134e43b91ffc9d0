import re, subprocess, sys, collections
def buckets(path):
    out = subprocess.run(["perf","report","-i",path,"--no-children","--sort","dso,symbol","-g","none","--stdio","--percent-limit","0"],capture_output=True,text=True).stdout
    b = collections.OrderedDict((k,0.0) for k in ["X25519 (ECDHE)","P-256 (ECDSA signature)","SHA-2/HMAC/HKDF (key schedule, transcript, tickets)","AES (records, tickets, RNG)","other BoringSSL (handshake code, CBB/CBS, its mallocs)","Swift + NIO (relay-server code, libswiftCore, Foundation)","libc (malloc, free, memcpy)","kernel: scheduler and wake-ups","kernel: TCP/IP, sockets, epoll, syscalls"])
    for line in out.splitlines():
        m = re.match(r"\s+([\d.]+)%\s+(\S+)\s+\[([.k])\]\s+(.*)", line)
        if not m: continue
        pct, dso, kind, sym = float(m.group(1)), m.group(2), m.group(3), m.group(4).strip()
        s = sym.lower()
        if kind == "k":
            if any(x in s for x in ["finish_task_switch","schedule","__switch_to","pick_next","enqueue","dequeue","update_curr","ttwu","try_to_wake","raw_spin_unlock_irq","psi_","hrtimer","idle"]):
                b["kernel: scheduler and wake-ups"] += pct
            else:
                b["kernel: TCP/IP, sockets, epoll, syscalls"] += pct
        elif "25519" in s or s.startswith("fe_") or s.startswith("ge_") or "x25519" in s:
            b["X25519 (ECDHE)"] += pct
        elif "nistz256" in s or "ecdsa" in s or "p256" in s or s.startswith("cniboringssl_bn") or "ec_gfp" in s or "ec_scalar" in s or "ec_point" in s or "bn_" in s or "ec_get_x" in s or "ec_simple" in s or "ec_felem" in s:
            b["P-256 (ECDSA signature)"] += pct
        elif "sha" in s or "hmac" in s or "hkdf" in s or "md_" in s:
            b["SHA-2/HMAC/HKDF (key schedule, transcript, tickets)"] += pct
        elif "aes" in s or "gcm" in s or "ghash" in s or "ctr_drbg" in s:
            b["AES (records, tickets, RNG)"] += pct
        elif dso == "relay-server" and ("cnioboringssl" in s or s.startswith("bssl::") or "cbb" in s or "cbs" in s):
            b["other BoringSSL (handshake code, CBB/CBS, its mallocs)"] += pct
        elif dso.startswith("libc") or dso.startswith("ld-linux"):
            b["libc (malloc, free, memcpy)"] += pct
        else:
            b["Swift + NIO (relay-server code, libswiftCore, Foundation)"] += pct
    return b
full, resumed = buckets(sys.argv[1]), buckets(sys.argv[2])
fu, ru = float(sys.argv[3]), float(sys.argv[4])
print("| where | full: share | full: µs | resumed: share | resumed: µs |")
print("|---|---|---|---|---|")
for k in full:
    print("| %s | %.1f%% | %.0f | %.1f%% | %.0f |" % (k, full[k], full[k]*fu/100, resumed[k], resumed[k]*ru/100))
print("| total sampled | %.1f%% | %.0f | %.1f%% | %.0f |" % (sum(full.values()), fu, sum(resumed.values()), ru))
