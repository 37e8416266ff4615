"""Numbers about numbers: bootstrap CIs (``bootstrap``), per-slice breakdowns and
clustering (``slices``), paired run-vs-run tests (``paired``) and efficiency KPIs
(``efficiency``). Pure: nothing here reads the store or a model.

Kept import-light: import the module you need.
"""
