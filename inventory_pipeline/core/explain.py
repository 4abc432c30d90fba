"""Planner-facing explanations (core).

Every decision's explanation is a template built by its stage from its own numbers (forecast over
the protection period, target, inventory position, binding constraint, expected effect). A
language model may *rephrase* it — Amazon Bedrock's Converse API through boto3, off by default —
under three rules:

1. it never sets a number: the rephrased text must contain exactly the numbers of the template
   (as a multiset of the numeric tokens), or the template is kept;
2. any failure — an API error, a timeout, an empty or malformed answer, the run's time budget
   spent — keeps the template, and the reason is recorded in `explanation_source`;
3. it sees only the template text, never data it could take a number from.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass, field

import pandas as pd

_NUM = re.compile(r"[-+]?\d+(?:[.,]\d+)*")
SYSTEM_PROMPT = (
    "You rewrite inventory-planning explanations for store planners. Rewrite the text you are given as one or two "
    "short, plain sentences. Keep every number exactly as written, add no number, remove no number, and do not "
    "change any identifier. Answer with the rewritten text only."
)


def numbers(text: str) -> Counter:
    """The numeric tokens of a text, as a multiset (thousands separators ignored)."""
    return Counter(t.replace(",", "").lstrip("+") for t in _NUM.findall(text or ""))


@dataclass
class BedrockExplainer:
    """Rephrases templates through `client.converse` (a boto3 `bedrock-runtime` client, or any
    object with the same method). Not thread-safe; one per plan."""

    client: object
    model_id: str
    max_tokens: int = 200
    budget_seconds: float = 60.0
    spent: float = field(default=0.0, init=False)

    def rephrase(self, template: str) -> tuple[str, str]:
        """(text, source): source is `llm:<model>` or `template (<why the model's text was not used>)`."""
        if self.spent >= self.budget_seconds:
            return template, "template (llm time budget spent)"
        t0 = time.perf_counter()
        try:
            resp = self.client.converse(
                modelId=self.model_id,
                system=[{"text": SYSTEM_PROMPT}],
                messages=[{"role": "user", "content": [{"text": template}]}],
                inferenceConfig={"maxTokens": self.max_tokens, "temperature": 0.0},
            )
            text = "".join(c.get("text", "") for c in resp["output"]["message"]["content"]).strip()
        except Exception as e:  # noqa: BLE001 - any failure of the optional service keeps the template
            return template, f"template (llm failed: {type(e).__name__})"
        finally:
            self.spent += time.perf_counter() - t0
        if not text:
            return template, "template (llm answered nothing)"
        if numbers(text) != numbers(template):
            return template, "template (llm changed a number)"
        return text, f"llm:{self.model_id}"


def bedrock_client(region: str | None = None, timeout_seconds: float = 10.0, endpoint_url: str | None = None):
    """A bedrock-runtime client with a hard timeout and no retries (a slow answer falls back)."""
    import boto3
    from botocore.config import Config

    cfg = Config(
        connect_timeout=timeout_seconds, read_timeout=timeout_seconds, retries={"max_attempts": 1, "mode": "standard"}
    )
    return boto3.client("bedrock-runtime", region_name=region, endpoint_url=endpoint_url, config=cfg)


def rephrase_explanations(log: pd.DataFrame, explainer: BedrockExplainer | None, max_decisions: int) -> pd.DataFrame:
    """Rephrase up to `max_decisions` explanations (pending_review first, then the largest value);
    the others keep their template. Numbers in the log are never touched."""
    if explainer is None or max_decisions <= 0 or not len(log):
        return log
    out = log.copy()
    order = (
        out.assign(_p=(out["status"] != "pending_review").astype(int), _v=-out["value"].abs().fillna(0))
        .sort_values(["_p", "_v", "decision_id"])
        .index[:max_decisions]
    )
    for i in order:  # bounded by max_decisions: one network call each
        text, src = explainer.rephrase(str(out.at[i, "explanation"]))
        out.at[i, "explanation"], out.at[i, "explanation_source"] = text, src
    return out
