"""`learnops irt` commands: contract files and columns, determinism, errors, heuristic."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from learnops import irt
from learnops.errors import LearnopsError
from learnops.irt.cli import app
from learnops.irt.sim import simulate

runner = CliRunner()
DATA = Path(__file__).parent / "data"
FIT_KEYS = {"model", "loglik", "iterations", "converged", "n_learners", "n_items",
            "n_responses", "seconds", "warnings"}  # fmt: skip


@pytest.fixture(scope="module")
def responses(tmp_path_factory) -> Path:
    s = simulate(600, 10, seed=9)
    df = s.responses.rename(columns={"learner_id": "learner_hash"})
    df["module"] = "m1"  # extra columns are ignored
    path = tmp_path_factory.mktemp("in") / "responses.parquet"
    df.to_parquet(path)
    return path


def _fit(args: list[str]) -> None:
    res = runner.invoke(app, ["fit", *args])
    assert res.exit_code == 0, res.output + repr(res.exception)


@pytest.mark.parametrize("model", ["1pl", "2pl", "3pl", "heuristic"])
def test_fit_writes_contract_files(responses, tmp_path, model):
    out = tmp_path / model
    _fit([str(responses), "--model", model, "--out", str(out), "--seed", "3"])
    items = pd.read_csv(out / "items.csv")
    cols = ["item_id", "discrimination", "difficulty"]
    cols += ["guessing"] if model == "3pl" else []
    cols += ["discrimination_se", "difficulty_se"]
    assert list(items.columns[: len(cols)]) == cols
    assert len(items) == 10 and np.isfinite(items[cols[1:]].to_numpy()).all()
    ab = pd.read_csv(out / "abilities.csv")
    assert list(ab.columns) == ["learner_id", "theta", "theta_se"]
    assert len(ab) == 600 and np.isfinite(ab[["theta", "theta_se"]].to_numpy()).all()
    stats = json.loads((out / "fit.json").read_text())
    assert set(stats) >= FIT_KEYS
    assert stats["model"] == model and stats["n_responses"] == 6000 and stats["seed"] == 3
    assert stats["loglik"] < 0 and isinstance(stats["warnings"], list)
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temp files


def test_fit_output_is_deterministic(responses, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    _fit([str(responses), "--model", "2pl", "--out", str(a)])
    _fit([str(responses), "--model", "2pl", "--out", str(b)])
    for name in ("items.csv", "abilities.csv"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    ja, jb = (json.loads((d / "fit.json").read_text()) for d in (a, b))
    ja.pop("seconds"), jb.pop("seconds")
    assert ja == jb


def test_predict_adds_p_correct(responses, tmp_path):
    out = tmp_path / "m"
    _fit([str(responses), "--model", "2pl", "--out", str(out)])
    df = pd.read_parquet(responses).iloc[:50]
    df = pd.concat([df, pd.DataFrame({"learner_hash": ["brand-new"], "item_id": ["i00"]})])
    src = tmp_path / "pred_in.csv"
    df.to_csv(src, index=False)
    res = runner.invoke(app, ["predict", str(out), str(src), "--out", str(tmp_path / "p.csv")])
    assert res.exit_code == 0, res.output
    assert "1 learner(s) not in the fitted abilities" in res.output
    pred = pd.read_csv(tmp_path / "p.csv")
    assert list(pred.columns) == [*df.columns, "p_correct"]
    assert pred["p_correct"].between(0, 1).all() and len(pred) == 51
    fitted = irt.load(out)
    np.testing.assert_allclose(pred["p_correct"][:50], fitted.predict(df.iloc[:50]))


def test_predict_unknown_item_is_a_clear_error(responses, tmp_path):
    out = tmp_path / "m"
    _fit([str(responses), "--model", "1pl", "--out", str(out)])
    src = tmp_path / "bad.csv"
    pd.DataFrame({"learner_id": ["u1", "u2"], "item_id": ["i00", "mystery"]}).to_csv(src)
    res = runner.invoke(app, ["predict", str(out), str(src), "--out", str(tmp_path / "p.csv")])
    assert isinstance(res.exception, LearnopsError)
    assert "mystery" in str(res.exception)


def test_score_command(responses, tmp_path):
    out = tmp_path / "m"
    _fit([str(responses), "--model", "2pl", "--out", str(out)])
    src = tmp_path / "new.csv"
    pd.DataFrame({"learner_id": ["n1"] * 3, "item_id": ["i00", "i01", "i02"],
                  "correct": [1, 0, 1]}).to_csv(src, index=False)  # fmt: skip
    for method in ("eap", "map"):
        dest = tmp_path / f"{method}.csv"
        res = runner.invoke(
            app, ["score", str(out), str(src), "--out", str(dest), "--method", method]
        )
        assert res.exit_code == 0, res.output
        ab = pd.read_csv(dest)
        assert ab.loc[0, "learner_id"] == "n1" and np.isfinite(ab.loc[0, "theta_se"])


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"learner_id": ["a"], "item_id": ["x"], "correct": [2]}), "binary"),
        (pd.DataFrame({"learner_id": ["a"], "item_id": ["x"], "correct": ["yes"]}), "binary"),
        (
            pd.DataFrame({"learner_id": ["a", "b"], "item_id": ["x", "x"], "correct": [1, None]}),
            "binary",
        ),  # fmt: skip
        (pd.DataFrame({"learner_id": ["a"], "correct": [1]}), "item_id"),
        (pd.DataFrame({"item_id": ["x"], "correct": [1]}), "learner_id"),
    ],
)
def test_bad_input_errors(tmp_path, frame, message):
    src = tmp_path / "bad.csv"
    frame.to_csv(src, index=False)
    res = runner.invoke(app, ["fit", str(src), "--model", "2pl", "--out", str(tmp_path / "o")])
    assert isinstance(res.exception, LearnopsError)
    assert message in str(res.exception)
    assert not (tmp_path / "o").exists()


def test_unknown_model_is_an_error(responses, tmp_path):
    res = runner.invoke(app, ["fit", str(responses), "--model", "4pl", "--out", str(tmp_path)])
    assert isinstance(res.exception, LearnopsError)


def test_no_priors_and_options_on_lsat7(tmp_path):
    out = tmp_path / "lsat"
    _fit([str(DATA / "lsat7.csv"), "--model", "2pl", "--out", str(out), "--no-priors",
          "--quad-points", "61", "--max-iter", "300"])  # fmt: skip
    stats = json.loads((out / "fit.json").read_text())
    assert stats["loglik"] == pytest.approx(-2658.805, abs=1e-3)
    assert stats["priors"] == {"a": None, "b": None, "c": None}


def test_heuristic_baseline_rules():
    df = pd.DataFrame(
        {
            "learner_id": ["a"] * 4 + ["b"] * 4,
            "item_id": ["x", "y", "z", "w"] * 2,
            "correct": [1, 1, 1, 0, 1, 0, 0, 0],
        }
    )
    f = irt.fit(df, "heuristic")
    items = f.items.set_index("item_id")
    # difficulty = (0.5 − success rate) · 0.4
    assert items.loc["x", "difficulty"] == pytest.approx(-0.2)
    assert items.loc["y", "difficulty"] == pytest.approx(0.0)
    assert items.loc["w", "difficulty"] == pytest.approx(0.2)
    assert (items["discrimination"] == 1).all()
    ab = f.abilities.set_index("learner_id")
    assert ab.loc["a", "theta"] == pytest.approx(1.0)  # 75 % correct
    assert ab.loc["b", "theta"] == pytest.approx(-1.0)  # 25 % correct
    p = f.predict(df)
    assert p[0] == pytest.approx(1 / (1 + np.exp(-(1.0 + 0.2))))
    assert np.isfinite(f.loglik)


def test_saved_fit_roundtrip(tmp_path):
    s = simulate(300, 5, seed=2)
    f = irt.fit(s.responses, "3pl", se="none")
    f.save(tmp_path / "m")
    g = irt.load(tmp_path / "m")
    assert g.model == "3pl" and g.converged == f.converged
    np.testing.assert_allclose(g.predict(s.responses), f.predict(s.responses), rtol=1e-12)


def test_cli_module_imports_no_numpy():
    import subprocess
    import sys

    code = "import sys, learnops.irt.cli; print('numpy' in sys.modules, 'pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"


# --- issue 22: degenerate fits (10) and bad --out paths (11) ---


def _frame(n_learners: int, n_items: int) -> pd.DataFrame:
    rows = [
        {"learner_id": f"l{j}", "item_id": f"i{i}", "correct": (i + j) % 2}
        for j in range(n_learners)
        for i in range(n_items)
    ]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("model", ["1pl", "2pl", "3pl", "heuristic"])
@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (_frame(1, 5), "1 learner(s) (needs at least 2)"),
        (_frame(20, 1), "1 item(s) (needs at least 2)"),
    ],
)
def test_degenerate_fit_is_refused_with_the_minimum(tmp_path, model, frame, message):
    src = tmp_path / "few.csv"
    frame.to_csv(src, index=False)
    out = tmp_path / "o"
    res = runner.invoke(app, ["fit", str(src), "--model", model, "--out", str(out)])
    assert isinstance(res.exception, LearnopsError), res.output
    assert message in str(res.exception) and "\n" not in str(res.exception)
    assert not out.exists()


def test_fewer_responses_than_parameters_is_refused(tmp_path):
    # 3 learners, 4 items, 4 responses < 4 items x 2 parameters (2PL)
    frame = pd.DataFrame(
        {
            "learner_id": ["a", "b", "c", "c"],
            "item_id": ["w", "x", "y", "z"],
            "correct": [1, 0, 1, 0],
        }
    )
    with pytest.raises(LearnopsError, match=r"4 response\(s\) for 8 item parameter\(s\)"):
        irt.fit(frame, "2pl")


def test_fit_out_is_an_existing_file(responses, tmp_path):
    out = tmp_path / "model.csv"
    out.write_text("keep me")
    res = runner.invoke(app, ["fit", str(responses), "--model", "1pl", "--out", str(out)])
    assert isinstance(res.exception, LearnopsError), repr(res.exception)
    assert "exists and is not a directory" in str(res.exception)
    assert out.read_text() == "keep me"


def test_fit_out_unwritable_path(responses, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    res = runner.invoke(app, ["fit", str(responses), "--out", str(blocker / "sub" / "model")])
    assert isinstance(res.exception, LearnopsError), repr(res.exception)
    assert "is not a directory" in str(res.exception) and "\n" not in str(res.exception)


def test_fit_out_save_failure_is_one_line(responses, tmp_path, monkeypatch):
    from learnops.irt.model import IrtFit

    def deny(self, directory, timing=True):
        raise PermissionError(13, "Permission denied", str(directory))

    monkeypatch.setattr(IrtFit, "save", deny)
    res = runner.invoke(app, ["fit", str(responses), "--model", "1pl", "--out", str(tmp_path)])
    assert isinstance(res.exception, LearnopsError), repr(res.exception)
    assert "cannot write the model: Permission denied" in str(res.exception)
