"""The evaluation report: consented summaries as a page a care worker and the partners read
(docs/care.md). Pure rendering: no bus, no files of the hub."""
from report.html import render_html

__all__ = ["render_html"]
