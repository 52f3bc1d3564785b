"""Evaluation: metrics on predictions, cost of a method, the invariance suite, comparisons.

Data flows one way: a fitted method's predictions on the test split go into
:mod:`objrec.evaluation.metrics`; :mod:`objrec.evaluation.cost` times and weighs the
method; :mod:`objrec.evaluation.compare` trains several methods on one split and
collects both for the report (:mod:`objrec.report`).
"""
