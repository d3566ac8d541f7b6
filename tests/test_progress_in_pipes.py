"""Long commands say what they are doing: in a pipe or a log, plain lines counted in images (no carriage
returns, no batches); at a terminal, a bar counted in images."""
from __future__ import annotations

from fashionstyle.cli import main


def test_evaluate_in_a_pipe_says_its_images_in_plain_lines(run_copy, capsys) -> None:
    run, labels = run_copy.run, run_copy.labels
    assert main(["evaluate", str(run), "--labels", str(labels), "--split", "test"]) == 0
    err = capsys.readouterr().err
    assert "\r" not in err and "batch" not in err
    lines = [line for line in err.splitlines() if "predict" in line]
    assert lines[0].startswith("predicting ") and lines[0].endswith(" images ...")
    assert lines[-1].startswith("predicted ") and "img/s" in lines[-1]
