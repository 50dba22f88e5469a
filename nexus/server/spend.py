"""What a served request cost, from the backend's usage or, lacking it, an estimate."""

from __future__ import annotations

from nexus.adapters.base import Usage
from nexus.budget import month_of
from nexus.pipeline.types import Route
from nexus.store.base import SpendRecord


def spend_record(request_id: str, route: Route, usage: Usage | None,
                 streamed_events: int | None = None, reserved: bool = False) -> SpendRecord:
    """What a paid backend's answer cost: its usage when it sent one; otherwise the
    routing estimate's input and, for streams, one output token per relayed event
    (servers stream token by token)."""
    price = route.backend.prices.price(route.model)
    estimated = usage is None
    if usage is None:
        output = route.cost_estimate.output_tokens if streamed_events is None \
            else max(0, streamed_events - 1)  # the last event is [DONE]
        usage = Usage(route.cost_estimate.input_tokens, output)
    return SpendRecord(request_id=request_id, month=month_of(), backend=route.backend.name,
                       model=route.model, estimated=estimated, reserved=reserved,
                       cost_micro_usd=price.cost_micro_usd(usage.prompt_tokens,
                                                           usage.completion_tokens))
