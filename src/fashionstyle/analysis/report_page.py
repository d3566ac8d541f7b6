"""The report's HTML: page frame, tables, headline, and the folder it may write into.

    page(title, top, sections)        # the whole index.html, sections numbered, with a list of contents
    headline_html(data)               # the run summary's macro F-beta per split, at 0.5 and all-positive
    check_report_folder(out)          # refuse a folder holding files that are not a report of ours

Scores come from the run's summary (core/summary.py): the numbers the CLI table and the card show.
"""
from __future__ import annotations

import html
import re
from pathlib import Path

import numpy as np

from fashionstyle.analysis import gallery
from fashionstyle.analysis.report_data import RunData, split_scores, tuned_scores
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.summary import RunSummary, run_summary, summarize
from fashionstyle.data.labels.stats import label_counts, loss_weights, ratio_text

GENERATOR = "fashionstyle report"  # <meta name="generator">: marks a folder's index.html as a report of ours
OLD_TITLE = "<title>Fashion style report: "  # reports written before the marker
NOT_SCORED = "n/a"  # a label without positive images in a split: recall and F-beta undefined

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1200px;
       margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #1f77b4; padding-bottom: .3em; overflow-wrap: anywhere; }
h2 { margin-top: 2em; color: #1f4e79; }
figure { margin: 1em 0; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption, .note { color: #555; font-size: .95em; overflow-wrap: anywhere; }
.note { background: #fff8e1; border-left: 4px solid #f0ad4e; padding: .5em 1em; }
.note.warning { background: #fdecea; border-left-color: #d9534f; color: #8a1f11; font-weight: bold; }
table { border-collapse: collapse; margin: 1em 0; font-size: .92em; }
.wide { overflow-x: auto; max-width: 100%; }
.headline { display: grid; grid-template-columns: repeat(auto-fit, minmax(10em, 1fr)); gap: .6em; margin: 1em 0; }
.headline div { border: 1px solid #cfd9e3; border-radius: 6px; padding: .4em .8em; background: #f5f9fc; }
.headline .value { display: block; font-size: 2em; font-weight: bold; color: #1f4e79; }
.headline .tuned .value { color: #0b3d6b; } .headline .half .value { color: #5b7fa3; font-size: 1.6em; }
.headline .baseline .value { color: #888; font-size: 1.3em; }
nav ol { columns: 2 16em; margin: .5em 0; }
@media (max-width: 600px) { body { margin: 1em auto; } h1 { font-size: 1.5em; }
  .headline { grid-template-columns: repeat(3, 1fr); gap: .3em; font-size: .85em; }
  .headline div { padding: .3em .4em; } .headline .value { font-size: 1.6em; } }
th, td { border: 1px solid #ccc; padding: .25em .7em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { background: #eef3f8; }
tr.macro td { font-weight: bold; border-top: 2px solid #888; }
code { background: #f3f3f3; padding: 0 .3em; }
"""


# -- html --------------------------------------------------------------------------
def figure_html(name: str, caption: str) -> str:
    """A figure that opens full size when clicked (on a phone it is shown shrunk to the screen)."""
    alt = html.escape(re.sub(r"<[^>]+>", "", caption), quote=True)
    return (f'<figure><a href="{name}"><img src="{name}" alt="{alt}"></a>'
            f"<figcaption>{caption}</figcaption></figure>")


def table_html(header: list[str], rows: list[list[str]], macro: list[str] | None = None) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    if macro:
        body += '<tr class="macro">' + "".join(f"<td>{c}</td>" for c in macro) + "</tr>"
    return f'<div class="wide"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def stats_table_html(names: list[str], targets: np.ndarray, weight_power: float) -> str:
    positives, negatives = label_counts(targets)
    pos_w, neg_w = loss_weights(targets, weight_power)
    rows = [[html.escape(n), str(p), str(q), ratio_text(int(p), int(q)), f"{a:.4f}", f"{b:.4f}"]
            for n, p, q, a, b in zip(names, positives, negatives, pos_w, neg_w)]
    return table_html(["label", "positives", "negatives", "pos:neg", "A", "B"], rows)


def note(text: str) -> str:
    return f'<p class="note">{text}</p>'


def page(title: str, top: list[str], sections: list[str]) -> str:
    """The html page: `top` under the title, then a list of contents and the `sections`, numbered."""
    text, titles = numbered_sections("\n".join(sections))
    contents = "<nav><ol>" + "".join(f'<li><a href="#s{i}">{t}</a></li>' for i, t in enumerate(titles, 1))
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f'<meta name="generator" content="{GENERATOR}">\n'
            f"<title>{html.escape(title)}</title>\n<style>{CSS}{gallery.CSS}</style>\n</head>\n<body>\n"
            f"<h1>{html.escape(title)}</h1>\n" + "\n".join(top) + f"\n{contents}</ol></nav>\n{text}"
            "\n</body>\n</html>\n")


def numbered_sections(text: str) -> tuple[str, list[str]]:
    """Every <h2> numbered in page order, with an anchor (#s1, #s2, ...); and the titles."""
    titles: list[str] = []

    def number(match: re.Match) -> str:
        titles.append(match.group(1))
        return f'<h2 id="s{len(titles)}">{len(titles)}. {match.group(1)}</h2>'

    return re.sub(r"<h2>(.*?)</h2>", number, text), titles


def summary_html(data: RunData) -> str:
    m = data.manifest
    facts = [f"run directory <code>{html.escape(str(data.run.path.resolve()))}</code>",
             f"{len(data.label_names)} labels", f"{len(data.val.targets)} validation images"]
    if data.test is not None:
        facts.append(f"{len(data.test.targets)} test images")
    facts += [f"{k.replace('_', ' ')} {html.escape(str(m[k]))}"
              for k in ("kind", "best_epoch", "epochs", "written") if m.get(k) is not None]
    return "<p>" + "; ".join(facts) + ".</p>"


def scores_table_html(data: RunData) -> str:
    """Per label: the threshold, then per split support, precision, recall and F-beta (tuned), F-beta at 0.5;
    "n/a" where a label has no positive image in the split (the macro row counts it as 0)."""
    header, columns, macro = ["label", "threshold"], [[f"{t:.3f}" for t in data.tuner.thresholds_]], ["macro", ""]
    for split_name, split in data.splits().items():
        tuned, at_half = tuned_scores(data, split), split_scores(data, split)[0]
        header += [f"{split_name} {w}" for w in ("support", "precision", "recall", data.beta_name,
                                                  f"{data.beta_name} @0.5")]
        columns.append([str(n) for n in tuned["support"]])
        macro.append("")
        scored = np.asarray(tuned["support"]) > 0
        for values, defined in ((tuned["precision"], None), (tuned["recall"], scored), (tuned["fbeta"], scored),
                                (at_half, scored)):
            columns.append([f"{v:.3f}" if defined is None or defined[j] else NOT_SCORED
                            for j, v in enumerate(values)])
            macro.append(f"{np.mean(values):.3f}")
    rows = [[html.escape(n)] + [c[j] for c in columns] for j, n in enumerate(data.label_names)]
    return table_html(header, rows, macro)


def unscored_note(data: RunData) -> str:
    """How the macro means treat labels without positive images in a split ("" when every label has some)."""
    missing = {name: [n for n, s in zip(data.label_names, split.targets.sum(axis=0)) if s == 0]
               for name, split in data.splits().items()}
    parts = [f"{_some(names)} in {name}" for name, names in missing.items() if names]
    if not parts:
        return ""
    return note(f"{NOT_SCORED}: no positive image of {'; '.join(parts)}, so recall and {data.beta_name} are "
                f"undefined there; the macro means (the headline, this table, the CLI table and the model card) "
                f"count each such label as 0, which holds them down by 1/{len(data.label_names)} of a point each.")


def _some(names: list[str], shown: int = 10) -> str:
    """Up to `shown` names, escaped; past them how many labels in all."""
    listed = ", ".join(html.escape(n) for n in names[:shown])
    return listed if len(names) <= shown else f"{listed}, ... ({len(names):,} labels)"


def summary_of(data: RunData) -> RunSummary:
    """The run's summary (RUN/summary.json while it matches the run), else scored from what the report read."""
    summary = run_summary(data.run)
    if summary is not None and summary.val is not None:
        return summary
    test = (data.test.probs, data.test.targets) if data.test is not None else None
    return summarize(data.label_names, data.tuner, data.val.probs, data.val.targets, test)


def headline_html(data: RunData) -> str:
    """Per split the summary's macro F-beta at the run's thresholds, at 0.5 and of the all-positive
    baseline (every label predicted for every image: what a model that learnt nothing scores)."""
    summary, cells = summary_of(data), []
    for split_name in ("val", "test"):
        scores = summary.split(split_name)
        if scores is None:
            continue
        word = "validation" if split_name == "val" else "test"
        for kind, value, how in (("tuned", scores.macro_fbeta, "tuned thresholds"),
                                 ("half", scores.macro_fbeta_at_half, "threshold 0.5"),
                                 ("baseline", scores.all_positive_macro_fbeta, "all-positive baseline")):
            cells.append(f'<div class="{kind}" data-score="{split_name} {kind}"><span class="value">'
                         f"{value:.3f}</span>{word} macro {data.beta_name}, {how}<br>"
                         f"<small>{scores.n_images} images</small></div>")
    shown = [line for line in summary.notes if not line.startswith("warning: ")]  # warnings_html shows those
    notes = [note(html.escape(line)) for line in shown]
    if summary.test is None and not shown:
        notes.append(note("No test scores yet: <code>fashionstyle evaluate RUN --labels FILE --split test</code> "
                          "adds them."))
    return f'<div class="headline">{"".join(cells)}</div>{"".join(notes)}'


def warnings_html(lines: list[str]) -> str:
    """The run's warnings (RUN/warnings.json: e.g. a diverged training), above everything else."""
    return "".join(f'<p class="note warning">Warning: {html.escape(line)}.</p>' for line in lines)


def check_report_folder(out: Path) -> None:
    """Refuse, before anything is written, a folder that holds files but no report of ours: a report
    goes into a new or empty folder, or replaces an earlier report."""
    if not out.exists():
        return
    if not out.is_dir():
        raise FashionStyleError(f"{out}: is a file, not a folder; choose a new folder for --out")
    entries = sorted(p.name for p in out.iterdir())
    if not entries or is_report(out / "index.html"):
        return
    shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
    what = "an index.html that is not a fashionstyle report" if "index.html" in entries else f"other files ({shown})"
    raise FashionStyleError(f"{out}: holds {what}; a report writes only into a new or empty folder, or over an "
                            "earlier report: choose another --out")


def is_report(path: Path) -> bool:
    """Whether `path` is an index.html this report wrote (its generator mark, or an older report's title)."""
    try:
        with path.open(encoding="utf-8", errors="replace") as f:
            head = f.read(4096)
    except OSError:
        return False
    return f'<meta name="generator" content="{GENERATOR}">' in head or OLD_TITLE in head
