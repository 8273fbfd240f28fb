"""The theorem checks shown in the report pass, and each can fail (the comparisons are not vacuous)."""

import pytest

from tokensphere.theory import verify


def test_all_theorem_checks_pass():
    results = verify.run_checks()
    assert len(results) == len(verify.CHECKS)
    failed = [r for r in results if not r.passed]
    assert not failed, failed


def test_unknown_check_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown check"):
        verify.run_checks(["nope"])


def test_a_check_fails_when_the_dynamics_are_wrong(monkeypatch):
    """Break the kernel (drop the 1/n of USA, the defect of a public fork, SPEC §2.4): the gradient check fails."""
    import tokensphere as ts

    real = ts.velocity

    def wrong(x, model, *a, **k):
        return real(x, model, *a, **k) * x.shape[1]

    monkeypatch.setattr(ts, "velocity", wrong)
    assert not verify.run_checks(["usa_gradient_flow"])[0].passed
