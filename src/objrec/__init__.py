"""objrec: image classification with hand-crafted features, bag of visual words,
eigenfaces and CNNs, side by side under one API.

    >>> import objrec
    >>> clf = objrec.make_method("hog-svm").fit(X_train, y_train)   # X: uint8 (N, H, W[, C])
    >>> clf.score(X_test, y_test)
    >>> objrec.save(clf, "model/"); objrec.load("model/").predict(X_new)
"""

__version__ = "0.1.0"

from objrec.artifact import load, save
from objrec.errors import DatasetError, ModelFileError, ObjrecError
from objrec.methods import list_methods, make_method

__all__ = [
    "DatasetError",
    "ModelFileError",
    "ObjrecError",
    "__version__",
    "list_methods",
    "load",
    "make_method",
    "save",
]
