"""Provider circuits: which provider of ``EMAIL_PROVIDER=a,b,...`` takes the next email.

Each provider of a failover list has a circuit, one row of ``emails_providercircuit``:
- **closed**: emails go to it. EMAILS_FAILOVER_AFTER consecutive failures that blame the
  provider (emails/delivery/failures.py) open it.
- **open**: skipped; the next provider in the list takes its emails. After
  EMAILS_FAILOVER_COOLDOWN seconds one email may **probe** it.
- **half-open**: one worker won the probe (a conditional UPDATE, so only one); its success
  closes the circuit, its failure opens it for another cooldown. A probe whose worker died is
  given to another email after EMAILS_SENDING_TIMEOUT.

Why the database and not Redis: every worker process and host already shares it and reaches it
for every send (the claim), it survives restarts of everything but itself, it needs no broker of
a given kind (RabbitMQ works), and an outage of it stops sending anyway. A send costs two
SELECTs of these few rows (``any_usable`` before the claim, ``candidates`` after it) and one
UPDATE of its own provider's counters (two after a failure). Each change of state is one
conditional UPDATE, so exactly one process sees it happen and logs it.

With one provider there are no circuits: failures are retried with backoff, as always.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from emails.models import CircuitState, ProviderCircuit

logger = logging.getLogger(__name__)

# A message that found every circuit open waits at least this long before it looks again
# (longer than the claim's one second of slack, deliver._due, or it would be due at once).
MIN_WAIT = 2.0


@dataclass(frozen=True)
class Candidate:
    provider: str
    probe: bool = False  # this email is the one probe of a half-open circuit
    state: str = CircuitState.CLOSED  # when it was read


def providers() -> list[str]:
    return list(settings.EMAIL_PROVIDERS)


def failover_enabled() -> bool:
    return len(settings.EMAIL_PROVIDERS) > 1


def circuits() -> dict[str, ProviderCircuit]:
    """Every configured provider's circuit (created closed the first time), in list order."""
    names = providers()
    rows = {row.provider: row for row in ProviderCircuit.objects.filter(provider__in=names)}
    missing = [ProviderCircuit(provider=name) for name in names if name not in rows]
    if missing:
        ProviderCircuit.objects.bulk_create(missing, ignore_conflicts=True)
        rows.update({row.provider: row for row in missing})
    return {name: rows[name] for name in names}


def _probe_due(now: datetime) -> Q:
    cooldown = timedelta(seconds=settings.EMAILS_FAILOVER_COOLDOWN)
    stale_probe = timedelta(seconds=settings.EMAILS_SENDING_TIMEOUT)
    return Q(state=CircuitState.OPEN, opened_at__lte=now - cooldown) | Q(
        state=CircuitState.HALF_OPEN, probe_started_at__lte=now - stale_probe
    )


def _usable(row: ProviderCircuit, now: datetime) -> bool:
    if row.state == CircuitState.CLOSED:
        return True
    if row.state == CircuitState.OPEN:
        return row.opened_at is None or now - row.opened_at >= timedelta(
            seconds=settings.EMAILS_FAILOVER_COOLDOWN
        )
    return row.probe_started_at is None or now - row.probe_started_at >= timedelta(
        seconds=settings.EMAILS_SENDING_TIMEOUT
    )


def any_usable(now: datetime) -> bool:
    """Whether a send now could go anywhere: a closed circuit, or a probe that is due."""
    return not failover_enabled() or any(_usable(row, now) for row in circuits().values())


def candidates(now: datetime, *, only: str | None = None) -> Iterator[Candidate]:
    """The providers to try for one email, in order: each closed one, and each open one whose
    probe is due if this email wins it (``only``: that provider alone, as its circuit allows).
    Lazy: a probe is claimed only when the email gets that far down the list."""
    if not failover_enabled():
        yield Candidate(providers()[0])
        return
    for name, row in circuits().items():
        if only is not None and name != only:
            continue
        if row.state == CircuitState.CLOSED:
            yield Candidate(name, state=row.state)
        elif _usable(row, now) and _claim_probe(name, timezone.now()):
            yield Candidate(name, probe=True, state=row.state)


def _claim_probe(name: str, now: datetime) -> bool:
    won = ProviderCircuit.objects.filter(_probe_due(now), provider=name).update(
        state=CircuitState.HALF_OPEN, probe_started_at=now
    )
    if won:
        logger.info("provider %s: circuit half-open, one email probes it", name)
    return bool(won)


def seconds_until_usable(now: datetime, *, only: str | None = None) -> float:
    """How long until some provider (``only``: that one) may be tried, for an email that
    found none: the earliest probe."""
    cooldown = timedelta(seconds=settings.EMAILS_FAILOVER_COOLDOWN)
    stale_probe = timedelta(seconds=settings.EMAILS_SENDING_TIMEOUT)
    waits = []
    for name, row in circuits().items():
        if only is not None and name != only:
            continue
        if row.state == CircuitState.OPEN and row.opened_at is not None:
            waits.append((row.opened_at + cooldown - now).total_seconds())
        elif row.state == CircuitState.HALF_OPEN and row.probe_started_at is not None:
            # The probe's answer comes within the provider's timeout; look again soon.
            stale_in = (row.probe_started_at + stale_probe - now).total_seconds()
            waits.append(min(float(settings.EMAIL_TIMEOUT), stale_in))
        else:
            waits.append(0.0)
    return max(MIN_WAIT, min(waits, default=0.0))


def record_sent(candidate: Candidate) -> None:
    _answered(candidate, sent=F("sent") + 1)


def record_refusal(candidate: Candidate) -> None:
    """The provider answered, refusing this email (recipient, content): it is up."""
    _answered(candidate, refusals=F("refusals") + 1)


def _answered(candidate: Candidate, **counts) -> None:
    if not failover_enabled():
        return
    rows = ProviderCircuit.objects.filter(provider=candidate.provider)
    if candidate.probe or candidate.state != CircuitState.CLOSED:
        closed = rows.exclude(state=CircuitState.CLOSED).update(
            state=CircuitState.CLOSED,
            consecutive_failures=0,
            opened_at=None,
            probe_started_at=None,
            **counts,
        )
        if closed:
            logger.warning("provider %s answers again: circuit closed", candidate.provider)
            return
    rows.update(consecutive_failures=0, **counts)


def record_failure(candidate: Candidate, reason: str, *, now: datetime | None = None) -> None:
    """A failure that blames the provider: counts toward opening its circuit; a probe's
    failure opens it again at once."""
    if not failover_enabled():
        return
    now = now or timezone.now()
    name = candidate.provider
    rows = ProviderCircuit.objects.filter(provider=name)
    rows.update(
        failures=F("failures") + 1,
        consecutive_failures=F("consecutive_failures") + 1,
        last_error=reason[:1000],
        last_error_at=now,
    )
    first_line = reason.splitlines()[0] if reason else ""
    cooldown = settings.EMAILS_FAILOVER_COOLDOWN
    if candidate.probe:
        if rows.filter(state=CircuitState.HALF_OPEN).update(
            state=CircuitState.OPEN, opened_at=now, probe_started_at=None
        ):
            logger.info(
                "provider %s: probe failed, circuit open for %.0fs more: %s",
                name,
                cooldown,
                first_line,
            )
        return
    if rows.filter(
        state=CircuitState.CLOSED, consecutive_failures__gte=settings.EMAILS_FAILOVER_AFTER
    ).update(state=CircuitState.OPEN, opened_at=now, times_opened=F("times_opened") + 1):
        others = [other for other in providers() if other != name]
        logger.error(
            "provider %s failed %d times in a row: circuit open, its emails go to %s; "
            "probe in %.0fs. Last error: %s",
            name,
            settings.EMAILS_FAILOVER_AFTER,
            ", ".join(others),
            cooldown,
            first_line,
        )


def open_circuits() -> list[ProviderCircuit]:
    """Configured providers whose circuit is not closed (for the message log's banner)."""
    if not failover_enabled():
        return []
    return [row for row in circuits().values() if row.state != CircuitState.CLOSED]


def circuits_close(names: list[str]) -> int:
    """An operator's decision (the admin): send to these providers again at once."""
    closed = (
        ProviderCircuit.objects.filter(provider__in=names)
        .exclude(state=CircuitState.CLOSED)
        .update(
            state=CircuitState.CLOSED, consecutive_failures=0, opened_at=None, probe_started_at=None
        )
    )
    if closed:
        logger.warning("circuit of %s closed from the admin", ", ".join(sorted(names)))
    return closed
