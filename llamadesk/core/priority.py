"""The window before the computation: llama.cpp's threads run at a lower CPU priority than the GUI thread.

On a machine whose cores all compute a reply (a 2-core laptop with 2 llama.cpp threads), the GUI thread waits for
the scheduler and the window stutters: bench/bench_gui.py measured single 30–80 ms stalls. Linux schedules threads
one by one and lets a process raise the niceness of its own threads without privileges, so every thread of the
process but the GUI thread gets COMPUTE_NICE: the GUI thread then preempts them as soon as it has work. Where each
program runs in a cgroup or autogroup of its own (systemd desktops put every app in its own scope; the kernel's
autogroup gives each session one), niceness only orders the threads inside LlamaDesk, and other programs share the
CPU with it as before; where all share one group, the compute threads also give way to other busy programs.
Elsewhere (macOS, Windows) this does nothing.
"""

from __future__ import annotations

import logging
import os
import sys
import threading

log = logging.getLogger(__name__)

COMPUTE_NICE = 5  # CFS weight 335 against the GUI thread's 1024: the GUI wins the core when it needs it
_TASKS = "/proc/self/task"


def yield_to(gui_thread_id: int | None = None) -> int:
    """Raises every other thread of this process to COMPUTE_NICE (never lowers a niceness); returns how many
    threads it changed. `gui_thread_id`: the native id of the thread to keep (default: the main thread)."""
    if not sys.platform.startswith("linux"):
        return 0
    keep = gui_thread_id if gui_thread_id is not None else threading.main_thread().native_id
    changed = 0
    try:
        tids = [int(name) for name in os.listdir(_TASKS)]
    except OSError:
        return 0
    for tid in tids:
        if tid == keep:
            continue
        try:
            if os.getpriority(os.PRIO_PROCESS, tid) < COMPUTE_NICE:
                os.setpriority(os.PRIO_PROCESS, tid, COMPUTE_NICE)
                changed += 1
        except OSError:  # the thread ended meanwhile, or a sandbox forbids it: the window just stutters more
            continue
    if changed:
        log.debug("Lowered the CPU priority of %d compute thread(s)", changed)
    return changed
