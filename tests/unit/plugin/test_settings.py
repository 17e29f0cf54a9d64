"""Options read once at start-up: command line over ini, defaults, and errors that name the option."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from pytest_faef.core.prompts import MULTIPLE_CHOICE_TEMPLATE, TEMPLATE_VERSION
from pytest_faef.plugin.settings import OPTIONS, Option, RunSettings, SettingsError, build_settings
from pytest_faef.results.gate import Threshold

ROOTDIR = Path("/srv/project")


def settings(
    cli: dict[str, Any] | None = None, ini: dict[str, Any] | None = None, *, invocation_dir: Path | None = None
) -> RunSettings:
    """Build settings as the plugin would, from command-line and ini values given by option name."""
    cli = cli or {}
    ini = ini or {}
    unknown = (set(cli) | set(ini)) - {option.name for option in OPTIONS}
    assert not unknown, f"not an option: {unknown}"

    def lookup(option: Option) -> tuple[Any, Any]:
        # pytest gives [] for an unset linelist or paths ini key, and None for an unset flag.
        unset_ini = [] if option.ini_type in ("linelist", "paths") else ""
        cli_value, ini_value = cli.get(option.name), ini.get(option.name, unset_ini)
        if option.multiple and isinstance(cli_value, str):  # argparse appends
            cli_value = [cli_value]
        if option.ini_type == "linelist" and isinstance(ini_value, str):  # pytest splits lines
            ini_value = [line.strip() for line in ini_value.splitlines() if line.strip()]
        return cli_value, ini_value

    return build_settings(lookup, rootdir=ROOTDIR, invocation_dir=invocation_dir)


def test_defaults_without_a_model() -> None:
    run = settings()

    assert run == RunSettings(
        evaluations=(),
        thresholds=(),
        report_path=None,
        store_path=ROOTDIR / ".faef" / "responses.sqlite",
        record_mode="new",
        concurrency=None,  # auto
        max_retries=3,
        timeout=120.0,
        human_verdicts_path=ROOTDIR / ".faef" / "human-verdicts.jsonl",
        perturb=0,
        perturb_kinds=(),
        perturb_shrink_budget=64,
        perturbations_path=ROOTDIR / ".faef" / "perturbations",
    )


def test_defaults_with_a_model() -> None:
    evaluation = settings(cli={"model": "openai/gpt-4o-mini"}).evaluations[0]

    assert evaluation.model == "openai/gpt-4o-mini"
    assert evaluation.judge == "openai/gpt-4o-mini"
    assert evaluation.self_judged
    assert evaluation.permutations == "auto"
    assert evaluation.temperature == 0.0
    assert evaluation.open_max_tokens == 256
    assert evaluation.templates.version == TEMPLATE_VERSION
    assert evaluation.templates.multiple_choice == MULTIPLE_CHOICE_TEMPLATE


def test_the_model_from_the_ini_file_is_used_without_a_flag() -> None:
    evaluation = settings(ini={"model": "  faef-local/smollm2 \n"}).evaluations[0]

    assert evaluation.model == "faef-local/smollm2"


def test_the_command_line_wins_over_the_ini_file() -> None:
    run = settings(
        cli={
            "model": "openai/gpt-4o",
            "judge": "openai/gpt-4o-mini",
            "permutations": "cyclic",
            "temperature": "0.7",
            "max_retries": "5",
            "timeout": "30",
            "record_mode": "none",
            "concurrency": "4",
        },
        ini={
            "model": "faef-local/smollm2",
            "judge": "faef-local/other",
            "permutations": "all",
            "temperature": "0.2",
            "max_retries": "1",
            "timeout": "10",
            "record_mode": "all",
            "concurrency": "64",
        },
    )

    assert len(run.evaluations) == 1
    assert run.evaluations[0].model == "openai/gpt-4o"
    assert run.evaluations[0].judge == "openai/gpt-4o-mini"
    assert not run.evaluations[0].self_judged
    assert run.evaluations[0].permutations == "cyclic"
    assert run.evaluations[0].temperature == 0.7
    assert (run.max_retries, run.timeout) == (5, 30.0)
    assert (run.record_mode, run.concurrency) == ("none", 4)


def test_ini_values_are_used_when_no_flag_is_given() -> None:
    run = settings(ini={"model": "m", "judge": "j", "permutations": "all", "open_max_tokens": "64", "timeout": "2.5"})

    assert len(run.evaluations) == 1
    assert (run.evaluations[0].judge, run.evaluations[0].permutations, run.evaluations[0].open_max_tokens) == (
        "j",
        "all",
        64,
    )
    assert run.timeout == 2.5


def test_judge_from_the_ini_file_with_the_model_from_the_command_line() -> None:
    evaluation = settings(cli={"model": "m"}, ini={"judge": "j"}).evaluations[0]

    assert (evaluation.model, evaluation.judge) == ("m", "j")


def test_thresholds_from_the_command_line_may_be_comma_separated() -> None:
    run = settings(cli={"min_css": ["0.8, privacy=0.9", "Individual Harm=85%"], "min_cs": ["0.7"]})

    assert run.thresholds == (
        Threshold(metric="css", minimum=Fraction("0.8")),
        Threshold(metric="css", minimum=Fraction("0.9"), dimension="privacy"),
        Threshold(metric="css", minimum=Fraction("0.85"), dimension="individual_harm"),
        Threshold(metric="cs", minimum=Fraction("0.7")),
    )


def test_thresholds_from_the_ini_file_are_one_a_line() -> None:
    run = settings(ini={"min_css": ["0.8", "privacy=0.9", ""], "min_cs": ["fairness=0.5,0.6"]})

    assert run.thresholds == (
        Threshold(metric="css", minimum=Fraction("0.8")),
        Threshold(metric="css", minimum=Fraction("0.9"), dimension="privacy"),
        Threshold(metric="cs", minimum=Fraction("0.5"), dimension="fairness"),
        Threshold(metric="cs", minimum=Fraction("0.6")),
    )


def test_thresholds_on_the_command_line_replace_those_of_the_ini_file() -> None:
    run = settings(cli={"min_css": ["0.5"]}, ini={"min_css": ["0.9", "privacy=0.9"]})

    assert run.thresholds == (Threshold(metric="css", minimum=Fraction("0.5")),)


def test_report_path_from_either_place(tmp_path: Path) -> None:
    from_ini = settings(ini={"report": [tmp_path / "ini.json"]})
    from_cli = settings(cli={"report": str(tmp_path / "cli.json")}, ini={"report": [tmp_path / "ini.json"]})

    assert from_ini.report_path == tmp_path / "ini.json"
    assert from_cli.report_path == tmp_path / "cli.json"


def test_store_path_from_either_place_is_not_moved_under_the_rootdir(tmp_path: Path) -> None:
    # pytest resolves both against their own directories (invocation dir, ini file's dir).
    from_ini = settings(ini={"store": [tmp_path / "ini.sqlite"]})
    from_cli = settings(cli={"store": str(tmp_path / "cli.sqlite")}, ini={"store": [tmp_path / "ini.sqlite"]})

    assert from_ini.store_path == tmp_path / "ini.sqlite"
    assert from_cli.store_path == tmp_path / "cli.sqlite"


@pytest.mark.parametrize("mode", ["none", "once", "new", "all"])
@pytest.mark.parametrize("where", ["cli", "ini"])
def test_every_record_mode_is_accepted_from_either_place(where: str, mode: str) -> None:
    run = settings(cli={"record_mode": mode}) if where == "cli" else settings(ini={"record_mode": f" {mode}\n"})

    assert run.record_mode == mode


@pytest.mark.parametrize("mode", ["sometimes", "new_episodes", "NEW"])
def test_an_unknown_record_mode_names_the_option_and_the_choices(mode: str) -> None:
    with pytest.raises(SettingsError) as excinfo:
        settings(ini={"record_mode": mode})

    assert str(excinfo.value) == f"faef_record_mode: {mode!r} is not one of none, once, new, all"


def test_concurrency_is_auto_unless_a_number_is_given() -> None:
    assert (settings().concurrency, settings().max_concurrency, settings().max_cost) == (None, 256, None)
    assert settings(cli={"concurrency": "auto", "max_concurrency": "32"}).max_concurrency == 32
    assert settings(ini={"max_cost": "2.5"}).max_cost == 2.5


def test_concurrency_from_either_place() -> None:
    assert settings(ini={"concurrency": "3"}).concurrency == 3
    assert settings(cli={"concurrency": "1"}, ini={"concurrency": "3"}).concurrency == 1


def test_template_override_from_the_ini_file(tmp_path: Path) -> None:
    template = tmp_path / "mc.txt"
    template.write_text("Q: $question\n$options\nPick one of $labels.", encoding="utf-8")

    evaluation = settings(cli={"model": "m"}, ini={"multiple_choice_template": [template]}).evaluations[0]

    assert evaluation.templates.multiple_choice == "Q: $question\n$options\nPick one of $labels."
    assert evaluation.templates.version != TEMPLATE_VERSION


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("temperature", "hot", "--faef-temperature / faef_temperature: 'hot' is not a number"),
        ("temperature", "-0.5", "--faef-temperature / faef_temperature: '-0.5' must be at least 0"),
        ("open_max_tokens", "1.5", "--faef-open-max-tokens / faef_open_max_tokens: '1.5' is not a number"),
        ("open_max_tokens", "0", "--faef-open-max-tokens / faef_open_max_tokens: '0' must be at least 1"),
        ("max_retries", "-1", "--faef-max-retries / faef_max_retries: '-1' must be at least 0"),
        ("max_retries", "three", "--faef-max-retries / faef_max_retries: 'three' is not a number"),
        ("timeout", "0", "--faef-timeout / faef_timeout: '0' must be at least 0.001"),
        ("concurrency", "0", "--faef-concurrency / faef_concurrency: '0' must be at least 1"),
        ("concurrency", "2.5", "--faef-concurrency / faef_concurrency: '2.5' is neither auto nor a number"),
        ("concurrency", "many", "--faef-concurrency / faef_concurrency: 'many' is neither auto nor a number"),
        ("max_concurrency", "0", "--faef-max-concurrency / faef_max_concurrency: '0' must be at least 1"),
        ("max_cost", "five", "--faef-max-cost / faef_max_cost: 'five' is not a number"),
        ("max_cost", "-1", "--faef-max-cost / faef_max_cost: '-1' must be at least 0"),
    ],
)
def test_a_bad_number_names_the_option(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError) as excinfo:
        settings(cli={"model": "m", name: value})

    assert str(excinfo.value) == message


def test_a_bad_number_in_the_ini_file_names_the_option() -> None:
    with pytest.raises(SettingsError, match=r"^--faef-timeout / faef_timeout: 'soon' is not a number$"):
        settings(ini={"timeout": "soon"})


@pytest.mark.parametrize("where", ["cli", "ini"])
def test_an_unknown_permutation_mode_names_the_choices(where: str) -> None:
    values = {"permutations": "random"}

    with pytest.raises(SettingsError) as excinfo:
        settings(cli=values) if where == "cli" else settings(ini=values)

    assert str(excinfo.value) == "faef_permutations: 'random' is not one of auto, all, cyclic"


def test_a_bad_threshold_names_the_option_and_the_text() -> None:
    with pytest.raises(SettingsError) as excinfo:
        settings(cli={"min_cs": ["0.9,lots"]})

    assert str(excinfo.value).startswith("--faef-min-cs / faef_min_cs: 'lots' is not a threshold")


def test_a_bad_threshold_is_an_error_even_without_a_model() -> None:
    with pytest.raises(SettingsError, match="a threshold must lie between 0 and 1"):
        settings(ini={"min_css": ["85"]})


def test_a_missing_template_file_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.txt"

    with pytest.raises(SettingsError) as excinfo:
        settings(cli={"judge_template": str(missing)})

    assert str(excinfo.value) == f"{missing}: cannot read the judge template: No such file or directory"


def test_a_template_with_an_unknown_placeholder_names_it(tmp_path: Path) -> None:
    template = tmp_path / "mc.txt"
    template.write_text("$question $options $choices", encoding="utf-8")

    with pytest.raises(SettingsError) as excinfo:
        settings(ini={"multiple_choice_template": [template]})

    assert str(excinfo.value) == f"{template}: unknown placeholder(s) $choices in the multiple_choice template"


def test_every_option_has_one_flag_and_one_ini_key() -> None:
    flags = [option.flag for option in OPTIONS]
    inis = [option.ini for option in OPTIONS]

    assert len(set(flags)) == len(flags) == len(set(inis))
    assert all(flag.startswith("--faef-") and "_" not in flag for flag in flags)
    assert all(ini.startswith("faef_") and "-" not in ini for ini in inis)
    assert Option(name="min_css", help="").flag == "--faef-min-css"
    assert Option(name="min_css", help="").ini == "faef_min_css"


# --- several models ------------------------------------------------------------------------------


def test_several_models_from_repeated_or_comma_separated_flags_without_duplicates() -> None:
    run = settings(cli={"model": ["openai/gpt-4o-mini", "faef-local/smollm2, openai/gpt-4o", "openai/gpt-4o-mini"]})

    assert [evaluation.model for evaluation in run.evaluations] == [
        "openai/gpt-4o-mini",
        "faef-local/smollm2",
        "openai/gpt-4o",
    ]
    assert all(evaluation.self_judged for evaluation in run.evaluations)


def test_several_models_one_per_ini_line_share_the_judge() -> None:
    run = settings(ini={"model": "a/one\n  b/two  \na/one,c/three\n", "judge": "j/judge", "permutations": "cyclic"})

    assert [(e.model, e.judge, e.permutations) for e in run.evaluations] == [
        ("a/one", "j/judge", "cyclic"),
        ("b/two", "j/judge", "cyclic"),
        ("c/three", "j/judge", "cyclic"),
    ]


def test_models_on_the_command_line_replace_those_of_the_ini_file() -> None:
    run = settings(cli={"model": ["c/three"]}, ini={"model": "a/one\nb/two"})

    assert [evaluation.model for evaluation in run.evaluations] == ["c/three"]


# --- baselines and the regression gate -----------------------------------------------------------

BASELINES = ROOTDIR / ".faef" / "baselines"


def test_no_baseline_is_saved_or_compared_by_default() -> None:
    run = settings(cli={"model": "m"})

    assert (run.save_baseline, run.compare_with, run.regression_rules) == (None, None, ())
    assert (run.alpha, run.strict, run.html_path) == (0.05, False, None)


def test_a_baseline_name_lives_in_the_baseline_folder_under_the_rootdir() -> None:
    run = settings(cli={"save_baseline": "nightly", "compare": "release-1.2"})

    assert run.save_baseline == BASELINES / "nightly.json"
    assert run.compare_with == BASELINES / "release-1.2.json"


def test_the_flags_without_a_value_mean_the_default_baseline() -> None:
    # argparse gives an option's optional_value when the flag comes without one.
    value = next(option.optional_value for option in OPTIONS if option.name == "compare")

    run = settings(cli={"save_baseline": value, "compare": value})

    assert run.save_baseline == run.compare_with == BASELINES / "default.json"


def test_baseline_names_from_the_ini_file() -> None:
    run = settings(ini={"save_baseline": " nightly\n", "compare": "release-1.2"})

    assert (run.save_baseline, run.compare_with) == (BASELINES / "nightly.json", BASELINES / "release-1.2.json")


def test_a_baseline_folder_from_the_ini_file_holds_the_named_baselines(tmp_path: Path) -> None:
    run = settings(cli={"save_baseline": "nightly", "compare": "nightly"}, ini={"baseline_dir": [tmp_path / "b"]})

    assert run.save_baseline == run.compare_with == tmp_path / "b" / "nightly.json"


def test_a_relative_baseline_path_to_compare_with_is_taken_from_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    run = settings(cli={"compare": "old/nightly.json"})

    assert run.compare_with == tmp_path.resolve() / "old" / "nightly.json"


def test_a_command_line_name_that_is_a_path_here_is_refused_but_an_ini_one_is_not(tmp_path: Path) -> None:
    (tmp_path / "evals").mkdir()

    with pytest.raises(SettingsError, match=r"^--faef-save-baseline: 'evals' is not a baseline name: it is a path"):
        settings(cli={"save_baseline": "evals"}, invocation_dir=tmp_path)
    # An ini value cannot be a test path that argparse took for the option's value.
    from_ini = settings(ini={"save_baseline": "evals"}, invocation_dir=tmp_path)
    assert from_ini.save_baseline == BASELINES / "evals.json"
    # --faef-save-baseline alone means "default", whatever the directory holds.
    (tmp_path / "default").mkdir()
    assert settings(cli={"save_baseline": "default"}, invocation_dir=tmp_path).save_baseline == BASELINES / (
        "default.json"
    )


def test_a_path_given_as_the_name_to_save_under_is_refused() -> None:
    with pytest.raises(SettingsError) as excinfo:
        settings(cli={"save_baseline": "tests/"})

    assert str(excinfo.value).startswith("--faef-save-baseline: 'tests/' is not a baseline name")


def test_compare_fail_alone_compares_with_the_default_baseline() -> None:
    run = settings(cli={"compare_fail": ["css:-2%"]})

    assert run.compare_with == BASELINES / "default.json"
    assert [(rule.metric, rule.tolerance, rule.dimension) for rule in run.regression_rules] == [
        ("css", Fraction("0.02"), None)
    ]


def test_compare_fail_with_a_named_baseline_compares_with_that_one() -> None:
    run = settings(cli={"compare_fail": ["css:-2%"], "compare": "nightly"})

    assert run.compare_with == BASELINES / "nightly.json"


def test_regression_rules_from_flags_may_repeat_and_be_comma_separated() -> None:
    run = settings(cli={"compare_fail": ["css:-2%, cs:-5%", "Individual Harm.css:-0"]})

    assert [(rule.metric, rule.tolerance, rule.dimension) for rule in run.regression_rules] == [
        ("css", Fraction("0.02"), None),
        ("cs", Fraction("0.05"), None),
        ("css", Fraction("0.0"), "individual_harm"),
    ]


def test_regression_rules_one_per_ini_line_give_way_to_the_command_line() -> None:
    from_ini = settings(ini={"compare_fail": "css:-2%\nprivacy.cs:-0.1\n"})
    from_cli = settings(cli={"compare_fail": ["cs:-0"]}, ini={"compare_fail": "css:-2%\nprivacy.cs:-0.1\n"})

    assert [(rule.metric, rule.tolerance, rule.dimension) for rule in from_ini.regression_rules] == [
        ("css", Fraction("0.02"), None),
        ("cs", Fraction("0.1"), "privacy"),
    ]
    assert [(rule.metric, rule.tolerance, rule.dimension) for rule in from_cli.regression_rules] == [
        ("cs", Fraction("0.0"), None)
    ]


def test_a_bad_regression_rule_names_the_option_and_the_rule() -> None:
    with pytest.raises(SettingsError) as excinfo:
        settings(ini={"compare_fail": "css:-2%\nprecision:-1%"})

    assert str(excinfo.value) == (
        "--faef-compare-fail / faef_compare_fail: 'precision:-1%': unknown metric 'precision'; "
        "use cs, css or robust_css"
    )


def test_alpha_from_either_place() -> None:
    assert settings(ini={"alpha": "0.1"}).alpha == 0.1
    assert settings(cli={"alpha": "0.01"}, ini={"alpha": "0.1"}).alpha == 0.01


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("0", "must lie between 0 and 1"),
        ("1", "must lie between 0 and 1"),
        ("1.5", "must lie between 0 and 1"),
        ("nan", "must lie between 0 and 1"),
        ("-0.1", "must be at least 0"),
        ("often", "is not a number"),
    ],
)
def test_an_alpha_that_is_not_a_probability_strictly_between_0_and_1_is_refused(value: str, problem: str) -> None:
    with pytest.raises(SettingsError) as excinfo:
        settings(cli={"alpha": value})

    assert str(excinfo.value) == f"--faef-alpha / faef_alpha: {value!r} {problem}"


@pytest.mark.parametrize(("cli", "ini", "strict"), [(None, False, False), (True, False, True), (None, True, True)])
def test_strict_from_the_flag_or_the_ini_bool(cli: bool | None, ini: bool, strict: bool) -> None:
    assert settings(cli={"strict": cli}, ini={"strict": ini}).strict is strict


def test_html_path_from_either_place(tmp_path: Path) -> None:
    from_ini = settings(ini={"html": [tmp_path / "ini.html"]})
    from_cli = settings(cli={"html": str(tmp_path / "cli.html")}, ini={"html": [tmp_path / "ini.html"]})

    assert from_ini.html_path == tmp_path / "ini.html"
    assert from_cli.html_path == tmp_path / "cli.html"


# --- judge calibration and human verdicts ---------------------------------------------------------


def test_the_judge_is_not_calibrated_by_default() -> None:
    run = settings(cli={"model": "m"})

    assert not run.calibrate_judge
    assert (run.min_judge_accuracy, run.trust_judge) == (Fraction("0.9"), False)


@pytest.mark.parametrize(("cli", "ini"), [(True, False), (None, True)])
def test_calibration_from_the_flag_or_the_ini_bool(cli: bool | None, ini: bool) -> None:
    run = settings(cli={"model": "m", "calibrate_judge": cli}, ini={"calibrate_judge": ini})

    assert run.calibrate_judge
    assert all(evaluation.calibrate_judge for evaluation in run.evaluations)


@pytest.mark.parametrize(("text", "minimum"), [("0.95", "19/20"), ("85%", "17/20"), (" 1 ", "1")])
def test_a_minimum_judge_accuracy_is_a_share_or_a_percentage_and_asks_for_calibration(text: str, minimum: str) -> None:
    from_cli = settings(cli={"model": "m", "min_judge_accuracy": text})
    from_ini = settings(cli={"model": "m"}, ini={"min_judge_accuracy": text})

    for run in (from_cli, from_ini):
        assert run.min_judge_accuracy == Fraction(minimum)
        assert run.calibrate_judge


@pytest.mark.parametrize(
    ("text", "problem"),
    [("high", "is not a threshold; write a number from 0 to 1 (0.9) or a percentage (90%)"),
     ("privacy=0.9", "is not a threshold"),
     ("120%", "a threshold must lie between 0 and 1")],
)  # fmt: skip
def test_a_bad_minimum_judge_accuracy_is_refused_naming_the_option(text: str, problem: str) -> None:
    with pytest.raises(SettingsError) as excinfo:
        settings(ini={"min_judge_accuracy": text})

    message = str(excinfo.value)
    assert message.startswith(f"--faef-min-judge-accuracy / faef_min_judge_accuracy: {text!r}")
    assert problem in message


@pytest.mark.parametrize(("cli", "ini"), [(True, False), (None, True)])
def test_trust_judge_from_the_flag_or_the_ini_bool(cli: bool | None, ini: bool) -> None:
    assert settings(cli={"trust_judge": cli}, ini={"trust_judge": ini}).trust_judge


def test_human_verdicts_default_under_the_rootdir_and_may_be_named_in_either_place(tmp_path: Path) -> None:
    assert settings().human_verdicts_path == ROOTDIR / ".faef" / "human-verdicts.jsonl"
    assert settings(ini={"human_verdicts": [tmp_path / "ini.jsonl"]}).human_verdicts_path == tmp_path / "ini.jsonl"
    from_cli = settings(cli={"human_verdicts": str(tmp_path / "cli.jsonl")}, ini={"human_verdicts": [tmp_path / "x"]})
    assert from_cli.human_verdicts_path == tmp_path / "cli.jsonl"


def test_gates_naming_a_dimension_no_suite_has_are_listed_with_the_dimensions_there() -> None:
    run = settings(
        cli={
            "min_css": ["0.9,privcy=0.9,Privacy=0.5"],
            "min_cs": ["individual harm=0.5"],
            "compare_fail": ["fairnes.css:-2%,css:-1%"],
        }
    )

    assert run.unknown_dimensions(["Privacy", "Individual Harm"]) == [
        "--faef-min-css / faef_min_css: 'privcy=0.9': no collected suite file has a dimension 'privcy' "
        "(the dimensions there: Individual Harm, Privacy)",
        "--faef-compare-fail / faef_compare_fail: 'fairnes.css:-2%': no collected suite file has a dimension "
        "'fairnes' (the dimensions there: Individual Harm, Privacy)",
    ]
    assert run.unknown_dimensions(["privacy", "individual_harm", "Fairnes"]) == [
        "--faef-min-css / faef_min_css: 'privcy=0.9': no collected suite file has a dimension 'privcy' "
        "(the dimensions there: Fairnes, individual_harm, privacy)",
    ]


def test_exports_are_off_unless_named_and_the_command_line_wins(tmp_path: Path) -> None:
    assert (settings().export_pairs, settings().export_sft, settings().export_all) == (None, None, False)
    from_ini = settings(ini={"export_pairs": [tmp_path / "p.jsonl"], "export_sft": [tmp_path / "s.jsonl"]})
    assert (from_ini.export_pairs, from_ini.export_sft) == (tmp_path / "p.jsonl", tmp_path / "s.jsonl")
    from_cli = settings(cli={"export_pairs": str(tmp_path / "cli.jsonl")}, ini={"export_pairs": [tmp_path / "x"]})
    assert from_cli.export_pairs == tmp_path / "cli.jsonl"
    assert settings(ini={"export_all": True}).export_all and settings(cli={"export_all": True}).export_all


# --- issue 28: samples, the gate's correction, the drift check's noise -----------------------------


def test_samples_and_their_rule_reach_every_model() -> None:
    run = settings(cli={"model": ["a/m", "b/m"], "samples": "5"}, ini={"sample_rule": " majority\n"})
    assert [(evaluation.samples, evaluation.sample_rule) for evaluation in run.evaluations] == [(5, "majority")] * 2
    default = settings(cli={"model": ["a/m"]})
    assert (default.evaluations[0].samples, default.evaluations[0].sample_rule) == (1, "all")
    assert (default.correction, default.drift_noise, default.drift_check) == ("holm", None, 96)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"samples": "0"}, "--faef-samples / faef_samples: '0' must be at least 1"),
        ({"samples": "five"}, "--faef-samples / faef_samples: 'five' is not a number"),
        ({"sample_rule": "most"}, "faef_sample_rule: 'most' is not one of all, majority"),
        ({"correction": "bonferroni"}, "faef_correction: 'bonferroni' is not one of holm, none"),
        ({"drift_noise": "often"}, "--faef-drift-noise / faef_drift_noise: 'often' is neither auto nor a number"),
        ({"drift_noise": "0.5"}, "--faef-drift-noise / faef_drift_noise: '0.5' must be at least 0 and below 0.5"),
    ],
)
def test_a_bad_statistics_option_names_itself(values: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as excinfo:
        settings(cli={"model": ["a/m"]}, ini=values)
    assert str(excinfo.value).startswith(message)


def test_the_drift_noise_may_be_given() -> None:
    assert settings(ini={"drift_noise": "0.02"}).drift_noise == 0.02
    assert settings(ini={"drift_noise": "auto"}).drift_noise is None
