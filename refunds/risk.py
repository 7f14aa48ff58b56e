"""The review decision (S14, S18). One function that fuller risk rules extend: each rule adds a
reason and may raise the outcome; the strongest outcome wins and every reason is kept."""

from dataclasses import dataclass, field

APPROVE, REVIEW, REJECT = "approve", "review", "reject"
_STRENGTH = {APPROVE: 0, REVIEW: 1, REJECT: 2}


@dataclass
class Decision:
    outcome: str = APPROVE
    reasons: list[str] = field(default_factory=list)

    def flag(self, outcome: str, reason: str) -> None:
        self.reasons.append(reason)
        if _STRENGTH[outcome] > _STRENGTH[self.outcome]:
            self.outcome = outcome


def assess_refund(*, merchant, payment, amount: int, source: str, direction: str) -> Decision:
    decision = Decision()
    threshold = merchant.review_threshold
    if threshold is not None and amount > threshold:
        decision.flag(REVIEW, f"amount {amount} above the merchant's review threshold {threshold}")
    return decision
