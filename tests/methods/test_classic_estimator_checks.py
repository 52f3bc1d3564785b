"""scikit-learn's estimator checks, where they apply.

``NystroemClassifier`` works on ordinary (N, D) feature matrices and passes every check.
The image estimators take uint8 images (N, H, W[, C]) and refuse scikit-learn's generated
tabular data (2-D float matrices, often negative) with an ``InputError``; the checks that
feed such data are listed below and skipped with that reason. The checks that
remain (constructor stores parameters untouched, get_params/set_params/clone, no
attributes set in ``__init__``, unfitted estimators raise ``NotFittedError``, ...) must pass.
Their behaviour on real images (fit/predict/score, save/load, bad input) is tested in
test_classic.py.
"""

import functools

import pytest
from sklearn.utils.estimator_checks import estimator_checks_generator

from objrec.methods.bovw import BagOfWords
from objrec.methods.eigen import EigenClassifier
from objrec.methods.features import FeatureClassifier
from objrec.methods.kernel import NystroemClassifier

TABULAR = (
    "scikit-learn's generated data is a 2-D float matrix; this estimator takes uint8 "
    "images (N, H, W[, C]) and refuses it with an InputError"
)
TABULAR_CHECKS = [
    "check_fit_score_takes_y",
    "check_estimators_overwrite_params",
    "check_dont_overwrite_parameters",
    "check_estimators_fit_returns_self",
    "check_readonly_memmap_input",
    "check_n_features_in_after_fitting",
    "check_positive_only_tag_during_fit",
    "check_estimators_dtypes",
    "check_complex_data",
    "check_dtype_object",
    "check_estimators_empty_data_messages",
    "check_pipeline_consistency",
    "check_estimators_nan_inf",
    "check_estimator_sparse_tag",
    "check_estimator_sparse_array",
    "check_estimator_sparse_matrix",
    "check_estimators_pickle",
    "check_f_contiguous_array_estimator",
    "check_classifier_data_not_an_array",
    "check_classifiers_one_label",
    "check_classifiers_classes",
    "check_classifiers_train",
    "check_classifiers_regression_target",
    "check_supervised_y_2d",
    "check_decision_proba_consistency",
    "check_methods_sample_order_invariance",
    "check_methods_subset_invariance",
    "check_fit2d_1sample",
    "check_fit2d_1feature",
    "check_dict_unchanged",
    "check_fit_idempotent",
    "check_fit_check_is_fitted",
    "check_n_features_in",
    "check_fit2d_predict1d",
    "check_requires_y_none",
    "check_sample_weights_not_an_array",
    "check_class_weight_classifiers",  # applies to FeatureClassifier (class_weight)
]


def _expected_failed(est):
    if isinstance(est, NystroemClassifier):
        return {}
    return dict.fromkeys(TABULAR_CHECKS, TABULAR)


def _params() -> list:
    estimators = [
        NystroemClassifier(n_components=30),
        FeatureClassifier("pixels", "svm"),
        FeatureClassifier("hog", "svm", kernel="rbf"),
        EigenClassifier(n_components=2),
        BagOfWords("patch", n_words=4, max_descriptors=200),
    ]
    return [
        param
        for est in estimators
        for param in estimator_checks_generator(
            est, expected_failed_checks=_expected_failed(est), mark="skip"
        )
    ]


def _id(obj):
    if isinstance(obj, functools.partial):
        return obj.func.__name__
    return getattr(obj, "__name__", type(obj).__name__)


@pytest.mark.parametrize(("estimator", "check"), _params(), ids=_id)
def test_sklearn_compatible(estimator, check):
    check(estimator)
