"""repair=1: an answer that does not match its schema is asked for once more, with the validation
error (both calls are in the ledger)."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

from .pipeline import call
from .types import Message, Result


async def repair(plan: Any, old: Result) -> Result:
    """repair=1: an answer that did not match its schema is asked for once more, with the
    validation error; returns the new Result (both calls are in the ledger), or old as it is."""
    if old is None or old.error_kind != "invalid_output" or not plan.request.extra.get("repair"):
        return old  # (checked before the imports below: this runs after every ask and compare)
    req = plan.request
    ask_again = Message("user", f"Your answer does not match the schema ({old.error}). "
                                "Answer again with only the corrected JSON object.")
    request = dataclasses.replace(req, messages=[*req.messages, Message("assistant", old.text),
                                                 ask_again],
                                  extra={**req.extra, "repair": 0})
    info = dataclasses.replace(plan.info, call_id=uuid.uuid4().hex)
    new = await call(dataclasses.replace(plan, request=request, info=info))
    new.attempts += old.attempts
    return new


async def repair_results(plans: Any, results: list) -> None:
    """repair() for each (plan, result) of ask / compare, in place."""
    for i, plan in enumerate(plans):
        if i < len(results) and results[i] is not None:
            results[i] = await repair(plan, results[i])
