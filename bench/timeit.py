#!/usr/bin/env python3
"""Times one benchmark pair for bench/compare.sh: diskforge against a
reference command, in alternating paired runs, each in a fresh scratch
directory made by an untimed setup command.

    timeit.py --runs N --fast-runs M --scratch DIR [--setup CMD] OURS REF

A command without shell syntax (after $VAR expansion from the
environment) is timed as a bare process: posix_spawn, then waitpid, with
stdout and stderr on /dev/null, so that no shell start-up (several ms) is
added to a command that itself takes a few ms. A command with shell syntax
(pipes, redirections, $(...), &&) runs with `bash -c`, as workloads that
take seconds do.

Workloads whose first pair takes under FAST_LIMIT seconds on both sides
get M more paired runs (the first was a warm-up), the others N in all
(the first counts). Prints one tab-separated
line: method, runs, median reference seconds, median diskforge seconds,
median of the per-pair ratios reference/diskforge, and the 25th and 75th
percentiles of both sides.
"""

import argparse
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time

FAST_LIMIT = 0.1
SHELL_SYNTAX = re.compile(r"[|&;<>()`*?~\\\n]|\$")


def argv_of(cmd):
    """The argv of a command without shell syntax, or None."""
    expanded = os.path.expandvars(cmd)
    if SHELL_SYNTAX.search(expanded):
        return None
    return shlex.split(expanded)


def spawn_and_wait(argv, cwd):
    """Runs argv in cwd, stdout/stderr to /dev/null; returns (seconds, status)."""
    actions = [
        (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
        (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
    ]
    old = os.getcwd()
    os.chdir(cwd)
    try:
        t0 = time.perf_counter_ns()
        pid = os.posix_spawnp(argv[0], argv, os.environ, file_actions=actions)
        _, status = os.waitpid(pid, 0)
        t1 = time.perf_counter_ns()
    finally:
        os.chdir(old)
    return (t1 - t0) / 1e9, os.waitstatus_to_exitcode(status)


EXPECT_EXIT = 0


def run_timed(cmd, cwd):
    argv = argv_of(cmd)
    if argv is None:
        argv = ["bash", "-c", cmd]
    seconds, code = spawn_and_wait(argv, cwd)
    if code != EXPECT_EXIT:
        sys.exit(f"FAILED (exit {code}): {cmd}")
    return seconds


def fresh_dir(scratch, setup):
    d = os.path.join(scratch, "run")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    if setup:
        subprocess.run(
            ["bash", "-c", setup],
            cwd=d,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=True,
        )
    return d


def pair(ours, ref, scratch, setup, ref_first):
    """One paired run; returns (reference seconds, diskforge seconds)."""
    times = {}
    order = [("ref", ref), ("ours", ours)]
    if not ref_first:
        order.reverse()
    for side, cmd in order:
        d = fresh_dir(scratch, setup)
        times[side] = run_timed(cmd, d)
    return times["ref"], times["ours"]


def quartiles(xs):
    q = statistics.quantiles(xs, n=4, method="inclusive") if len(xs) > 1 else [xs[0]] * 3
    return q[0], q[2]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, required=True)
    p.add_argument("--fast-runs", type=int, required=True)
    p.add_argument("--scratch", required=True)
    p.add_argument("--setup", default="")
    # The exit status both commands must end with (compare: 1, different).
    p.add_argument("--expect-exit", type=int, default=0)
    p.add_argument("ours")
    p.add_argument("ref")
    a = p.parse_args()
    global EXPECT_EXIT
    EXPECT_EXIT = a.expect_exit

    # The first pair decides: under FAST_LIMIT it was a warm-up (page
    # cache, shared libraries) and M pairs follow; otherwise it counts as
    # the first of N, as a warm-up is nothing next to seconds of work.
    first_ref, first_ours = pair(a.ours, a.ref, a.scratch, a.setup, True)
    fast = max(first_ref, first_ours) < FAST_LIMIT
    n = a.fast_runs if fast else a.runs
    refs, ours = ([], []) if fast else ([first_ref], [first_ours])
    for i in range(len(refs), n):
        r, o = pair(a.ours, a.ref, a.scratch, a.setup, i % 2 == 0)
        refs.append(r)
        ours.append(o)
    ratios = [r / o for r, o in zip(refs, ours)]
    bare = argv_of(a.ours) is not None and argv_of(a.ref) is not None
    method = "process" if bare else "bash -c"
    fields = [
        method,
        n,
        statistics.median(refs),
        statistics.median(ours),
        statistics.median(ratios),
        *quartiles(refs),
        *quartiles(ours),
    ]
    print("\t".join(str(f) for f in fields))


if __name__ == "__main__":
    main()
