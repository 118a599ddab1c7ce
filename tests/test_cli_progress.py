"""Progress where nobody watches: plain one-line records, at most one every N seconds."""

from __future__ import annotations

import io

from compressopt.cli import _PlainProgress


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_plain_progress_is_throttled_and_estimates_the_remaining_time():
    clock, out = Clock(), io.StringIO()
    p = _PlainProgress(out, every=30.0, clock=clock)
    p.event("reference_start", {"epochs": 4})
    for e in range(4):
        clock.t += 10.0
        p.event("reference_epoch", {"epoch": e, "loss": 1.0 / (e + 1)})
    p.event("reference_done", {"accuracy": 0.9, "seconds": 40.0})
    p.event("compress_start", {"steps": 3, "method": "lc", "epochs": 1, "first_epochs": 2})
    for k, epochs in enumerate((2, 1, 1)):
        for e in range(epochs):
            clock.t += 20.0
            p.event("lstep_epoch", {"step": k, "epoch": e, "loss": 0.5})
        p.event("step", {"k": k, "test_accuracy": 0.8 + k / 100, "mu": 1.0})
    lines = out.getvalue().splitlines()
    # 120 s in all, one line at most every 30 s: at 0 (start), 30, 60, 90 (or so), 120
    assert 3 <= len(lines) <= 5
    assert lines[0] == "compressopt: reference  elapsed 0:00"
    assert lines[1] == ("compressopt: reference  epoch 3/4  loss 0.3333  elapsed 0:30  "
                        "remaining ~0:10")
    assert all(line.startswith("compressopt: ") and "elapsed " in line for line in lines)
    assert any(line.startswith("compressopt: LC  iteration ") for line in lines)
    assert lines[-1] == ("compressopt: LC  iteration 2/3  epoch 1/1  loss 0.5000  "
                         "test accuracy 0.8000  elapsed 1:40  remaining ~0:20")


def test_every_event_with_a_zero_interval():
    clock, out = Clock(), io.StringIO()
    p = _PlainProgress(out, every=0.0, clock=clock)
    p.event("compress_start", {"steps": 2, "method": "slr", "epochs": 1, "first_epochs": 1})
    clock.t = 3725.0
    p.event("step", {"k": 0, "test_accuracy": None})
    p.event("unknown_kind", {})
    assert out.getvalue().splitlines() == [
        "compressopt: SLR  elapsed 0:00",
        "compressopt: SLR  iteration 1/2  test accuracy -  elapsed 1:02:05  remaining ~1:02:05",
    ]
