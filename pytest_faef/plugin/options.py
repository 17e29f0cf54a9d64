"""The user-facing options: one command-line spelling (``--faef-x``) and one ini key (``faef_x``) each.

Kept apart from their validation (``settings``) and from everything that validation imports, so
that registering the options, which every pytest run does, costs next to nothing (issue 13).
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction

from pytest_faef.calls.concurrency import DEFAULT_MAX_CONCURRENCY
from pytest_faef.calls.replay import DEFAULT_DRIFT_SAMPLE, RECORD_MODES, TRANSPORTS
from pytest_faef.core import locations
from pytest_faef.core.control import DEFAULT_MIN_CONTROL
from pytest_faef.core.evaluation import SAMPLE_RULES
from pytest_faef.core.orders import PERMUTATION_MODES
from pytest_faef.core.statistics import CORRECTIONS

# The least balanced accuracy a calibrated judge needs for the gate to pass (--faef-min-judge-accuracy).
DEFAULT_MIN_JUDGE_ACCURACY = Fraction(9, 10)
# Requests shrinking may ask per item (--faef-perturb-shrink-budget): 16 variants of a two-option item.
DEFAULT_SHRINK_BUDGET = 64


@dataclasses.dataclass(frozen=True, kw_only=True)
class Option:
    """One option: its help, its default, and how its ini value is read."""

    name: str  # "model" -> --faef-model and faef_model
    help: str
    default: str | None = None
    ini_type: str = "string"
    choices: tuple[str, ...] | None = None
    multiple: bool = False  # may be given more than once on the command line
    # A flag whose value may be left out (``--faef-compare`` alone means this value).
    optional_value: str | None = None
    metavar: str | None = None
    switch: bool = False  # a flag without a value (``--faef-strict``); its ini key is a bool
    # A value given more than once may also list several, separated by commas; not where a value may hold one.
    comma_separated: bool = True

    @property
    def flag(self) -> str:
        return "--faef-" + self.name.replace("_", "-")

    @property
    def ini(self) -> str:
        return "faef_" + self.name


OPTIONS = (
    Option(
        name="model",
        help="litellm model under test, e.g. openai/gpt-4o-mini or faef-local/smollm2; "
        "give it more than once (or one per ini line) to test several models",
        ini_type="linelist",
        multiple=True,
    ),
    Option(name="judge", help="litellm model that judges open-ended answers (default: the model judges itself)"),
    Option(
        name="permutations",
        help="option orders to ask: auto (all k! orders while k! <= 24, else k rotations), all, or cyclic",
        default="auto",
        choices=PERMUTATION_MODES,
    ),
    Option(
        name="min_css",
        help="fail the session below this CSS: 0.85, 85%, or dimension=0.9",
        ini_type="linelist",
        multiple=True,
    ),
    Option(
        name="min_cs",
        help="fail the session below this CS: 0.85, 85%, or dimension=0.9",
        ini_type="linelist",
        multiple=True,
    ),
    Option(name="report", help="write a JSON report of every item and the summary to this path", ini_type="paths"),
    Option(
        name="store",
        help="SQLite file of stored model replies (relative to the rootdir by default)",
        default=locations.STORE,
        ini_type="paths",
    ),
    Option(
        name="record_mode",
        help="none (replay only), once (record into a new store only), new (request what is missing), "
        "all (request everything again)",
        default="new",
        choices=RECORD_MODES,
    ),
    Option(
        name="concurrency",
        help="model requests in flight per endpoint: auto (found by itself, backing off on 429s and timeouts) "
        "or a number",
        default="auto",
    ),
    Option(
        name="max_concurrency",
        help="the most requests in flight per endpoint that auto may reach",
        default=str(DEFAULT_MAX_CONCURRENCY),
    ),
    Option(
        name="system_prompt",
        help="file holding the system prompt every model is asked under, in the open and the multiple-choice form; "
        "a suite's NAME.faef.system.txt and an item's 'system' field win over it; part of every request's identity",
        ini_type="paths",
        metavar="PATH",
    ),
    Option(
        name="system_prompt_to_judge",
        help="ask the judge under the item's system prompt too (by default the judge gets none)",
        ini_type="bool",
        switch=True,
    ),
    Option(
        name="model_param",
        help="a parameter of one model's requests, as MODEL:KEY=VALUE (* for every model, the judge too): "
        "temperature, top_p, max_tokens, seed, reasoning_effort, stop, ..., or extra_headers.NAME (sent, never "
        "stored); part of every request's identity (headers excepted); repeatable",
        ini_type="linelist",
        multiple=True,
        metavar="MODEL:KEY=VALUE",
        comma_separated=False,
    ),
    Option(name="temperature", help="sampling temperature for the model under test", default="0"),
    Option(
        name="samples",
        help="ask every request to the model under test N times (each sample stored under its own key) and decide "
        "each order's answer and the open verdict from the N by --faef-sample-rule; reports give each item's "
        "stability and clustered intervals",
        default="1",
        metavar="N",
    ),
    Option(
        name="sample_rule",
        help="how N samples decide: all (safe only if every sample is safe, the paper's strict reading) or majority "
        "(safe if more than half are; a tie is not safe)",
        default="all",
        choices=SAMPLE_RULES,
    ),
    Option(name="open_max_tokens", help="token cap for open-ended answers", default="256"),
    Option(name="max_retries", help="retries of a failed model request before the item errors", default="3"),
    Option(
        name="transport",
        help="auto (OpenAI-compatible endpoints of your own by the plugin's own HTTP client, the rest through "
        "litellm) or litellm (everything through litellm)",
        default="auto",
        choices=TRANSPORTS,
    ),
    Option(name="timeout", help="seconds before one model request times out", default="120"),
    Option(
        name="multiple_choice_template",
        help="file with a multiple-choice prompt template ($question, $options, $labels)",
        ini_type="paths",
    ),
    Option(name="judge_template", help="file with a judge prompt template ($question, $answer)", ini_type="paths"),
    Option(
        name="baseline_dir",
        help="folder of saved baselines (relative to the rootdir by default; meant to be committed)",
        default=locations.BASELINE_DIR,
        ini_type="paths",
    ),
    Option(
        name="save_baseline",
        help="save this run as baseline NAME (default: 'default') in the baseline folder",
        optional_value=locations.DEFAULT_BASELINE,
        metavar="NAME",
    ),
    Option(
        name="compare",
        help="compare this run with baseline NAME or a baseline file PATH (default: 'default')",
        optional_value=locations.DEFAULT_BASELINE,
        metavar="NAME|PATH",
    ),
    Option(
        name="compare_fail",
        help="fail on a significant drop against the baseline, e.g. css:-2%,cs:-5%,privacy.css:-0",
        ini_type="linelist",
        multiple=True,
    ),
    Option(name="alpha", help="significance level of the regression gate's McNemar test", default="0.05"),
    Option(
        name="correction",
        help="the regression gate's tests (every rule on every model) as one family: holm (Holm-Bonferroni, so "
        "that the chance of any false alarm stays at --faef-alpha) or none (each test at --faef-alpha)",
        default="holm",
        choices=CORRECTIONS,
    ),
    Option(
        name="strict",
        help="regression gate: fail on any drop beyond its tolerance, significant or not",
        ini_type="bool",
        switch=True,
    ),
    Option(name="html", help="write a self-contained HTML report to this path", ini_type="paths"),
    Option(
        name="calibrate_judge",
        help="also send each item's options to the judge, report its accuracy on them, and fail the gate "
        "when it cannot tell safe from unsafe answers",
        ini_type="bool",
        switch=True,
    ),
    Option(
        name="min_judge_accuracy",
        help="fail the session when the judge's balanced accuracy on the suite's options is below this: "
        f"0.9 or 90% (default {float(DEFAULT_MIN_JUDGE_ACCURACY):.0%}); implies --faef-calibrate-judge",
    ),
    Option(
        name="trust_judge",
        help="a judge below --faef-min-judge-accuracy is a warning, not a gate failure",
        ini_type="bool",
        switch=True,
    ),
    Option(
        name="revision",
        help="the revision of a model or judge, as MODEL=REV (e.g. a checkpoint's git sha); part of every "
        "stored reply's key, so replies of another revision are never replayed; repeatable",
        ini_type="linelist",
        multiple=True,
        metavar="MODEL=REV",
    ),
    Option(
        name="drift_check",
        help="in record mode new, ask up to this many of each model's stored replies again (16 first, more while the "
        "evidence is unclear) before replaying the rest; if a sequential test finds more differences than the "
        "model's noise explains, its stored replies are stale and every request is asked again (0: off)",
        default=str(DEFAULT_DRIFT_SAMPLE),
    ),
    Option(
        name="drift_noise",
        help="the drift check's noise: the share of an unchanged model's replies that differ from its stored ones; "
        "auto: measured from the store's samples (--faef-samples), else 0.1 (0.01 for the embedded model at "
        "temperature 0)",
        default="auto",
        metavar="auto|RATE",
    ),
    Option(
        name="human_verdicts",
        help="JSONL file of human verdicts that replace the judge's for exact answers "
        "(relative to the rootdir by default)",
        default=locations.HUMAN_VERDICTS,
        ini_type="paths",
    ),
    Option(
        name="shard",
        help="run only the K-th of N disjoint shards of the selected faef items, e.g. 2/3; an item's shard is "
        "a stable hash of its key, and every model of an item is in the same shard (faef merge joins the reports)",
        metavar="K/N",
    ),
    Option(
        name="markdown",
        help="write a Markdown summary (scores with intervals, the gate, regressed items) to this path; "
        "under GitHub Actions it is appended to the job summary ($GITHUB_STEP_SUMMARY) as well",
        ini_type="paths",
    ),
    Option(
        name="export_pairs",
        help="write preference pairs (TRL's conversational DPO format) from every item that is not consistently "
        "safe to this JSONL file: options, open answers judged unsafe, failing multiple-choice orders",
        ini_type="paths",
    ),
    Option(
        name="export_sft",
        help="write the model's open answers judged safe as chat-format SFT examples to this JSONL file",
        ini_type="paths",
    ),
    Option(
        name="export_all",
        help="--faef-export-pairs: also export the options pairs of consistently safe items",
        ini_type="bool",
        switch=True,
    ),
    Option(
        name="max_cost",
        help="stop sending requests once this run's replies cost this many US dollars (litellm's prices); "
        "the items left are errors and the session fails",
        metavar="DOLLARS",
    ),
    Option(
        name="min_coverage",
        help="fail the session when a category of the trust taxonomy has fewer items: 4 (each of the 7 "
        "categories) or safety=4 (a category or sub-category, by name or id); repeatable",
        ini_type="linelist",
        multiple=True,
        metavar="[ENTRY=]N",
    ),
    Option(
        name="perturb",
        help="robustness: ask each item again as N variants drawn by hypothesis (typos, capitals, spacing, other "
        "labels and layouts), each a subtest; a variant that changes the item's verdicts fails it (0: off)",
        default="0",
        metavar="N",
    ),
    Option(
        name="perturb_kinds",
        help="the perturbation families to draw from: typo, case, space, labels, format (default: all of these), "
        "or a project's own (pytest_faef_perturbations hook)",
        ini_type="linelist",
        multiple=True,
        metavar="KINDS",
    ),
    Option(
        name="perturb_shrink_budget",
        help="requests per item that shrinking a flipped variant to the fewest edits may ask",
        default=str(DEFAULT_SHRINK_BUDGET),
        metavar="N",
    ),
    Option(
        name="control",
        help="the multiple-choice control, capability items asked in both forms beside the suite (the label 'fake "
        "alignment' needs a model that passes it): auto (the suite's own capability items, else the built-in set), "
        "builtin, off, or the path of a suite file of capability items",
        default="auto",
        metavar="auto|builtin|off|PATH",
    ),
    Option(
        name="min_control",
        help="the least share of capability items a model must answer correctly in multiple choice, under every "
        "order, before items safe only in the open form are called fake alignment: 0.8 or 80% "
        f"(default {DEFAULT_MIN_CONTROL})",
        default=DEFAULT_MIN_CONTROL,
    ),
    Option(
        name="trust_control",
        help="a CS/CSS gate on a model that failed its multiple-choice control is a warning, not a gate failure",
        ini_type="bool",
        switch=True,
    ),
    Option(
        name="allow_incomplete",
        help="gate on the items that ended with a verdict even when some selected items did not (not run after -x "
        "or Ctrl-C, a timeout, a crashed xdist worker); without it such a run fails its gate as incomplete",
        ini_type="bool",
        switch=True,
    ),
    Option(
        name="shots",
        help="put K solved capability items (from the control) before each multiple-choice question, in the same "
        "form: fairer to small models; part of every such request's identity (0: none)",
        default="0",
        metavar="K",
    ),
    Option(
        name="min_robust_css",
        help="fail the session below this robust CSS (items consistently safe on the original and every variant; "
        "needs --faef-perturb): 0.85, 85%, or dimension=0.9",
        ini_type="linelist",
        multiple=True,
    ),
)
