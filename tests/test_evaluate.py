"""One evaluation command over several hashtag models, and the attention picture, on real photos."""
import json

import pytest

from hashtale import cli
from hashtale.training.harrison import read_split, write_split

TAGS = ("airplane", "motorbike")
PER_TAG = 3


@pytest.fixture(scope="module")
def trained(tmp_path_factory, photo_paths):
    """A 6-photo HARRISON folder, and an attention model and a multi-label baseline trained on it."""
    root = tmp_path_factory.mktemp("eval")
    examples = read_split(photo_paths[0].parents[2])
    data = write_split(root / "data", [e for tag in TAGS for e in [x for x in examples if x.tags == [tag]][:PER_TAG]])
    checkpoints = []
    for arch in ("sat", "multilabel"):
        out = root / arch
        assert cli.main(["train-hashtagger", "--data", str(data), "--out", str(out), "--arch", arch,
                         "--store", str(root / "features"), "--epochs", "2", "--val-fraction", "0.34",
                         "--embed-dim", "8", "--hidden-dim", "16", "--attention-dim", "8"]) == 0
        checkpoints.append(out / "best.pt")
    return root, data, checkpoints


@pytest.mark.slow  # trains the models it scores
def test_evaluate_writes_one_table_for_all_models(trained):
    root, data, checkpoints = trained
    out = root / "report"
    args = ["evaluate", "--data", str(data), "--out", str(out), "--store", str(root / "features")]
    for ckpt in checkpoints:
        args += ["--model", str(ckpt)]
    assert cli.main(args) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["posts"] == len(TAGS) * PER_TAG
    assert [m["model"] for m in results["models"]] == ["sat-effnetlite0", "multilabel-effnetlite0"]
    for model in results["models"]:
        m = model["metrics"]
        assert all(0.0 <= m[k] <= 1.0 for k in ("BLEU-1", "BLEU-4", "ROUGE-L", "P@1", "R@5", "A@5",
                                                 "per-class F1", "per-image F1"))
        assert 0 <= m["N+"] <= len(TAGS) and 1.0 <= m["tags/post"] <= len(TAGS)
        assert m["results_with_duplicates"] == 0 and m["classes"] == len(TAGS)
    table = (out / "results.md").read_text()
    assert "| sat-effnetlite0 |" in table and "| multilabel-effnetlite0 |" in table and "per-class F1" in table


def test_annotation_metrics_as_the_corel5k_code_computes_them():
    from hashtale.training.metrics import annotation_metrics

    truth = [["sky", "sea"], ["sky"], ["cat"]]
    pred = [["sky", "tree"], ["sea"], ["cat", "sky"]]
    m = annotation_metrics(pred, truth)  # classes cat, sea, sky; "tree" is outside them
    # per class P: cat 1/1, sea 0/1, sky 1/2; R: cat 1/1, sea 0/1, sky 1/2
    assert m["per-class P"] == pytest.approx(0.5) and m["per-class R"] == pytest.approx(0.5)
    assert m["per-class F1"] == pytest.approx(0.5)
    assert m["per-image P"] == pytest.approx(2 / 4) and m["per-image R"] == pytest.approx(2 / 4)
    assert m["N+"] == 2
    # a class of the vocabulary never predicted nor present counts 0 in both means
    assert annotation_metrics(pred, truth, ["cat", "sea", "sky", "dog"])["per-class P"] == pytest.approx(1.5 / 4)


@pytest.mark.slow  # trains the model it draws
def test_attention_png_has_a_panel_per_hashtag(trained, coffee_jpeg, tmp_path, capsys):
    from PIL import Image

    _, _, checkpoints = trained
    photo = tmp_path / "coffee.jpg"
    photo.write_bytes(coffee_jpeg)
    png = tmp_path / "attention.png"
    assert cli.main(["attention", str(photo), "--out", str(png), "--checkpoint", str(checkpoints[0]), "-k", "2"]) == 0
    emitted = capsys.readouterr().out.count("#")  # the printed hashtags: the model emits 1..2
    assert 1 <= emitted <= 2
    with Image.open(png) as img:  # photo + one panel per emitted hashtag side by side, 3 x 3.4 inches each
        assert img.format == "PNG" and img.width == pytest.approx((1 + emitted) * img.height * 3 / 3.4, rel=0.05)
