"""The report tools: build the JSON report of a run, read reports back, show and compare them.

This subpackage imports neither torch nor pytest (``python -m conformance`` runs
where torch is absent, e.g. in the upgrade gate's diff job); whatever needs
torch -- which devices are available, what the environment is -- is found out by
the plugin and handed in as data.

* :mod:`.report` -- clause-by-clause outcomes of a run and the report built from them;
* :mod:`.report_io` -- reading reports back (``docs/report-schema.md``), the schema's vocabulary;
* :mod:`.markdown` -- Markdown building blocks the views share: escaping, tables, outcome symbols, legend;
* :mod:`.summary` -- ``summary``: the Markdown view of one report;
* :mod:`.matrix` -- ``matrix``: several reports side by side (the :class:`~.matrix.Matrix` and its Markdown table);
* :mod:`.matrix_html` -- ``matrix --format html``: the same as one HTML page;
* :mod:`.diff` -- comparing two reports clause by clause;
* :mod:`.cli` -- ``python -m conformance summary|diff|matrix|ratios``.

Importing this package imports none of them (``conformance.spec.registry`` reads
:mod:`.report_io`'s vocabulary without pulling in the rest).
"""
