"""Charts of the evaluation report, as PNG or SVG (the optional extra ``charts``).

:func:`chart` draws a :class:`~humasflow.report.Report` on one page of three panels: each
step's median and 90th-percentile duration against its standard time (marked), the
items created and posted per week with the share of step completions within the
standard, and the reasons items were sent back at approval and recheck. Titles and
labels are in the current language, as the report's text is.

Drawing needs matplotlib (``pip install 'humasflow[charts]'``); without it
:func:`chart` raises :class:`ChartsUnavailable`, which says how to install it. The
report itself (:func:`~humasflow.report.render`) never needs it.
"""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

from humasflow.errors import ChartsUnavailable
from humasflow.i18n import _

if TYPE_CHECKING:
    from humasflow.report import Report

__all__ = ["CHART_FORMATS", "ChartsUnavailable", "available", "chart", "write_chart"]

#: The formats :func:`chart` draws, by file suffix.
CHART_FORMATS = ("png", "svg")


def available() -> bool:
    """Whether matplotlib is installed (charts can be drawn)."""
    return importlib.util.find_spec("matplotlib") is not None


def _short(text: str, width: int = 38) -> str:
    return text if len(text) <= width else text[:width - 1].rstrip() + "…"


def _minutes(value: Any) -> float:
    return 0.0 if value is None else value.total_seconds() / 60


def chart(report: Report, format: str = "svg") -> bytes:
    """The report's charts as one ``png`` or ``svg`` image.

    Raises:
        ChartsUnavailable: matplotlib is not installed.
        ValueError: ``format`` is not one of :data:`CHART_FORMATS`.
    """
    if format not in CHART_FORMATS:
        raise ValueError(f"format must be one of {', '.join(CHART_FORMATS)}, not {format!r}")
    if not available():
        raise ChartsUnavailable
    # The Agg canvas draws without a display and without touching pyplot's global state.
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(8.27, 11.0), layout="constrained")
    FigureCanvasAgg(figure)
    steps, weeks, reasons = figure.subplots(3, 1, height_ratios=(3, 2, 2))
    figure.suptitle(_("Evaluation of {org}").format(org=report.org))

    # Steps: median bars, the 90th percentile as a thin bar, the standard as a mark.
    shown = [s for s in report.steps if s.completions or s.standard is not None]
    labels = [f"{s.number} {s.step}" + (f" ({s.group})" if s.group else "") for s in shown]
    places = list(range(len(shown)))
    steps.barh(places, [_minutes(s.durations.p90) for s in shown], height=0.7,
               color="#c9d6ea", label=_("90th percentile"))
    steps.barh(places, [_minutes(s.durations.median) for s in shown], height=0.4,
               color="#2f5d9e", label=_("Median"))
    marked = [(p, _minutes(s.standard)) for p, s in zip(places, shown, strict=True)
              if s.standard is not None]
    if marked:
        steps.scatter([m for _p, m in marked], [p for p, _m in marked], marker="|", s=400,
                      color="#c0392b", linewidths=2.5, zorder=3, label=_("Standard time"))
    steps.set_yticks(places, labels)
    steps.invert_yaxis()
    steps.set_xlabel(_("Minutes ({clock} clock)").format(
        clock=_("working") if report.clock == "working" else _("wall")))
    steps.set_title(_("Duration of each step against its standard time"))
    if shown:
        steps.legend(loc="lower right", fontsize="small")

    # Weeks: created and posted, and the on-time share on its own axis.
    days = [w.start.isoformat() for w in report.weeks]  # the same in every language
    spots = list(range(len(days)))
    weeks.bar([x - 0.2 for x in spots], [w.created for w in report.weeks], width=0.4,
              color="#7fa7d9", label=_("Created"))
    weeks.bar([x + 0.2 for x in spots], [w.posted for w in report.weeks], width=0.4,
              color="#2f5d9e", label=_("Posted"))
    weeks.set_xticks(spots, days)
    weeks.set_ylabel(_("Items"))
    weeks.yaxis.set_major_locator(MaxNLocator(integer=True))
    weeks.set_title(_("Items per week and share on time"))
    share = weeks.twinx()
    timed = [(x, w.on_time_share * 100) for x, w in zip(spots, report.weeks, strict=True)
             if w.on_time_share is not None]
    share.plot([x for x, _v in timed], [v for _x, v in timed], color="#c0392b",
               marker="o", label=_("On time (%)"))
    share.set_ylim(0, 105)
    share.set_ylabel(_("On time (%)"))
    handles = weeks.get_legend_handles_labels()
    extra = share.get_legend_handles_labels()
    weeks.legend(handles[0] + extra[0], handles[1] + extra[1], loc="upper left",
                 fontsize="small")

    # Reasons: at approval and at recheck, most frequent first.
    counted = []
    for prefix, found in ((_("approval"), report.approval), (_("recheck"), report.recheck)):
        if found is not None:
            counted += [(_short(f"{prefix}: {reason or '-'}"), n)
                        for reason, n in found.reasons]
    counted.sort(key=lambda entry: -entry[1])
    rows = list(range(len(counted)))
    reasons.barh(rows, [n for _r, n in counted], color="#e08e45")
    reasons.set_yticks(rows, [r for r, _n in counted])
    reasons.invert_yaxis()
    reasons.set_xlabel(_("Times sent back"))
    reasons.xaxis.set_major_locator(MaxNLocator(integer=True))
    reasons.set_title(_("Reasons for rejection and rework"))
    if not counted:
        reasons.text(0.5, 0.5, _("No item was sent back in the period."),
                     ha="center", va="center", transform=reasons.transAxes)
        reasons.set_yticks([])

    out = io.BytesIO()
    # Text stays text in SVG (searchable and selectable); no date, so the same report
    # draws the same file.
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "humasflow"}):
        figure.savefig(out, format=format, dpi=120,
                       metadata={"Date": None} if format == "svg" else {"Software": None})
    return out.getvalue()


def write_chart(report: Report, path: str | Path) -> Path:
    """Draw the report's charts into ``path``, in the format its suffix names.

    Raises:
        InputInvalid: the suffix is not ``.png`` or ``.svg``.
        ChartsUnavailable: matplotlib is not installed.
        OSError: the file cannot be written.
    """
    from humasflow.errors import InputInvalid

    target = Path(path)
    suffix = target.suffix.lower().lstrip(".")
    if suffix not in CHART_FORMATS:
        raise InputInvalid("chart", _("is {value!r}, whose suffix names no chart format")
                           .format(value=str(target)), _("end the file name in .png or .svg"))
    data = chart(report, suffix)
    target.write_bytes(data)
    return target
