#!/usr/bin/env python3
"""Times whole processes for scripts/bench/ci.sh: each command's median wall time and its largest
peak RSS over RUNS runs, after WARMUP runs, printed as one tab-separated line per command.

  procs.py RUNS WARMUP -- CMD1 ARGS... -- CMD2 ARGS... ...

Each timed run is one posix_spawn and one wait4, spawn to reaped exit: no /usr/bin/time or
shell process in between whose own start-up would be timed too (about 1 ms, the same for every
command, so it flattened the ratios). The peak RSS comes from a separate run of each under
`/usr/bin/time -f %M`: a posix_spawn child's ru_maxrss counts this Python's pages (the child
shares its memory until exec), while GNU time forks from a process of 2 MiB. Runs are
interleaved (one run of each command in turn), so a change of machine load weighs on all
commands alike. Standard output and error go to /dev/null; a run exiting above 1 (neither
allowed nor denied) aborts the benchmark.
"""
import os
import statistics
import sys
import tempfile
import time


def commands(argv):
    cmds, current = [], None
    for arg in argv:
        if arg == "--":
            current = []
            cmds.append(current)
        elif current is not None:
            current.append(arg)
    return [c for c in cmds if c]


def spawn(cmd, devnull):
    actions = [(os.POSIX_SPAWN_DUP2, devnull, 1), (os.POSIX_SPAWN_DUP2, devnull, 2)]
    start = time.perf_counter_ns()
    pid = os.posix_spawnp(cmd[0], cmd, os.environ, file_actions=actions)
    _, status, _ = os.wait4(pid, 0)
    wall = time.perf_counter_ns() - start
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):
        sys.exit(f"procs: {' '.join(cmd)} exited {code}")
    return wall / 1e6


def peak_rss(cmd, devnull):
    """The peak RSS of one run, in MiB, as GNU time reports it."""
    with tempfile.NamedTemporaryFile("r") as out:
        spawn(["/usr/bin/time", "-f", "%M", "-o", out.name, *cmd], devnull)
        return int(out.read().split()[-1]) / 1024


def main():
    runs, warmup = int(sys.argv[1]), int(sys.argv[2])
    cmds = commands(sys.argv[3:])
    devnull = os.open(os.devnull, os.O_WRONLY)
    walls = [[] for _ in cmds]
    peaks = [0.0 for _ in cmds]
    for n in range(warmup + runs):
        for i, cmd in enumerate(cmds):
            wall = spawn(cmd, devnull)
            if n >= warmup:
                walls[i].append(wall)
                peaks[i] = max(peaks[i], peak_rss(cmd, devnull))
    for i in range(len(cmds)):
        print(f"{statistics.median(walls[i]):.2f}\t{peaks[i]:.1f}")


if __name__ == "__main__":
    main()
