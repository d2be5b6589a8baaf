"""Progress bars on stderr: one overall bar (responses, ETA) and one bar per role in progress, both
with tokens/s; without a terminal, a plain line every 30 s with tokens/s and the stage's ETA."""
from __future__ import annotations

import sys
import time

from tqdm import tqdm


class GenerationProgress:
    """``update(role, n_responses, n_tokens)`` as results arrive; ``close()`` at the end.

    Role bars are opened when a role first appears and closed (left out of the final screen) when
    the role is complete, so at most the roles in flight have a bar.
    """

    def __init__(self, remaining_by_role: dict[str, int], *, disable: bool | None = None, log_every_s: float = 30.0,
                 quiet: bool = False):
        self.remaining = {r: n for r, n in remaining_by_role.items() if n > 0}
        total = sum(self.remaining.values())
        # Not a terminal (a pipeline log): no bars, a plain line every ``log_every_s`` and per finished role.
        self.disable = (not sys.stderr.isatty()) if disable is None else disable
        self.quiet = quiet  # no output at all (a worker of several: the parent reports)
        self.total = total
        self.done = 0
        self.log_every_s = log_every_s
        self.t0 = time.monotonic()
        self.last_log = self.t0
        self.tokens = 0
        self.overall = tqdm(total=total, desc="all roles", unit="resp", position=0, file=sys.stderr,
                            disable=self.disable, dynamic_ncols=True)
        self.role_bars: dict[str, tqdm] = {}
        self.role_tokens: dict[str, int] = {}
        self.role_t0: dict[str, float] = {}

    def _bar(self, role: str) -> tqdm:
        bar = self.role_bars.get(role)
        if bar is None:
            bar = tqdm(total=self.remaining.get(role, 0), desc=role, unit="resp", position=1 + len(self.role_bars),
                       leave=False, file=sys.stderr, disable=self.disable, dynamic_ncols=True)
            self.role_bars[role] = bar
            self.role_tokens[role] = 0
            self.role_t0[role] = time.monotonic()
        return bar

    def tokens_per_second(self) -> float:
        dt = time.monotonic() - self.t0
        return self.tokens / dt if dt > 0 else 0.0

    def eta_seconds(self) -> float | None:
        dt = time.monotonic() - self.t0
        if self.done <= 0 or dt <= 0:
            return None
        return (self.total - self.done) * dt / self.done

    def update(self, role: str, n_responses: int, n_tokens: int) -> None:
        bar = self._bar(role)
        self.tokens += n_tokens
        self.role_tokens[role] += n_tokens
        dt = time.monotonic() - self.role_t0[role]
        bar.set_postfix_str(f"{self.role_tokens[role] / dt if dt > 0 else 0.0:.0f} tok/s", refresh=False)
        bar.update(n_responses)
        self.overall.set_postfix_str(f"{self.tokens_per_second():.0f} tok/s", refresh=False)
        self.overall.update(n_responses)
        self.remaining[role] = self.remaining.get(role, 0) - n_responses
        self.done += n_responses
        finished = self.remaining[role] <= 0
        if finished:
            bar.close()
            del self.role_bars[role]
        now = time.monotonic()
        if self.disable and not self.quiet and (finished or now - self.last_log >= self.log_every_s):
            self.last_log = now
            what = f"role {role} done; " if finished else ""
            eta = self.eta_seconds()
            eta_s = time.strftime("%H:%M:%S", time.gmtime(eta)) if eta is not None and eta < 86400 * 30 else "?"
            print(f"progress: {what}{self.done}/{self.total} responses, {self.tokens_per_second():.0f} tok/s, "
                  f"ETA {eta_s}", file=sys.stderr, flush=True)

    def close(self) -> None:
        for bar in list(self.role_bars.values()):
            bar.close()
        self.role_bars.clear()
        self.overall.close()
