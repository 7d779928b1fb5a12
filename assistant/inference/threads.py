"""The generation engine's thread count (assistant/inference/engine.py): all usable CPUs while they are free,
one when another process keeps a core busy, found by timing decode steps as they run.

    tuner = ThreadTuner(usable_cpus())
    threads = tuner.pick()                  # before a decode step
    tuner.record(seconds)                   # after it
"""


class ThreadTuner:
    """Chooses the engine thread's torch thread count by timing decode steps.

    All usable CPUs win while they are free (32 vs 20 tokens/s on 2 cores). When another process keeps
    a core busy, a 2-thread OpenMP team waits at every barrier for its descheduled peer and decoding
    collapses (8 tokens/s measured), while one thread keeps its 20. So: run the faster setting, time the
    other one for WINDOW steps early on, every PROBE_EVERY steps, and at once when a step of the current
    setting takes 1.5x its average (contention just began). Probing costs about 1% when nothing changes.
    """

    WINDOW, PROBE_EVERY = 2, 256

    def __init__(self, cpus: int):
        self.options = sorted({1, max(1, cpus)}, reverse=True)
        self.best = self.options[0]
        self.seconds: dict[int, float] = {}  # moving average of a decode step per thread count
        self.steps = 0
        self.current = self.best
        self._probe: list[float] = []

    def pick(self) -> int:
        phase = self.steps % self.PROBE_EVERY
        probing = len(self.options) > 1 and self.WINDOW <= phase < 2 * self.WINDOW
        self.current = next(n for n in self.options if n != self.best) if probing else self.best
        return self.current

    def record(self, seconds: float) -> None:
        phase = self.steps % self.PROBE_EVERY
        self.steps += 1
        if self.current != self.best:  # a probe: a fresh reading of the other setting, not an average
            self._probe.append(seconds)
            if len(self._probe) == self.WINDOW:
                self.seconds[self.current] = sum(self._probe) / self.WINDOW
                self._probe = []
        else:
            previous = self.seconds.get(self.current)
            if previous is not None and seconds > 1.5 * previous and phase >= 2 * self.WINDOW:
                self.steps = self.WINDOW  # slower than usual: probe the other setting next
            self.seconds[self.current] = seconds if previous is None else 0.7 * previous + 0.3 * seconds
        if len(self.seconds) == len(self.options):
            self.best = min(self.seconds, key=self.seconds.get)
