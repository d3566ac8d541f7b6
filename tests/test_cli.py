"""The command line: light to import, every option explained, one flag name per concept."""
from __future__ import annotations

import argparse
import dataclasses
import os
import re
import subprocess
import sys
import time

import pytest

from fashionstyle import cli
from fashionstyle.cli.parser import UsageError
from fashionstyle.core import config
from fashionstyle.core.config import TrainConfig

HEAVY = ("torch", "torchvision", "lightning", "timm", "matplotlib", "onnxruntime")


def _python(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def help_text(capsys, *argv: str) -> str:
    """What `fashionstyle ARGV --help` prints (argparse exits 0 after printing it)."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        cli.main([*argv, "--help"])
    assert done.value.code == 0
    return capsys.readouterr().out


def options_in(text: str) -> dict[str, tuple[str, str]]:
    """The options of a --help text: flag -> (its section, e.g. 'data options'; its help, whitespace joined)."""
    entries: dict[str, tuple[str, list[str]]] = {}
    section, entry = "", None
    for line in text.splitlines():
        if line and not line[0].isspace() and line.endswith(":"):
            section, entry = line[:-1], None
        elif line.startswith("  -"):  # the option's flags, then after 2+ spaces the start of its help
            invocation, _, start = line.strip().partition("  ")
            entry = [start]
            for flag in re.findall(r"(?<![\w-])--?\w[\w-]*", invocation):
                entries[flag] = (section, entry)
        elif entry is not None and line.startswith("    "):  # its help, continued
            entry.append(line)
        else:
            entry = None
    return {flag: (where, " ".join(" ".join(lines).split())) for flag, (where, lines) in entries.items()}


# -- import weight ---------------------------------------------------------------
def test_importing_the_package_and_building_the_parser_loads_no_heavy_module() -> None:
    code = ("import sys, fashionstyle, fashionstyle.cli\n"
            "fashionstyle.cli.build_parser()\n"
            "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))")
    result = _python(code)
    assert result.returncode == 0, result.stderr
    loaded = set(result.stdout.split())
    assert "fashionstyle" in loaded
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


@pytest.mark.slow  # a wall-clock bound
def test_help_is_fast() -> None:
    """Generous bound for a loaded 2-core machine; unloaded, `fashionstyle --help` takes well under 1 s."""
    for argv in (["--help"], ["train", "--help"]):
        seconds = []
        for _ in range(2):
            start = time.perf_counter()
            result = _python(f"from fashionstyle.cli import main; main({argv!r})")
            seconds.append(time.perf_counter() - start)
            assert result.returncode == 0 and "usage: fashionstyle" in result.stdout, result.stderr
        assert min(seconds) < 3.0, (argv, seconds)


def test_public_names_are_resolved_on_first_use() -> None:
    import fashionstyle

    assert fashionstyle.TrainConfig is TrainConfig
    assert set(fashionstyle.__all__) <= set(dir(fashionstyle))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        fashionstyle.nope  # noqa: B018


@pytest.mark.slow
def test_every_public_name_imports() -> None:
    result = _python("import fashionstyle\n"
                     "missing = [n for n in fashionstyle.__all__ if getattr(fashionstyle, n, None) is None]\n"
                     "assert not missing, missing\n"
                     "from fashionstyle import *")
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
def test_report_imports_neither_training_nor_pyplot() -> None:
    """The report reads histories through history.py and draws on Agg figures without pyplot."""
    result = _python("import sys, fashionstyle.analysis.report\n"
                     "print('fashionstyle.training.loop' in sys.modules, 'matplotlib.pyplot' in sys.modules)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]


# -- every option explained ----------------------------------------------------------
def test_every_option_of_every_command_has_help() -> None:
    commands = _subparsers(cli.build_parser())
    assert set(commands) == set(cli.COMMANDS)
    missing = []
    for name, parser in commands.items():
        for action in parser._actions:
            if (name, action.dest) == ("export", "format"):
                continue  # hidden, accepted and ignored: ONNX is the one format
            if action.help == argparse.SUPPRESS:  # a hidden alias: its dest must have a visible flag
                visible = [a for a in parser._actions if a.dest == action.dest and a.help != argparse.SUPPRESS]
                assert visible, f"{name} {action.option_strings}: hidden, and nothing else sets {action.dest}"
            elif not (action.help or "").strip():
                missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
        parser.format_help()  # a stray % in a help text fails here
    assert not missing, missing


def test_every_config_field_has_help_a_group_and_valid_choices() -> None:
    defaults = TrainConfig()
    for f in dataclasses.fields(TrainConfig):
        assert f.metadata["help"].strip(), f.name
        assert f.metadata["group"] in config.GROUPS, f.name
        if f.metadata["choices"]:
            value = getattr(defaults, f.name)
            assert set(value if isinstance(value, list) else [value]) <= set(f.metadata["choices"]), f.name


def test_train_and_cv_group_their_options_by_section_with_choices_from_the_code(capsys) -> None:
    for name in ("train", "cv"):
        text = help_text(capsys, name)
        options = options_in(text)
        given = cli.build_parser().parse_args([name, "--out", "x"])
        for f in dataclasses.fields(TrainConfig):
            flag = "--image-dir" if f.name == "images" else "--" + f.name.replace("_", "-")
            if f.name == "recipe":  # --recipe picks the starting values; the field records which
                assert "--recipe" in options
                continue
            if not f.metadata["flag"]:
                assert cli.main([name, "--out", "x", flag, "1"]) == 2
                assert f"unrecognized arguments: {flag} 1" in capsys.readouterr().err, f.name
                continue
            assert options[flag][0] == f"{f.metadata['group']} options", (name, flag)
            assert getattr(given, f.name) is None  # only options given on the command line override
        for flag, valid in (("--loss", config.LOSSES), ("--lr-schedule", config.SCHEDULES),
                            ("--mode", config.MODES), ("--select", config.SELECTIONS),
                            ("--optimizer", config.OPTIMIZERS), ("--on-bad-image", config.BAD_IMAGE_POLICIES),
                            ("--recipe", (*config.RECIPES, "auto"))):
            assert f"{flag} {{{','.join(valid)}}}" in text, flag  # argparse shows the choices in order
    text = help_text(capsys, "train")
    assert "data options:" in text and "engine options:" in text
    assert "(default: 0.001; --recipe report: 1e-05)" in " ".join(text.split())


def test_an_unknown_choice_in_the_config_names_the_valid_ones() -> None:
    from fashionstyle.core.errors import FashionStyleError

    with pytest.raises(FashionStyleError, match="lr_schedule: unknown value 'step'; valid: plateau, constant"):
        TrainConfig(lr_schedule="step").validate()


def test_train_flags_become_typed_config_values(tmp_path) -> None:
    args = cli.build_parser().parse_args(
        ["train", "--out", str(tmp_path / "run"), "--recipe", "report", "--lr", "0.01", "--focal-alpha", "0.3",
         "--label-names", "A", "B", "--no-hflip", "--loss", "focal"])
    cfg = cli.train.train_config(args)
    assert (cfg.backbone, cfg.lr, cfg.focal_alpha, cfg.label_names, cfg.hflip, cfg.loss) == (
        "densenet201", 0.01, 0.3, ["A", "B"], False, "focal")
    assert cfg.epochs == config.RECIPES["report"]["epochs"]  # not given: the recipe's


def test_a_bad_choice_is_refused_in_one_line(capsys) -> None:
    assert cli.main(["train", "--out", "x", "--loss", "mse"]) == 2
    err = capsys.readouterr().err.strip()
    assert "invalid choice: 'mse'" in err and "'weighted_bce'" in err and len(err.splitlines()) == 1


# -- one flag name per concept -------------------------------------------------------
def test_the_old_hidden_flag_names_are_gone() -> None:
    parser = cli.build_parser()
    assert parser.parse_args(["download", "l.txt", "--out", "d", "--num-workers", "3"]).num_workers == 3
    for argv in (["download", "l.txt", "--out", "d", "--workers", "5"], ["export", "runs/x", "--precision", "int8"]):
        with pytest.raises(UsageError):
            parser.parse_args(argv)


def test_export_takes_quantize_and_format() -> None:
    parser = cli.build_parser()
    export = ["export", "runs/x"]
    assert parser.parse_args(export).quantize == "none"
    assert parser.parse_args([*export, "--quantize", "int8"]).quantize == "int8"
    assert parser.parse_args(export).format == "onnx"
    assert parser.parse_args([*export, "--format", "hub"]).format == "hub"


def test_precision_means_mixed_precision_in_train_only(capsys) -> None:
    assert "Lightning precision" in options_in(help_text(capsys, "train"))["--precision"][1]
    assert "--precision" not in help_text(capsys, "export")


def test_a_flag_typo_gets_a_suggestion_in_one_line(capsys) -> None:
    assert cli.main(["train", "--imagesize", "64", "--out", "x"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "fashionstyle train: error: unrecognized arguments: --imagesize 64" in err
    assert "did you mean --image-size" in err


def test_every_command_help_ends_with_an_example(capsys) -> None:
    for name in cli.COMMANDS:
        lines = help_text(capsys, name).rstrip().splitlines()
        assert lines[-2 - cli.COMMANDS[name].example.count("\n")] == "example:", name
        assert lines[-1].strip().startswith("fashionstyle "), name


def test_every_help_example_parses() -> None:
    parser = cli.build_parser()
    for name, command in cli.COMMANDS.items():
        for line in command.example.splitlines():
            assert parser.parse_args(line.split()[1:]).command == name, line


def test_decode_is_one_choice_list_for_train_evaluate_and_predict(capsys) -> None:
    texts = {name: help_text(capsys, name) for name in ("train", "evaluate", "predict")}
    assert all(f"--decode {{{','.join(config.DECODERS)}}}" in text for text in texts.values())
    helps = {name: options_in(text)["--decode"][1] for name, text in texts.items()}
    assert helps["evaluate"] == helps["predict"] and "auto: cpu for now" in helps["train"]


@pytest.mark.parametrize("command", ["train", "cv"])
def test_train_decode_gpu_without_cuda_fails_in_one_line_before_writing(command, tmp_path, capsys,
                                                                        monkeypatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "run"
    assert cli.main([command, "--labels", str(tmp_path / "labels.csv"), "--out", str(out), "--decode", "gpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--decode gpu needs a CUDA device" in err and len(err.splitlines()) == 1
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_version_prints_the_package_version(capsys) -> None:
    from fashionstyle.core.version import __version__

    with pytest.raises(SystemExit) as stop:
        cli.main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"fashionstyle {__version__}"


def test_a_misspelt_command_gets_a_suggestion(capsys) -> None:
    assert cli.main(["trian", "--out", "x"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'trian' (did you mean train?)" in err and len(err.strip().splitlines()) == 1


def test_the_old_images_flag_still_names_the_folder_with_a_note(capsys) -> None:
    args = cli.build_parser().parse_args(["train", "--out", "x", "--images", "photos"])
    assert args.images == "photos"
    assert "--image-dir" in capsys.readouterr().err
    assert cli.build_parser().parse_args(["evaluate", "r", "--labels", "l.csv", "--image-dir", "p"]).images == "p"


def test_a_library_warning_is_one_line_without_its_source(capsys, monkeypatch) -> None:
    import warnings

    def warn_twice(args) -> int:
        warnings.warn("first line\nsecond line", UserWarning)
        return 0

    monkeypatch.setitem(cli.COMMANDS, "stats", cli.COMMANDS["stats"]._replace(run=warn_twice))
    assert cli.main(["stats", "labels.csv"]) == 0
    assert capsys.readouterr().err == "warning: first line\n"


def test_each_command_module_keeps_its_parser_beside_its_handler() -> None:
    import inspect

    for name, command in cli.COMMANDS.items():
        assert inspect.getmodule(command.run) is inspect.getmodule(command.add_parser.func
                                                                   if hasattr(command.add_parser, "func")
                                                                   else command.add_parser), name
