"""docs/failover.png from the failover fault suite's flap scenario (tests/test_failover_faults.py,
test 3): emails taken per second by each provider, postmark's outages and circuit, and the
latency from Logto's call to the provider taking the email.

    export MAILROOM_FAILOVER_TIMELINE=/tmp/failover.json
    .venv/bin/python -m pytest tests/test_failover_faults.py -k flaps
    .venv/bin/python -m benchmarks.failover_plot /tmp/failover.json docs/failover.png

(matplotlib comes with benchmarks/requirements.txt.)
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

STATE_LEVEL = {"closed": 0, "half_open": 1, "open": 2}


def plot(timeline_path: Path, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = json.loads(timeline_path.read_text())
    states, sends = data["states"], data["sends"]
    end = max([s["t"] for s in states] + [s["t"] for s in sends] + [1])
    seconds = range(int(end) + 1)
    taken = {
        name: Counter(
            int(s["t"]) for s in sends if s["provider"] == name and s["status"] // 100 == 2
        )
        for name in ("postmark", "amazon_ses")
    }

    figure, (rate, circuit, latency) = plt.subplots(
        3, 1, figsize=(11, 7), sharex=True, gridspec_kw={"height_ratios": [3, 1, 2]}
    )
    for axis in (rate, circuit, latency):
        down_since = None
        for sample in states + [{"t": end, "postmark_down": False}]:
            if sample["postmark_down"] and down_since is None:
                down_since = sample["t"]
            elif not sample["postmark_down"] and down_since is not None:
                axis.axvspan(down_since, sample["t"], color="#f4cccc", lw=0)
                down_since = None

    rate.stackplot(
        list(seconds),
        [taken["postmark"][s] for s in seconds],
        [taken["amazon_ses"][s] for s in seconds],
        labels=["taken by postmark", "taken by amazon_ses"],
        colors=["#3d85c6", "#e69138"],
        step="post",
    )
    rate.set_ylabel("emails / s")
    rate.legend(loc="upper right", fontsize=8)
    rate.set_title("postmark cut off the network 20 s of every 40 (red); 20 emails/s for 2 min")

    circuit.step(
        [s["t"] for s in states],
        [STATE_LEVEL.get(s["circuit"], 0) for s in states],
        where="post",
        color="#444",
    )
    circuit.set_yticks([0, 1, 2], ["closed", "half-open", "open"])
    circuit.set_ylabel("postmark\ncircuit")

    ok = [s for s in sends if s["status"] // 100 == 2]
    latency.scatter([s["t"] for s in ok], [s["latency"] for s in ok], s=2, color="#444")
    latency.set_ylabel("Logto's call →\nprovider took it (s)")
    latency.set_xlabel("seconds")
    figure.tight_layout()
    figure.savefig(out, dpi=110)


if __name__ == "__main__":
    plot(Path(sys.argv[1]), Path(sys.argv[2]))
