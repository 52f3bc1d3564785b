"""The report: matplotlib figures (:mod:`.plots`, :mod:`.learned`) and one self-contained
HTML file built from a Jinja2 template (:mod:`.html`).

Figures are drawn on :class:`matplotlib.figure.Figure` objects (the Agg canvas), never
through pyplot's global state, so reports can be built from any thread or process.
"""
