"""The HTML report: built from a small comparison, checked as text and in headless Chromium.

Uses a tiny CNN estimator defined here (same attributes as objrec's CNNClassifier:
``model_`` with ``features``/``head``, ``to_tensor``, ``history_``) so the network
pictures are exercised whatever networks are registered.
"""

import base64
import re
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from objrec.evaluation.compare import compare
from objrec.methods import _REGISTRY, list_methods, register_method
from objrec.methods.base import ImageClassifier

torch = pytest.importorskip("torch")
CHROMIUM = Path("/usr/bin/chromium")


class PixelLogreg(ImageClassifier):
    def fit(self, X, y):
        X, y = self._check_fit(X, y)
        self.clf_ = LogisticRegression(max_iter=200).fit(X.reshape(len(X), -1) / 255, y)
        return self

    def predict_proba(self, X):
        X = self._check_predict(X)
        return self.clf_.predict_proba(X.reshape(len(X), -1) / 255)

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(1)]


class TinyNet(torch.nn.Module):
    def __init__(self, n_classes: int):
        super().__init__()
        nn = torch.nn
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # 8x8 -> 4x4
            nn.Conv2d(8, 16, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Flatten(),
        )
        self.head = nn.Linear(16 * 4 * 4, n_classes)

    def forward(self, x):
        return self.head(self.features(x))


class TinyCNN(ImageClassifier):
    """A two-conv network trained for a few epochs with Adam (8x8 grey images)."""

    def __init__(self, epochs: int = 3):
        self.epochs = epochs

    def to_tensor(self, X):
        return torch.as_tensor(np.asarray(X, dtype=np.float32)[:, None] / 255.0)

    def fit(self, X, y, X_val=None, y_val=None):
        X, y = self._check_fit(X, y)
        torch.manual_seed(0)
        self.model_ = TinyNet(len(self.classes_))
        opt = torch.optim.Adam(self.model_.parameters(), 3e-3)
        xt, yt = self.to_tensor(X), torch.as_tensor(np.searchsorted(self.classes_, y))
        self.history_ = []
        for ep in range(self.epochs):
            self.model_.train()
            for i in range(0, len(xt), 32):
                loss = torch.nn.functional.cross_entropy(
                    self.model_(xt[i : i + 32]), yt[i : i + 32]
                )
                opt.zero_grad()
                loss.backward()
                opt.step()
            self.model_.eval()
            with torch.no_grad():
                out = self.model_(xt)
                tl = float(torch.nn.functional.cross_entropy(out, yt))
                ta = float((out.argmax(1) == yt).float().mean())
            va = float(np.mean(self.predict(X_val) == y_val)) if X_val is not None else None
            self.history_.append(
                {
                    "epoch": ep + 1,
                    "train_loss": tl,
                    "train_accuracy": ta,
                    "val_loss": tl * 1.1,
                    "val_accuracy": va,
                }
            )
        return self

    def predict_proba(self, X):
        X = self._check_predict(X)
        with torch.no_grad():
            return torch.softmax(self.model_(self.to_tensor(X)), 1).numpy()

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(1)]

    def _save_artifact(self, folder):
        torch.save(self.model_.state_dict(), Path(folder) / "weights.pt")
        return {"weights": "weights.pt"}


SECTIONS = ("Comparison", "Results on the test split", "What it learned")


@pytest.fixture(scope="module")
def report(tmp_path_factory, digits_small):
    from objrec.data import Dataset, Split

    register_method("t-logreg2", approach="features", description="test: logreg")(PixelLogreg)
    register_method("t-cnn", approach="cnn", description="test: tiny CNN")(TinyCNN)
    Xtr, ytr, Xte, yte = digits_small
    ds = Dataset(
        name="digits-small",
        classes=[str(i) for i in range(10)],
        train=Split(Xtr[:450], ytr[:450]),
        val=Split(Xtr[450:], ytr[450:]),
        test=Split(Xte, yte),
        source="test",
    )
    methods = ["t-logreg2", "t-cnn"] + [m for m in ("hog-svm", "eigen") if m in list_methods()]
    folder = tmp_path_factory.mktemp("report")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: threads only add overhead on a shared machine
    try:
        out = compare(ds, methods=methods, folder=folder, progress=False, log=lambda *a: None)
    finally:
        torch.set_num_threads(threads)
        _REGISTRY.pop("t-logreg2", None)
        _REGISTRY.pop("t-cnn", None)
    out["dataset"] = ds
    return out


def test_report_is_one_self_contained_file(report):
    html = report["report"].read_text()
    srcs = re.findall(r'<img[^>]+src="([^"]+)"', html)
    assert len(srcs) >= 10
    for s in srcs:
        assert s.startswith("data:image/png;base64,")
        assert base64.b64decode(s.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert not re.search(r'(src|href)="(https?:)?//', html)  # nothing fetched from elsewhere
    assert "<script" not in html
    for r in report["results"]:
        assert f'id="m-{r.name}"' in html
    # the files behind the pictures are kept in plots/
    assert len(list((report["folder"] / "plots").glob("*.png"))) == len(srcs)


def test_report_has_every_picture(report):
    html = report["report"].read_text()
    for title in (
        "Accuracy and cost",
        "Confusion matrix",
        "Per-class accuracy",
        "Top losses",
        "Calibration",
    ):
        assert f"<b>{title}.</b>" in html
    cnn = html[html.index('id="m-t-cnn"') :]
    cnn = cnn[: cnn.index("</section>")]
    for title in (
        "Learning curve: loss",
        "Learning curve: accuracy",
        "First-layer filters",
        "Feature maps, layer by layer",
        "Grad-CAM on right predictions",
        "Grad-CAM on wrong predictions",
    ):
        assert f"<b>{title}.</b>" in cnn
    assert "<b>Calibration.</b>" in cnn  # probabilities: a reliability diagram
    names = [r.name for r in report["results"]]
    if "hog-svm" in names:
        assert "<b>HOG of sample images.</b>" in html
        svm = html[html.index('id="m-hog-svm"') :]
        svm = svm[: svm.index("</section>")]
        assert "<b>Calibration.</b>" not in svm  # decision scores only: no calibration curve
    if "eigen" in names:
        for title in (
            "Mean image and leading components",
            "Reconstruction from the first k components",
            "Explained variance",
        ):
            assert f"<b>{title}.</b>" in html


def test_feature_maps_shrink_with_depth(report):
    from objrec.report.learned import feature_map_stages

    est = next(r.estimator for r in report["results"] if r.name == "t-cnn")
    stages = feature_map_stages(est.model_, est.to_tensor(np.zeros((1, 8, 8), np.uint8)))
    shapes = [tuple(t.shape) for _, t in stages]
    assert shapes == [(8, 8, 8), (8, 4, 4), (16, 4, 4)]
    assert stages[0][0] == "Conv2d+ReLU"


def test_grad_cam_equals_cam_for_global_average_pooling():
    """With conv -> global average pool -> linear, Grad-CAM is the class activation map."""
    from objrec.report.learned import grad_cam

    torch.manual_seed(0)
    nn = torch.nn
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)
    )
    x = torch.randn(5, 1, 6, 6)
    target = np.array([0, 1, 2, 1, 0])
    cams, logits = grad_cam(model, x, target)
    with torch.no_grad():
        A = model[0](x)  # (5, 4, 6, 6)
        W = model[3].weight  # (3, 4)
        expected = torch.relu(torch.einsum("nk,nkhw->nhw", W[target], A)).numpy()
    lo = expected.reshape(5, -1).min(1)[:, None, None]
    hi = expected.reshape(5, -1).max(1)[:, None, None]
    np.testing.assert_allclose(cams, (expected - lo) / (hi - lo), atol=1e-5)
    np.testing.assert_allclose(logits, model(x).detach().numpy(), atol=1e-6)


@pytest.mark.browser
def test_report_renders_in_chromium(report, tmp_path):
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    shot = tmp_path / "report.png"
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(report["report"].resolve().as_uri())
            page.wait_for_load_state("load")
            n_images = page.evaluate("document.images.length")
            broken = page.evaluate(
                "[...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt)"
            )
            headings = page.evaluate(
                "[...document.querySelectorAll('h2, h3')].map(h => h.firstChild.textContent.trim())"
            )
            table_rows = page.evaluate("document.querySelectorAll('#comparison tbody tr').length")
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert n_images >= 10 and broken == []
    for s in SECTIONS:
        assert s in headings
    for r in report["results"]:
        assert r.name in headings
    assert table_rows == len(report["results"])
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_states_intervals_chance_and_memory_meaning(report):
    from objrec.evaluation.intervals import accuracy_interval

    html = report["report"].read_text()
    # 450 + 150 + 300 images: counts with thousands separators, never "1257"-style
    assert "450 training, 150 validation and 300 test images" in html
    assert "Chance level (always the most frequent class): " in html
    n_test = 300
    head = re.search(r"<thead><tr>(.*?)</tr></thead>", html).group(1)
    assert ">95% CI</th>" in head  # 300 test images: small enough to show intervals
    assert re.search(r'<th title="peak resident memory[^"]+baseline[^"]+">peak MiB</th>', head)
    best = report["results"][0]
    lo, hi = accuracy_interval(best.metrics["accuracy"], n_test)
    assert f"{100 * lo:.1f}–{100 * hi:.1f}%" in html
    assert "axis from 0; the dashed line is the chance level" in html


def test_report_explains_mce(report, tmp_path):
    from types import SimpleNamespace

    from objrec.report.html import write_report

    first = report["results"][:1]
    rob = {
        "summary": [
            {"method": first[0].name, "clean": 0.9, "mean": 0.7, "mCE": 0.8, "relative_mCE": 1.2}
        ],
        "figures": {},
        "result": SimpleNamespace(baseline="pixels-knn"),
    }
    html = write_report(tmp_path, report["dataset"], first, robustness=rob).read_text()
    terms = html[html.index('id="mce-terms"') :]
    terms = terms[: terms.index("</dl>")]
    assert "mCE (mean corruption error)" in terms and "relative mCE" in terms
    assert "(pixels-knn)" in terms and "accuracy <em>lost</em>" in terms
    assert "<td>0.800</td>" in html and "<td>1.200</td>" in html


def test_grad_cam_caption_names_its_layer(report):
    html = report["report"].read_text()
    cnn = html[html.index('id="m-t-cnn"') :]
    cnn = cnn[: cnn.index("</section>")]
    # TinyNet's last convolution is still 4x4 on 8x8 digits: it is the one used
    assert "Taken at the last convolution, a 4x4 map upsampled to the image." in cnn


def test_grad_cam_skips_layers_too_coarse_for_a_map():
    """On 8x8 inputs a third conv works at 2x2: the map comes from the 4x4 one instead."""
    from objrec.report.learned import cam_layer, grad_cam

    torch.manual_seed(0)
    nn = torch.nn
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 8x8
        nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 4x4
        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveMaxPool2d(1),  # 2x2
        nn.Flatten(), nn.Linear(8, 3),
    )  # fmt: skip
    x = torch.rand(4, 1, 8, 8)
    assert cam_layer(model, x) == (1, (4, 4))
    assert cam_layer(model, torch.rand(1, 1, 32, 32)) == (2, (8, 8))  # large enough: the last
    cams, _ = grad_cam(model, x, np.zeros(4, int))
    ref, _ = grad_cam(model, x, np.zeros(4, int), layer=1)
    np.testing.assert_allclose(cams, ref)
    coarse, _ = grad_cam(model, x, np.zeros(4, int), layer=2)
    # a 2x2 map upsampled: at most 4 distinct 2x2 levels blurred; the 4x4 one has more detail
    assert len(np.unique(cams.round(4))) > len(np.unique(coarse.round(4)))


@pytest.mark.browser
def test_report_fits_a_phone_screen(report, tmp_path):
    """At 390 px wide nothing makes the page scroll sideways; the wide table scrolls in its
    own box instead."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page(viewport={"width": 390, "height": 800})
            page.goto(report["report"].resolve().as_uri())
            page.wait_for_load_state("load")
            width = page.evaluate("document.documentElement.scrollWidth")
            box = page.evaluate(
                "(() => { const s = document.querySelector('#comparison .scroll');"
                " return [s.clientWidth, s.scrollWidth]; })()"
            )
            page.screenshot(path=str(tmp_path / "report-390.png"), full_page=False)
        finally:
            browser.close()
    assert width <= 390, width
    assert box[0] <= 390 and box[1] > box[0]  # the table is wider: it scrolls in its box
