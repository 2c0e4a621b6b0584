"""The tester's bars (--max-ttl, --max-queue, ..., --require-rate-limit): what the
announced limits must meet. Each runs only when its option was given."""

from __future__ import annotations

from conformance.relay.checks_limits import MAX_RATE_FRAMES
from conformance.relay.options import RunOptions
from conformance.relay.probe import CheckFailed
from conformance.relay.registry import Context, check


def _has_limit_bars(options: RunOptions) -> bool:
    return bool(options.bars.limit_bars())


@check("bars.limits", when=_has_limit_bars)
async def limits_within_bars(ctx: Context) -> None:
    """HELLO's limits are no larger than the bars given (--max-ttl, --max-queue,
    --max-frame, --max-envelope, --max-prekeys, --max-rate, --max-burst); runs only
    when one is given."""
    over = [f"{name} {getattr(ctx.limits, name)} is over the bar {bar}"
            for name, bar in ctx.options.bars.limit_bars().items()
            if getattr(ctx.limits, name) > bar]
    if over:
        raise CheckFailed("; ".join(over))


@check("bars.rate_limit", when=lambda o: o.bars.require_rate_limit)
async def rate_limit_testable(ctx: Context) -> None:
    """The announced rate limit is one the suite can see enforced (limits.rate_limited
    then runs instead of skipping); runs only with --require-rate-limit."""
    lim = ctx.limits
    frames = lim.rate_burst + 2 * lim.rate_per_second + 10
    if frames > MAX_RATE_FRAMES:
        raise CheckFailed(f"a burst of {lim.rate_burst} at {lim.rate_per_second}/s takes "
                          f"{frames} frames to exceed (at most {MAX_RATE_FRAMES} are tried): "
                          "no rate limit anyone could hit")
