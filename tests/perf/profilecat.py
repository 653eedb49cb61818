#!/usr/bin/env python3
"""CPU per operation by library, from Go CPU profiles (docs/PERFORMANCE.md, issue 14).

Each sample of `go tool pprof -traces` is charged to the library of the frame
nearest the leaf that is not the Go runtime or standard-library plumbing
(syscall, net, bufio, io, os, sync, ...): a write syscall under Raft's
transport counts as Raft, a memmove under Badger's skiplist as Badger, a
mallocgc under protobuf as protobuf. Samples with no such frame (the GC, the
scheduler) count as runtime.

Usage: tests/perf/profilecat.py BINARY OPS PROFILE...
  OPS: how many operations the profiled interval carried (appends/s x seconds).
"""
import collections
import re
import subprocess
import sys

PLUMBING = re.compile(
    r'^(runtime|internal/|syscall|net\.|net/netip|bufio|io\.|os\.|sync|context|time\.|reflect|sort|'
    r'strings|bytes|strconv|fmt|errors|math|slices|maps|unicode|encoding/binary|hash|crypto|log/slog|'
    r'iter|container|cmp|unique|weak|vendor/|golang.org/x/sys|github.com/dgraph-io/ristretto|'
    r'github.com/klauspost|github.com/golang/snappy)')


def library(fn):
    if fn.startswith('github.com/meridiandb/meridian') or fn.startswith('main.') or 'cenkalti/backoff' in fn:
        return 'meridian'
    if 'dgraph-io/badger' in fn:
        return 'badger'
    if 'hashicorp/raft' in fn or 'go-msgpack' in fn:
        return 'raft'
    if (fn.startswith('net/http') or fn.startswith('net/textproto') or fn.startswith('mime')
            or fn.startswith('compress') or 'connectrpc' in fn or 'golang.org/x/net' in fn):
        return 'http+connect'
    if 'google.golang.org/protobuf' in fn:
        return 'protobuf'
    return None


def categorize(binary, profile):
    out = subprocess.run(['go', 'tool', 'pprof', '-traces', binary, profile],
                         capture_output=True, text=True, check=True).stdout
    per = collections.Counter()
    for block in out.split('-----------+-------------------------------------------------------')[1:]:
        lines = [l.strip() for l in block.strip().split('\n') if l.strip()]
        m = re.match(r'([\d.]+)(ms|s)\s+(.*)', lines[0]) if lines else None
        if not m:
            continue
        ms = float(m.group(1)) * (1000 if m.group(2) == 's' else 1)
        frames = [m.group(3).strip()] + lines[1:]
        lib = next((l for l in (library(f) for f in frames if not PLUMBING.match(f)) if l), None)
        per[lib or 'runtime'] += ms
    return per


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    binary, ops = sys.argv[1], float(sys.argv[2])
    for profile in sys.argv[3:]:
        per = categorize(binary, profile)
        total = sum(per.values())
        print('%s: %.2f s, %.0f us per op' % (profile, total / 1000, total * 1000 / ops))
        for lib, ms in per.most_common():
            print('  %-14s %5.1f%% %6.0f us per op' % (lib, 100 * ms / total, ms * 1000 / ops))


if __name__ == '__main__':
    main()
