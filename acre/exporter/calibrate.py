"""Find the model's retrieval heads: the few attention heads whose queries pick out the passage a
question asks about. Training-free: a handful of synthetic needle-in-a-haystack probes are run
through the model once at export time, and no weight changes.

Measured on SmolLM2-135M (docs/design-notes.md): summed over all heads, the question's queries rank
the needle's span ~10th-20th of 30; single heads (layer 17 head 3, layer 18 head 6, ...) rank it
first in nearly every case. acre probes and scores spans with these heads only.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

from acre.step import StepModel

# A varied haystack from a small grammar (identical filler sentences would tie every span), and
# needles that share no wording with the pass-key task used in evaluation.
SUBJECTS = [
    "The farmer",
    "A child",
    "The old teacher",
    "Her brother",
    "The company",
    "A stranger",
    "The mayor",
    "My neighbour",
    "The captain",
    "Every student",
    "The baker",
    "A young writer",
]
VERBS = [
    "walked to",
    "wrote about",
    "looked at",
    "talked about",
    "built",
    "sold",
    "remembered",
    "painted",
    "carried",
    "found",
    "visited",
    "described",
]
OBJECTS = [
    "the river",
    "a small house",
    "the market",
    "an old bridge",
    "the mountains",
    "a long letter",
    "the harbour",
    "a new school",
    "the garden",
    "the station",
    "a red bicycle",
    "the library",
]
TAILS = [
    "in the morning.",
    "after the rain.",
    "because it was late.",
    "with great care.",
    "on a Sunday.",
    "before the winter came.",
    "and then went home.",
    "while the others waited.",
]
NEEDLES = [
    ("The secret ingredient in {name}'s soup is {thing}.", "What is the secret ingredient in {name}'s soup?"),
    ("{name} keeps the spare key under the {thing}.", "Where does {name} keep the spare key?"),
    ("The boat that {name} sailed last summer was called {thing}.", "What was the name of {name}'s boat?"),
]
NAMES = ["Marta", "Oskar", "Ines", "Tobias", "Greta", "Felix"]
THINGS = ["saffron", "blue flowerpot", "Morning Star", "ginger", "doormat", "Silver Gull"]
SPAN = 64  # score spans of this size, like the runtime's L2


def _case(tokenizer: Any, rng: random.Random, tokens: int) -> tuple[list[int], list[int], int]:
    """One probe: (document ids, question ids, index of the span holding the needle)."""
    statement, question = rng.choice(NEEDLES)
    name, thing = rng.choice(NAMES), rng.choice(THINGS)
    needle = statement.format(name=name, thing=thing)
    haystack: list[int] = []
    while len(haystack) < tokens:
        sentence = " ".join(rng.choice(part) for part in (SUBJECTS, VERBS, OBJECTS, TAILS))
        haystack += tokenizer.encode(" " + sentence, add_special_tokens=False)
    haystack = haystack[:tokens]
    at = rng.randint(tokens // 10, tokens * 9 // 10)
    needle_ids = tokenizer.encode(" " + needle + " ", add_special_tokens=False)
    doc = haystack[:at] + needle_ids + haystack[at:]
    q = tokenizer.encode("\n\n" + question.format(name=name) + "\n", add_special_tokens=False)
    return doc, q, (at + len(needle_ids) // 2) // SPAN


@torch.no_grad()
def head_ranks(step: StepModel, doc: list[int], question: list[int], target: int) -> np.ndarray:
    """Rank of the target span under each head alone [layers, heads]: 0 = ranked first.
    A span's score is the best dot product of any question query with any of its un-rotated keys."""
    g = step.g
    ids = torch.tensor(doc + question)
    pot = step.no_pot()
    # probe every layer's queries for this measurement
    saved = step.probe_layers
    step.probe_layers = list(range(g.layers))
    try:
        _, k, _, _, q = step.run(ids, torch.arange(len(ids)), *pot)
    finally:
        step.probe_layers = saved
    n = len(doc)
    keys = k[:, :, :n].float()  # [L, Hkv, n, D]
    queries = q[:, :, n:].float()  # [L, H, T, D]
    groups = g.heads // g.kv_heads
    keys = keys.repeat_interleave(groups, dim=1)  # [L, H, n, D]: query head h reads KV head h // groups
    scores = (queries @ keys.transpose(-1, -2)).amax(2)  # [L, H, n]: best query per key
    starts = torch.arange(0, n, SPAN)
    spans = torch.stack([scores[..., s : s + SPAN].amax(-1) for s in starts.tolist()], dim=-1)  # [L, H, S]
    at_least = (spans >= spans[..., target : target + 1]).sum(-1) - 1  # ties count against the target
    return at_least.numpy()


def find_retrieval_heads(
    step: StepModel, tokenizer: Any, count: int = 4, probes: int = 6, tokens: int = 1024, seed: int = 0
) -> list[tuple[int, int]]:
    """The `count` heads with the best mean reciprocal rank of the needle span over `probes` probes."""
    rng = random.Random(seed)
    g = step.g
    reciprocal = np.zeros((g.layers, g.heads))
    tokens = min(tokens, g.window - 64)
    for _ in range(probes):
        doc, question, target = _case(tokenizer, rng, tokens)
        reciprocal += 1.0 / (1.0 + head_ranks(step, doc, question, target))
    order = np.argsort(-reciprocal.ravel(), kind="stable")[:count]
    return sorted((int(i // g.heads), int(i % g.heads)) for i in order)
