"""The report as a printable evidence document: HTML (Jinja2) and PDF (reportlab).

Both carry the hub's name, when the report was generated, the filters that made it, the
summary per group × severity and per release, every exception with its reason, and the
per-device table. Shares are printed by `report.percent`, the same strings as the
terminal table, so a test can find the computed figures in the PDF's text.

Each is a function of the report alone: the PDF is built in reportlab's invariant mode
(no wall-clock creation date, no time-seeded file id; the instant that matters, the
report's `generated_at`, is printed on its first page), so one report renders to one
file, byte for byte — the console's download is the CLI's file, and anyone holding the
report's JSON can re-render the document and compare.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from jinja2 import Environment, FileSystemLoader, select_autoescape

from hub.compliance.render import SUMMARY_HEADERS, hours, summary_cells
from hub.compliance.report import NOT_EXCEPTIONS, percent

TEMPLATES = Path(__file__).parent / "templates"
PDF_TABLE_CHUNK = 400
"""Rows per reportlab table: one table of 30,000 rows splits across pages in quadratic
time; chunks of a few hundred keep a 10,000-device PDF to seconds."""


def to_html(report: dict[str, Any]) -> str:
    environment = Environment(loader=FileSystemLoader(TEMPLATES),
                              autoescape=select_autoescape(["html", "j2"]))
    template = environment.get_template("compliance.html.j2")
    return template.render(report=report, percent=percent, hours=hours)


def to_pdf(report: dict[str, Any]) -> bytes:
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import LongTable, Paragraph, SimpleDocTemplate, Spacer

    styles = getSampleStyleSheet()
    small = styles["BodyText"].clone("small", fontSize=7, leading=8.5)
    out = io.BytesIO()
    document = SimpleDocTemplate(out, pagesize=landscape(A4), leftMargin=12 * mm,
                                 rightMargin=12 * mm, topMargin=12 * mm, bottomMargin=12 * mm,
                                 title=f"Compliance report — {report['hub']}",
                                 author="meisitong-hub", invariant=1)
    style = [("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
             ("BACKGROUND", (0, 0), (-1, 0), colors.lightgrey),
             ("FONTSIZE", (0, 0), (-1, -1), 7), ("VALIGN", (0, 0), (-1, -1), "TOP"),
             ("REPEATROWS", (0, 0), (-1, 0))]

    def table(headers: list[str], rows: list[list[str]], wrap: tuple[int, ...] = ()
              ) -> list[Any]:
        if not rows:
            return [Paragraph("None.", styles["BodyText"])]
        flow: list[Any] = []
        for start in range(0, len(rows), PDF_TABLE_CHUNK):
            chunk = [[Paragraph(escape(cell), small) if index in wrap else cell
                      for index, cell in enumerate(row)]
                     for row in rows[start:start + PDF_TABLE_CHUNK]]
            flow.append(LongTable([headers, *chunk], style=style, repeatRows=1))
        return flow

    filters = report["filters"]
    story: list[Any] = [
        Paragraph("Patch compliance report", styles["Title"]),
        Paragraph(escape(f"Hub: {report['hub']}"), styles["BodyText"]),
        Paragraph(escape(f"Generated: {report['generated_at']}"), styles["BodyText"]),
        Paragraph(escape(
            f"Filters: group {filters['group'] or 'all'}; severity "
            f"{filters['severity'] or 'all'}; releases published since "
            f"{filters['since'] or 'any time'}"), styles["BodyText"]),
        Paragraph("Deadline: the release's signed publication time + the group policy's "
                  "deadline hours for its severity.", styles["BodyText"]),
        Spacer(1, 4 * mm), Paragraph("Summary per group and severity", styles["Heading2"]),
        *table(SUMMARY_HEADERS, [summary_cells(s) for s in report["summary"]]),
        Spacer(1, 4 * mm), Paragraph("Per release", styles["Heading2"]),
        *table(["group", "severity", "release", "in scope", "compliant", "share", "mean h",
                "p95 h"],
               [[s["group"], s["severity"], s["release"], str(s["in_scope"]),
                 str(s["compliant"]), percent(s["share"]), hours(s["mean_hours"]),
                 hours(s["p95_hours"])] for s in report["releases"]], wrap=(2,)),
        Spacer(1, 4 * mm),
        Paragraph(f"Exceptions ({len(report['exceptions'])})", styles["Heading2"]),
        *table(["group", "device", "release", "status", "reason"],
               [[r["group"], f"{r['device']} ({r['device_id']})",
                 f"{r['name']} {r['version']}", r["status"], r["reason"]]
                for r in report["exceptions"]], wrap=(1, 4)),
        Spacer(1, 4 * mm),
        Paragraph(f"Every device and release ({len(report['rows'])} rows)",
                  styles["Heading2"]),
        *table(["group", "device", "site", "release", "severity", "status", "deadline",
                "installed", "hours"],
               [[r["group"], r["device"], r["site"], f"{r['name']} {r['version']}",
                 r["severity"], r["status"] + ("" if r["status"] in NOT_EXCEPTIONS else " *"),
                 r["deadline"] or "none", r["installed_at"] or "",
                 hours(r["hours_to_install"])] for r in report["rows"]], wrap=(1, 3)),
    ]
    document.build(story)
    return out.getvalue()
