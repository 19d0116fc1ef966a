"""What the textbook rules of Tahoe and Reno earn at a given random loss rate, in
expectation: a yardstick for ``bench.rudp``'s lossy rows, computed in the same run.

    python -m bench._round_model [--loss 0.05] [--rounds 400000]

The classic round model (the one the Mathis bound itself comes from). Its simplifications
are in the algorithm's favour but one: whole rounds (a real sender sends on each ACK, in
the middle of a round, and may do a little better than the model):

- time runs in rounds of one RTT; in a round the sender sends ``cwnd`` chunks and each is
  lost independently with probability ``p`` (the data direction only: ACKs never get lost);
- a loss is known at the end of its round (no detection delay, no timeout, ever), and a
  round with any loss halves the window once: ssthresh = max(⌊cwnd⌋ / 2, 2);
- Reno and NewReno: the next round is fast recovery and sends ssthresh chunks (the
  retransmissions included: RFC 6675's pipe); the window then deflates to ssthresh and grows
  by one chunk per loss-free round (congestion avoidance; no growth in recovery, by Reno's
  rule, and NewReno stays in recovery at least as long);
- Tahoe: the next round sends one chunk (cwnd = 1: the retransmission), then the
  cumulative ACK takes cwnd straight back to ssthresh (byte counting; slow start really
  needs rounds for that), then one chunk more per loss-free round;
- no handshake, no slow start from one chunk, no FIN, no processing time.

The result is unique chunks delivered per round over ``1/√p`` (the Mathis bound
MSS / (RTT·√p) in chunks per RTT), so it reads like the bench's ratios. At 5 % loss Reno's
rules give ~1.00 and Tahoe's ~0.95: a target of ≥ 1 at 5 % is where Reno can be expected
to land, on either side by its loss pattern, and above where Tahoe's rule can be expected
to (an implementation following it passes only with a lucky loss pattern).
"""

from __future__ import annotations

import argparse
import math
import random

RENO_LIKE = ("reno", "newreno")
MODELLED = ("tahoe", *RENO_LIKE)


def round_model_ratio(algo: str, loss: float, *, rounds: int, seed: int = 1) -> float:
    """Mean unique chunks delivered per RTT under ``algo``'s rules, over ``1/√loss``."""
    if algo not in MODELLED:
        raise ValueError(f"no round model for {algo!r}")
    if not 0.0 < loss < 1.0 or rounds < 1:
        raise ValueError("loss must be in (0, 1) and rounds positive")
    rng = random.Random(seed)
    cwnd, recovering, delivered = 1.0, False, 0
    ssthresh = math.inf
    for _ in range(rounds):
        sent = 1 if recovering and algo == "tahoe" else int(cwnd)
        lost = sum(rng.random() < loss for _ in range(sent))
        delivered += sent - lost
        if lost:
            ssthresh = max(int(cwnd) // 2, 2)
            cwnd, recovering = float(ssthresh), True
        elif recovering:
            recovering = False  # deflate to ssthresh (Reno) or jump back to it (Tahoe)
        elif cwnd < ssthresh:
            cwnd = min(cwnd * 2, ssthresh)  # slow start (only before the first loss)
        else:
            cwnd += 1.0
    return delivered / rounds * math.sqrt(loss)


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    args.add_argument("--loss", type=float, default=0.05)
    args.add_argument("--rounds", type=int, default=400_000)
    options = args.parse_args()
    for algo in MODELLED:
        ratio = round_model_ratio(algo, options.loss, rounds=options.rounds)
        print(f"{algo:<8} x mathis {ratio:.3f}  (textbook rules, round model, loss {options.loss})")


if __name__ == "__main__":
    main()
