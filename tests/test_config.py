from pathlib import Path

import pytest

from learnops.config import ConfigError, load_params

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["params.yaml", "params.ci.yaml"])
def test_shipped_params_are_valid(name):
    p = load_params(ROOT / name)
    assert p.mlp.hidden == (64, 32, 16)
    assert p.root == ROOT
    assert p.db_url == f"sqlite:///{ROOT / 'data/raw/events.db'}"


def test_ci_params_have_the_same_structure():
    import yaml

    def keys(d, prefix=""):
        out = set()
        for k, v in d.items():
            out.add(prefix + k)
            if isinstance(v, dict) and k not in {"ab_groups", "ab_effect"}:
                out |= keys(v, prefix + k + ".")
        return out

    full = yaml.safe_load((ROOT / "params.yaml").read_text())
    ci = yaml.safe_load((ROOT / "params.ci.yaml").read_text())
    assert keys(full) == keys(ci)


def test_env_db_url_wins(monkeypatch):
    monkeypatch.setenv("LEARNOPS_DB_URL", "postgresql+psycopg://u:p@127.0.0.1/x")
    assert load_params(ROOT / "params.yaml").db_url.startswith("postgresql")


def test_unknown_key_and_bad_value_are_rejected(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("mlp:\n  hiden: [1]\n")
    with pytest.raises(ConfigError, match="hiden"):
        load_params(f)
    f.write_text("irt:\n  model: 4pl\n")
    with pytest.raises(ConfigError, match="4pl"):
        load_params(f)
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "missing.yaml")


def test_overrides_merge_sections(tmp_path):
    p = load_params(ROOT / "params.yaml", mlp={"epochs": 3})
    assert p.mlp.epochs == 3 and p.mlp.batch_size == 32
