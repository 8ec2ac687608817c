"""The digits example at miniature scale: summary.json schema, invariants, figure, command line."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

from pylip import certify  # noqa: E402
from pylip.cli import main  # noqa: E402
from pylip.errors import InputError  # noqa: E402
from pylip.experiments import digits  # noqa: E402
from pylip.experiments import robustness as R  # noqa: E402

pytestmark = pytest.mark.torch

REQUIRED = {
    "name": str,
    "hidden_layers": int,
    "clean_accuracy": float,
    "bound": float,
    "trivial_bound": float,
    "certified_accuracy": dict,
    "attacked_accuracy": dict,
}


@pytest.fixture(scope="module")
def run_and_files(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the command line runs it (--threads 1): same numbers
    try:
        result = digits.run(digits.DigitsSettings.miniature(), progress=False)
    finally:
        torch.set_num_threads(threads)
    folder = tmp_path_factory.mktemp("digits")
    files = digits.write_outputs(result, folder)
    return result, folder, files


@pytest.fixture(scope="module")
def summary(run_and_files):
    _, folder, _ = run_and_files
    return json.loads((folder / "summary.json").read_text())


def test_summary_json_is_a_list_of_nets_with_the_documented_keys(summary):
    settings = digits.DigitsSettings.miniature()
    assert isinstance(summary, list)
    assert len(summary) == 2 * len(settings.depths) + len(settings.lipschitz)
    radii = {repr(float(e)) for e in settings.eps}
    assert radii == {"0.1", "0.5"}
    for net in summary:
        for key, kind in REQUIRED.items():
            assert isinstance(net[key], kind), (net["name"], key)
        assert net["L_des"] is None or isinstance(net["L_des"], float)
        assert set(net["certified_accuracy"]) == radii == set(net["attacked_accuracy"])
        assert 0.0 <= net["clean_accuracy"] <= 1.0
        for eps in radii:
            cert, att = net["certified_accuracy"][eps], net["attacked_accuracy"][eps]
            assert 0.0 <= cert <= att <= net["clean_accuracy"] <= 1.0, (net["name"], eps)
            assert net["certified_not_attacked"][eps] == 0
        assert net["certified_accuracy"]["0.1"] >= net["certified_accuracy"]["0.5"]
        assert net["attacked_accuracy"]["0.1"] >= net["attacked_accuracy"]["0.5"]
        assert math.isfinite(net["bound"]) and 0 < net["bound"] <= net["trivial_bound"] * (1 + 1e-9)
        sizes = net["layer_sizes"]
        assert sizes[0] == 64 and sizes[-1] == 10 and len(sizes) == net["hidden_layers"] + 2
    names = [net["name"] for net in summary]
    assert len(set(names)) == len(names)
    kinds = {net["kind"] for net in summary}
    assert kinds == {"nominal", "L2", "lipschitz"}
    for net in summary:
        if net["kind"] == "lipschitz":
            assert net["bound"] <= net["L_des"] * (1 + 1e-9)  # enforced (Theorem 8), certified by us
            assert net["start"] == f"L2-{net['hidden_layers']}h"
        else:
            assert net["L_des"] is None


def test_reported_bound_is_pylip_certify_on_the_nets_weights(run_and_files):
    result, _, _ = run_and_files
    from pylip.train import mlp_training

    for net in (result.nets[0], result.nets[-1]):
        weights = mlp_training.mlp_weights(net.model)
        cert = certify(weights, form="neuron", activation=mlp_training.mlp_activation(net.model))
        assert net.bound == pytest.approx(cert.bound, rel=1e-5)
        assert net.trivial_bound == pytest.approx(
            float(np.prod([np.linalg.norm(w, 2) for w in weights])), rel=1e-9
        )


def test_every_certified_point_survives_the_attack(run_and_files):
    result, _, _ = run_and_files
    data = digits.load_data(result.settings)
    lipschitz = [net for net in result.nets if net.kind == "lipschitz"]
    assert lipschitz
    for net in lipschitz:
        model = copy.deepcopy(net.model).double()
        X = data.X_test.double()
        with torch.no_grad():
            logits = model(X)
        for eps in (0.05, *result.settings.eps):
            certified = R.certified_mask(logits, data.y_test, net.bound, eps)
            attack = R.pgd_attack(model, X, data.y_test, eps, steps=20, restarts=2, seed=3)
            assert R.check_certified_subset(certified, attack.robust) == 0
        # not vacuous: the Lipschitz net certifies some points at a small radius
        assert bool(R.certified_mask(logits, data.y_test, net.bound, 0.05).any())


def test_pairwise_and_local_lie_between_global_and_attacked(summary):
    for net in summary:
        assert net["local_points"] == digits.DigitsSettings.miniature().local_points
        # the engine solves pair and local SDPs at every depth (no solver named)
        assert net["margin_method"] == net["local_method"] == "sdp"
        assert isinstance(net["local_solves"], int) and net["local_solves"] >= 0
        pair = np.array(net["pair_bounds"])
        assert pair.shape == (10, 10) and np.all(pair <= np.sqrt(2) * net["bound"] * (1 + 1e-15))
        for eps, glob in net["certified_accuracy"].items():
            attacked = net["attacked_accuracy"][eps]
            assert glob <= net["pairwise_certified_accuracy"][eps] <= attacked, (net["name"], eps)
            assert glob <= net["local_certified_accuracy"][eps] <= attacked, (net["name"], eps)
            assert net["pairwise_certified_not_attacked"][eps] == 0
            assert net["local_certified_not_attacked"][eps] == 0
    # not vacuous: the tighter rules certify more somewhere
    assert any(net["pairwise_certified_accuracy"][e] > net["certified_accuracy"][e]
               for net in summary for e in net["certified_accuracy"])
    assert any(net["local_certified_accuracy"][e] > net["certified_accuracy"][e]
               for net in summary for e in net["certified_accuracy"])


def test_pairwise_and_local_certified_points_survive_a_stronger_attack(run_and_files):
    result, _, _ = run_and_files
    data = digits.load_data(result.settings)
    stronger = digits.DigitsSettings.miniature(pgd_steps=20, pgd_restarts=2, seed=3, eps=(0.05, 0.1, 0.5))
    from pylip.train import mlp_training

    for net in (result.nets[1], result.nets[4]):  # the L2 nets: the most points certified locally
        activation = mlp_training.mlp_activation(net.model)
        weights = mlp_training.mlp_weights(net.model)
        evaluation = digits._evaluate(net.model, weights, activation, data, stronger)
        tight = digits.tighter_certificates(net.model, evaluation, activation, data, stronger)
        assert all(v == 0 for v in tight.pairwise_not_attacked.values())
        assert all(v == 0 for v in tight.local_not_attacked.values())
        assert tight.pairwise[0.05] >= evaluation.certified[0.05]


def test_digits_local_bounds_are_bracketed(run_and_files):
    from pylip.lipsdp import sampling
    from pylip.lipsdp.local import certify_local
    from pylip.train import mlp_training

    result, _, _ = run_and_files
    data = digits.load_data(result.settings)
    for net in (result.nets[2], result.nets[5]):
        weights = mlp_training.mlp_weights(net.model)
        biases = [m.bias.detach().double().numpy() for m in net.model if isinstance(m, torch.nn.Linear)]
        for x0 in data.X_test.double().numpy()[:3]:
            for eps in (0.1, 0.5):
                local = certify_local(weights, biases, x0, eps, global_bound=net.bound)
                lower = sampling.sampled_local_lower_bound(weights, biases, x0, eps, n_samples=1000)
                assert lower <= local.bound <= net.bound


def test_ci_summary_check_knows_the_new_columns(summary):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / ".ci" / "check_digits_summary.py"
    spec = importlib.util.spec_from_file_location("check_digits_summary", path)
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    assert check.problems(summary) == []
    old = [{k: v for k, v in net.items() if not k.startswith(("pairwise", "local"))} for net in summary]
    assert check.problems(old) == []  # summaries from before the new columns still pass
    bad = copy.deepcopy(summary)
    bad[0]["pairwise_certified_accuracy"]["0.1"] = bad[0]["certified_accuracy"]["0.1"] - 0.01
    bad[1]["local_certified_accuracy"]["0.1"] = bad[1]["attacked_accuracy"]["0.1"] + 0.01
    bad[2]["local_certified_not_attacked"]["0.5"] = 1
    found = check.problems(bad)
    assert len(found) == 3 and "< global" in found[0] and "> attacked" in found[1] and "must be 0" in found[2]


def test_outputs_table_and_figure(run_and_files):
    result, folder, files = run_and_files
    names = ["summary.json", "digits_run.json", "digits_table.txt", "digits_tradeoff.png"]
    assert [f.name for f in files] == names
    assert (folder / "digits_tradeoff.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    run = json.loads((folder / "digits_run.json").read_text())
    assert run["settings"]["preset"] == "miniature" and run["n_test"] == 150
    assert run["nets"] == json.loads((folder / "summary.json").read_text())
    table = digits.format_table(result)
    assert run["table"] == table.splitlines()
    for net in result.nets:
        assert net.name in table
    assert "0.1" in table.splitlines()[1] and "eps=0.5" in table


def test_command_line_runs_the_example(run_and_files, tmp_path, capsys):
    code = main(["digits-example", "--preset", "miniature", "--out", str(tmp_path), "--no-progress"])
    assert code == 0
    out = capsys.readouterr().out
    assert "digits_example (miniature preset, seed 0)" in out and "lip-1h-L3" in out
    summary = json.loads((tmp_path / "summary.json").read_text())
    # seeded: the same run as the fixture's
    result, _, _ = run_and_files
    for mine, theirs in zip(summary, result.summary()):
        assert mine["name"] == theirs["name"]
        assert mine["clean_accuracy"] == pytest.approx(theirs["clean_accuracy"], abs=1e-12)
        assert mine["bound"] == pytest.approx(theirs["bound"], rel=1e-4)


def test_settings_are_validated():
    with pytest.raises(InputError, match="hidden must give one width >= 1 per depth"):
        digits.DigitsSettings.miniature(hidden=(8,)).validate()
    with pytest.raises(InputError, match="no L2 net of that shape"):
        digits.DigitsSettings.miniature(depths=(1,), hidden=(8,)).validate()
    with pytest.raises(InputError, match="eps must be a finite number >= 0"):
        digits.DigitsSettings.miniature(eps=(0.1, -1.0)).validate()
    with pytest.raises(InputError, match="L_des must be a finite number > 0"):
        digits.DigitsSettings.miniature(lipschitz=(digits.LipschitzRun(1, 0.0),)).validate()
    with pytest.raises(InputError, match="preset must be one of"):
        digits.DigitsSettings.preset_named("huge")
    quick, full = digits.DigitsSettings.quick(), digits.DigitsSettings.full()
    assert quick.validate() and full.validate()
    assert any(run.T_update_every for run in full.lipschitz)
    assert {full.start_net(run) for run in full.lipschitz} == {(1, 32), (2, 64), (2, 128)}
    with pytest.raises(InputError, match="margin_method must be one of"):
        digits.DigitsSettings.miniature(margin_method="exact").validate()
    assert digits.eps_key(0.1) == "0.1" and digits.eps_key(1) == "1.0"


def test_one_depth_at_two_widths():
    two = digits.DigitsSettings.miniature(
        depths=(1, 2, 2), hidden=(8, 6, 10),
        lipschitz=(digits.LipschitzRun(1, 3.0), digits.LipschitzRun(2, 3.0, T_update_every=2, width=10)),
    ).validate()
    assert two.start_net(two.lipschitz[0]) == (1, 8) and two.start_net(two.lipschitz[1]) == (2, 10)
    assert two.net_name("L2", 1, 8) == "L2-1h"  # a depth trained once keeps its old name
    assert two.net_name("L2", 2, 10) == "L2-2h10"
    assert two.net_name("lip", 2, 10, two.lipschitz[1]) == "lip-2h10-L3-T2"
    with pytest.raises(InputError, match="give its width"):
        digits.DigitsSettings.miniature(depths=(2, 2), hidden=(6, 10),
                                        lipschitz=(digits.LipschitzRun(2, 3.0),)).validate()
    with pytest.raises(InputError, match="of width 12, but"):
        digits.DigitsSettings.miniature(depths=(2, 2), hidden=(6, 10),
                                        lipschitz=(digits.LipschitzRun(2, 3.0, width=12),)).validate()
    with pytest.raises(InputError, match="repeat a net"):
        digits.DigitsSettings.miniature(depths=(2, 2), hidden=(6, 6), lipschitz=()).validate()


def test_local_method_auto_is_the_sdp_where_the_engine_solves_it_cheaply():
    engine = digits.DigitsSettings.miniature()
    named = digits.DigitsSettings.miniature(solver="CLARABEL")
    assert digits.local_method(engine, [64, 64]) == digits.local_method(engine, [256]) == "sdp"
    assert digits.local_method(engine, [128, 128]) == "fixed_T"  # 3.5-4.4 s per ball
    assert digits.local_method(named, [16]) == "sdp" and digits.local_method(named, [16, 16]) == "fixed_T"
    assert digits.local_method(digits.DigitsSettings.miniature(local_method="fixed_T"), [8]) == "fixed_T"
