"""The theorem checks shown in the report pass, and each can fail (the comparisons are not vacuous)."""

import pytest

from tokensphere.experiments import theorems


def test_all_theorem_checks_pass():
    results = theorems.run_checks()
    assert len(results) == len(theorems.CHECKS)
    failed = [r for r in results if not r.passed]
    assert not failed, failed


def test_unknown_check_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown check"):
        theorems.run_checks(["nope"])


def test_a_check_fails_when_the_dynamics_are_wrong(monkeypatch):
    """Break the kernel (drop the 1/n of USA, the defect of a public fork of the authors' code): the gradient-flow
    check (3.11) fails."""
    real = theorems.velocity

    def wrong(x, model, *a, **k):
        return real(x, model, *a, **k) * x.shape[1]

    monkeypatch.setattr(theorems, "velocity", wrong)
    assert not theorems.run_checks(["usa_gradient_flow"])[0].passed


def test_checks_use_the_thread_policy(monkeypatch):
    """run_checks runs under tokensphere.runtime's choice for its largest system (one thread), or the given count."""
    import torch

    seen = []
    monkeypatch.setitem(theorems.CHECKS, "probe", lambda: seen.append(torch.get_num_threads()) or "ok")
    theorems.run_checks(["probe"])
    theorems.run_checks(["probe"], threads=2)
    assert seen == [1, 2]
