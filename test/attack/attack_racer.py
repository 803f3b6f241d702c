"""A racing process for test_races.py: swaps pairs of names in one folder
with renameat2(RENAME_EXCHANGE) as fast as it can, while told to.

    attack_racer.py <folder> <name>:<name> [<name>:<name> ...]

Reads commands on stdin, one a line: "go [pause_us [delay_us]]" starts
swapping delay_us microseconds later (the pairs in turn, pausing about
pause_us microseconds after each swap; both 0 by default), "stop" stops and answers "stopped <swaps done so far>" on stdout once
no swap is in flight, and "pairs <name>:<name> ..." (while stopped) sets
the pairs swapped from then on. A swap that fails (a name is missing: the agent
renamed it away) is simply tried again on the next turn. EOF ends it.
"""

import ctypes
import os
import sys
import threading
import time

_libc = ctypes.CDLL(None, use_errno=True)
RENAME_EXCHANGE = 2


def rename_exchange(dir_fd, a, b):
    """Swaps two names of one folder atomically; 0 or an errno."""
    r = _libc.renameat2(dir_fd, os.fsencode(a), dir_fd, os.fsencode(b), RENAME_EXCHANGE)
    return 0 if r == 0 else ctypes.get_errno()


def main():
    folder = sys.argv[1]
    pairs = [tuple(p.split(":", 1)) for p in sys.argv[2:]]
    dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    go = threading.Event()
    idle = threading.Event()
    idle.set()
    done = threading.Event()
    swaps = [0]
    pause_s = [0.0]
    start_at = [0.0]

    def swapper():
        while not done.is_set():
            if not go.wait(0.05):
                continue
            idle.clear()
            while go.is_set() and time.monotonic() < start_at[0]:
                pass
            while go.is_set():
                for a, b in pairs:
                    if rename_exchange(dir_fd, a, b) == 0:
                        swaps[0] += 1
                    if pause_s[0]:
                        time.sleep(pause_s[0])
            idle.set()

    t = threading.Thread(target=swapper, daemon=True)
    t.start()
    for line in sys.stdin:
        cmd = line.strip()
        if cmd.startswith("go"):
            words = cmd.split()
            pause_s[0] = int(words[1]) / 1e6 if len(words) > 1 else 0.0
            start_at[0] = time.monotonic() + (int(words[2]) / 1e6 if len(words) > 2 else 0.0)
            go.set()
        elif cmd.startswith("pairs "):
            pairs[:] = [tuple(p.split(":", 1)) for p in cmd.split()[1:]]
        elif cmd == "stop":
            go.clear()
            idle.wait()
            print(f"stopped {swaps[0]}", flush=True)
    done.set()
    go.clear()
    t.join()


if __name__ == "__main__":
    main()
