"""Budgets for attempts at a link: password and code guesses, code mails.

Keyed on the link id (never on the token's spelling) and, for guesses, on the client's
network, so a stranger who spends their budget changes nothing for the recipient or for
anyone else. The client is the address werkzeug's ProxyFix settles on
(``VAULTDESK_PROXY_COUNT``): an ``X-Forwarded-For`` a visitor writes is ignored unless
the operator said that many proxies stand in front. IPv6 clients are counted per /64,
the block one subscriber usually gets, or every address of it would be a new budget.

A guess is counted *before* it is checked and given back when it was right. Counting
afterwards, as Flask-Limiter's ``deduct_when`` does, lets a burst of parallel guesses all
pass the "still under the limit?" test before the first one is counted.

The counters live in the limiter's storage (Redis) with Flask-Limiter's fixed windows.
Unlike the sign-in limits, these fail closed: if the counters cannot be reached, no
password or code is checked (503), because a budget that silently disappears is no
protection for a file.
"""

from __future__ import annotations

import ipaddress
import logging

from flask import current_app
from limits import RateLimitItem, parse_many
from limits.strategies import FixedWindowRateLimiter

from app.extensions import limiter

log = logging.getLogger(__name__)


class LimitsUnavailable(Exception):
    """The counters could not be reached; the caller refuses rather than guess blindly."""


def client_key(address: str | None) -> str:
    """The client as a budget sees it: an IPv4 address, or an IPv6 /64."""
    if not address:
        return "unknown"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return "unknown"
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def guess_limits() -> list[RateLimitItem]:
    return parse_many(current_app.config["LINK_GUESS_LIMIT"])


def _strategy() -> FixedWindowRateLimiter:
    # Fixed windows on purpose: giving a right guess back is a decrement of the counter.
    return FixedWindowRateLimiter(limiter.storage)


def take(items: list[RateLimitItem], *ids: str) -> bool:
    """Count one attempt against every item; False (and nothing counted) when one is full."""
    strategy = _strategy()
    taken: list[RateLimitItem] = []
    try:
        for item in items:
            taken.append(item)
            if not strategy.hit(item, *ids):
                for counted in taken:
                    strategy.hit(counted, *ids, cost=-1)
                return False
    except Exception as error:  # redis errors, whatever the client library calls them
        log.warning("link limits unavailable: %s", error)
        raise LimitsUnavailable(str(error)) from error
    return True


def give_back(items: list[RateLimitItem], *ids: str) -> None:
    """Undo one ``take``: the attempt turned out right and must not count."""
    strategy = _strategy()
    try:
        for item in items:
            strategy.hit(item, *ids, cost=-1)
    except Exception as error:
        log.warning("link limits unavailable: %s", error)  # the attempt simply stays counted


def take_guess(link_id: str, address: str | None) -> bool:
    return take(guess_limits(), "link-guess", link_id, client_key(address))


def give_back_guess(link_id: str, address: str | None) -> None:
    give_back(guess_limits(), "link-guess", link_id, client_key(address))
