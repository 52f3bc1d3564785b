"""The types an ``estimator.skops`` file may hold beyond skops' own trusted defaults.

skops trusts scikit-learn's estimators, NumPy/SciPy arrays and plain containers by
default; everything else must be trusted by its exact, fully qualified name. This is the
complete list of the other types objrec's saved estimators are made of, found by saving
every registered classic method and classic segmenter (``tests/test_artifact_skops.py``
checks that the list covers them and fails when a method starts storing a new type). It names classes only:
never a module prefix, never a callable such as ``exec``, ``eval``, ``getattr``,
``__import__``, ``os.system`` or ``builtins.open``, which a ``ConstructorFromReduceNode``
would call at load time.
"""

from __future__ import annotations

TRUSTED_TYPES: frozenset[str] = frozenset(
    {
        "objrec.methods.bovw.BagOfWords",
        "objrec.methods.bovw.HoldoutRidgeClassifier",  # bovw-patch's linear classifier
        "objrec.methods.bovw.Standardize",  # and its in-place feature scaling
        "objrec.methods.eigen.EigenClassifier",
        "objrec.methods.features.FeatureClassifier",
        "objrec.methods.kernel.NystroemClassifier",
        "objrec.methods.pretrained.PretrainedFeatureClassifier",
        # the trees of the slic segmenter's HistGradientBoostingClassifier
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.tree._tree.Tree",  # the trees of pixels-rf's RandomForestClassifier
    }
)
