"""mlaas4hep.classes: one label → class → role → colour mapping for Explore, the score plots and
the job view, and the sentence saying what the score is."""

from __future__ import annotations

import numpy as np

from mlaas4hep.classes import BACKGROUND, SIGNAL, class_table, evaluation_classes, score_meaning
from mlaas4hep.evaluate import evaluate
from mlaas4hep_lab.widgets.evaluation import charts_html


def test_integer_labels_make_label_1_the_red_signal_whatever_the_file_order():
    table = class_table([1, 0, 1], None)  # files: signal, background, signal
    assert [(c.value, c.name, c.role, c.colour) for c in table] == [
        (0, "label 0", "background", BACKGROUND), (1, "label 1", "signal", SIGNAL)]
    assert table[1].description == "signal, label 1 (the score is P(signal))"
    assert score_meaning(table) == "the score is P(signal) (label 1)"


def test_a_signal_on_label_0_is_not_called_what_the_score_is_of():
    """labels.txt "signal, background": signal is class 0, so a binary score is P(background)."""
    table = class_table([0, 1], ["signal", "background"])
    assert [(c.name, c.role, c.colour) for c in table] == [("signal", "signal", SIGNAL),
                                                           ("background", "background", BACKGROUND)]
    assert "score" not in table[0].description
    assert table[1].score == "the score is P(background), 1 − P(signal)"


def test_classes_without_a_signal_and_more_than_two():
    named = class_table([0, 1], ["ttH", "ttbar"])
    assert {c.role for c in named} == {"class"} and named[1].score == "the score is P(ttbar)"
    three = class_table([2, 0, 1], None)
    assert [c.name for c in three] == ["label 0", "label 1", "label 2"]
    assert len({c.colour for c in three}) == 3 and not any(c.score for c in three)


def test_an_evaluation_carries_the_mapping_and_its_charts_use_those_colours():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 400)
    scores = np.clip(0.3 * y + rng.random(400) * 0.7, 0, 1)
    ev = evaluate(y, scores, y, scores, n_bootstrap=5)
    assert ev["class_info"] == evaluation_classes(["0", "1"])["class_info"]
    assert [(c["name"], c["role"], c["colour"]) for c in ev["class_info"]] == [
        ("label 0", "background", BACKGROUND), ("label 1", "signal", SIGNAL)]
    html = charts_html(ev)
    assert "data-class='1' d=" in html and f"stroke='{SIGNAL}'" in html  # the ROC of label 1, in red
    assert f"fill='{BACKGROUND}'" in html and f"fill='{SIGNAL}'" in html  # the score histograms
    assert "label 1</b>: signal, label 1 (the score is P(signal))" in html
    # an evaluation written before it carried the mapping gets the same colours from its names
    old = {k: v for k, v in ev.items() if k not in ("class_info", "score_meaning")}
    assert charts_html(old) == html


def test_a_colour_that_is_not_one_is_never_put_into_the_page():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 200)
    ev = evaluate(y, rng.random(200), n_bootstrap=5)
    ev["class_info"][1]["colour"] = "red' onmouseover='x"
    html = charts_html(ev)
    assert "onmouseover" not in html and f"stroke='{SIGNAL}'" in html
