"""What a run will cost, before it spends anything: requests, replies already stored, tokens and dollars.

Per model (and judge): the requests the selected items need, how many the store already holds (they
cost nothing), the prompt tokens of the others counted with litellm's token counter for that model,
and a range in US dollars where litellm knows the model's price: each reply between one token and
its request's token cap. Models of the OpenAI protocol (``openai/...``, ``hosted_vllm/...``), which
litellm counts with tiktoken, are counted and priced from litellm's own encodings and price table
without importing litellm (a run at such an endpoint by the lean path never imports it, and the
count costs a tenth of litellm's); the counts come first (they read the store) and the pricing can
run while the requests do. A judge's request on an open answer not stored yet cannot be written before
the answer exists: it is counted with an answer between empty and the open answers' token cap.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence

from pytest_faef.calls import litellm_data
from pytest_faef.calls.openai_compatible import PROVIDERS as OPENAI_PROTOCOL
from pytest_faef.calls.responders import import_litellm
from pytest_faef.core.evaluation import EvaluationSettings, PlannedRequest, planned_requests, unplanned_follow_ups
from pytest_faef.core.identity import LOCAL_PROVIDER, provider
from pytest_faef.core.perturbations import Variant
from pytest_faef.core.requests import ModelReply, ModelRequest, Target, dollars
from pytest_faef.core.robustness import variant_requests
from pytest_faef.core.suite import PairedItem


@dataclasses.dataclass(kw_only=True)
class CostEstimate:
    """One model's share of a run, as far as it can be known before the run."""

    target: Target
    requests: int = 0
    stored: int = 0
    # Judge requests on sampled open answers that may repeat another sample's (--faef-samples): an answer given
    # twice shares one verdict, so these are sent only when the answers differ.
    shareable: int = 0
    prompt_tokens: int = 0  # of the requests still to send
    prompt_tokens_high: int = 0  # the same, with unknown open answers at their token cap
    completion_tokens_high: int = 0  # every reply still to come at its request's token cap
    cost_low: float | None = 0.0  # None: litellm knows no price for this model
    cost_high: float | None = 0.0

    @property
    def to_send(self) -> int:
        return self.requests - self.stored

    def line(self) -> str:
        """``faef estimate: openai/gpt-4o-mini: 1,200 requests, 0 in the store; 1,200 to send: ~84,000 prompt
        tokens, $0.0126 to $0.0561``."""
        head = f"faef estimate: {self.target}: {self.requests:,} requests, {self.stored:,} in the store"
        if not self.to_send:
            return f"{head}; nothing to send"
        tokens = f"{self.prompt_tokens:,}"
        if self.prompt_tokens_high != self.prompt_tokens:
            tokens += f" to {self.prompt_tokens_high:,}"
        sending = f"{self.to_send:,}"
        if self.shareable:
            sending = f"{self.to_send - self.shareable:,} to {sending}"
        if provider(self.target.model) == LOCAL_PROVIDER:
            cost = "no cost: the model runs on this machine"
        elif self.cost_low is None or self.cost_high is None:
            cost = "no price known to litellm"
        else:
            cost = f"{dollars(self.cost_low)} to {dollars(self.cost_high)}"
        return f"{head}; {sending} to send: ~{tokens} prompt tokens, {cost}"


@dataclasses.dataclass(kw_only=True)
class EstimatePlan:
    """What the store says before the run (requests, replies stored), and the requests still to price."""

    estimates: dict[Target, CostEstimate]
    to_send: list[ModelRequest]
    # Judge requests on answers not given yet, with the answers' cap, and whether it may share another's verdict.
    unknown_answers: list[tuple[ModelRequest, int, bool]]
    _counted: set[str] = dataclasses.field(default_factory=set, repr=False)  # the keys counted already

    def add(
        self,
        planned: Sequence[PlannedRequest],
        follow_ups: Sequence[ModelRequest],
        settings: EvaluationSettings,
        stored: Callable[[ModelRequest], ModelReply | None],
    ) -> None:
        """Count one item's (or variant's) requests: those that can be written now (``planned``, looked up in the
        store) and the judge's on open answers not given yet (``follow_ups``, one per sample)."""
        for entry in planned:
            key = entry.request.key()
            if key in self._counted:
                continue  # asked once: a variant's open form may be the item's own (it changed only the options)
            self._counted.add(key)
            found = self._of(entry.request.target)
            found.requests += 1
            if stored(entry.request) is not None:
                found.stored += 1
            else:
                self.to_send.append(entry.request)
        cap = settings.model_params.cap(settings.open_max_tokens)
        # Every sample's answer but one may repeat another's; all of them when a sample's answer is stored.
        shared = len(follow_ups) - (len(follow_ups) == settings.samples)
        for number, request in enumerate(follow_ups):
            key = f"{request.key()}#{number}"  # the same question's follow-ups, one per sample
            if key in self._counted:
                continue
            self._counted.add(key)
            found = self._of(request.target)
            found.requests += 1
            may_share = number < shared
            found.shareable += may_share
            self.unknown_answers.append((request, cap, may_share))

    def _of(self, target: Target) -> CostEstimate:
        return self.estimates.setdefault(target, CostEstimate(target=target))

    def priced(self) -> list[CostEstimate]:
        """Count the tokens and price them, per model."""
        if self.to_send or self.unknown_answers:
            _price(self.estimates, self.to_send, self.unknown_answers)
        return sorted(self.estimates.values(), key=lambda found: str(found.target))


def plan(
    selected: Iterable[tuple[PairedItem, EvaluationSettings]],
    stored: Callable[[ModelRequest], ModelReply | None],
    *,
    replay_only: bool = False,
    variants: Callable[[PairedItem, EvaluationSettings], Sequence[Variant]] | None = None,
) -> EstimatePlan:
    """The requests per model and judge and how many the store holds, before anything is sent: pricing them
    (:meth:`EstimatePlan.priced`) can then run while the requests do.

    ``replay_only``: the record mode sends nothing (what is not stored will be an error, not a cost).
    ``variants``: an item's perturbed variants under --faef-perturb (drawn here, then asked by the run), each asked
    as the item is.
    """
    found = EstimatePlan(estimates={}, to_send=[], unknown_answers=[])
    for item, settings in selected:
        planned = planned_requests(item, settings, stored)
        found.add(planned, unplanned_follow_ups(item, settings, stored), settings, stored)
        if variants is not None and not item.capability:  # the control is not perturbed (issue 26)
            for variant in variants(item, settings):
                found.add(*variant_requests(item, variant, settings, stored), settings, stored)
    if replay_only:
        found.to_send.clear()
        found.unknown_answers.clear()
    return found


def _price(
    estimates: dict[Target, CostEstimate],
    to_send: Sequence[ModelRequest],
    unknown_answers: Sequence[tuple[ModelRequest, int, bool]],
) -> None:
    low: dict[Target, list[tuple[int, int]]] = {}  # (prompt, completion) tokens per request
    high: dict[Target, list[tuple[int, int]]] = {}
    from_data: set[Target] = set()  # counted without litellm: priced without it too
    for request, answer_cap, may_share in [*((request, 0, False) for request in to_send), *unknown_answers]:
        target = request.target
        counted = None
        if provider(request.model) in OPENAI_PROTOCOL:  # litellm counts these with tiktoken, as this does
            counted = litellm_data.count_tokens(request.model, request.sent_messages)
        elif provider(request.model) == LOCAL_PROVIDER:
            counted = _local_tokens(request)
        if counted is None:
            messages = [{"role": role, "content": content} for role, content in request.sent_messages]
            counted = int(import_litellm().token_counter(model=request.model, messages=messages))
        else:
            from_data.add(target)
        cap = request.max_tokens or 256
        if not may_share:  # the low end: sampled answers that repeat share their verdicts
            low.setdefault(target, []).append((counted, 1))
        high.setdefault(target, []).append((counted + answer_cap, cap))
    for target, found in estimates.items():
        found.prompt_tokens = sum(prompt for prompt, _ in low.get(target, ()))
        found.prompt_tokens_high = sum(prompt for prompt, _ in high.get(target, ()))
        found.completion_tokens_high = sum(cap for _, cap in high.get(target, ()))
        found.cost_low = _cost(target.model, low.get(target, ()), from_data=target in from_data)
        found.cost_high = _cost(target.model, high.get(target, ()), from_data=target in from_data)


def _local_tokens(request: ModelRequest) -> int | None:
    """A local model's prompt tokens through its own chat template (issue 31): SmolLM2's adds a default system
    prompt of its own, which a count of the messages alone missed by a quarter. None when it cannot load."""
    from pytest_faef.calls import local_model

    try:
        messages = [{"role": role, "content": content} for role, content in request.sent_messages]
        return local_model.count_prompt_tokens(request.model, messages)
    except (local_model.LocalModelUnavailable, ValueError):
        return None


def _cost(model: str, tokens: Iterable[tuple[int, int]], *, from_data: bool) -> float | None:
    prompt = completion = 0
    for prompt_tokens, completion_tokens in tokens:
        prompt += prompt_tokens
        completion += completion_tokens
    if (not prompt and not completion) or provider(model) == LOCAL_PROVIDER:
        return 0.0  # nothing to send, or a model on this machine
    if from_data and litellm_data.price_table() is not None:
        return litellm_data.cost(model, prompt, completion)
    try:
        prompt_cost, completion_cost = import_litellm().cost_per_token(
            model=model, prompt_tokens=prompt, completion_tokens=completion
        )
    except Exception:  # litellm raises for models it has no price for
        return None
    return float(prompt_cost) + float(completion_cost)
