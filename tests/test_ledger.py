import pytest

import gradynamics as gd


def test_check_records_and_passes():
    ledger = gd.ClaimsLedger("demo")
    assert ledger.check("error small", "autograd", 1e-14, 1e-12) is None
    assert ledger.rows[-1].passed and ledger.all_passed
    ledger.check("speed-up large", "timing", 2.3, 1.5, relation=">=")
    ledger.assert_all()
    text = ledger.to_markdown()
    assert "error small" in text and ">= 1.5" in text and "1.00e-14" in text
    assert "claims-ledger" in ledger._repr_html_()


def test_failed_claim_raises_and_is_recorded():
    ledger = gd.ClaimsLedger("demo")
    with pytest.raises(AssertionError, match="claim failed: too big"):
        ledger.check("too big", "measure", 2.0, 1.0)
    assert not ledger.all_passed
    assert "**NO**" in ledger.to_markdown()
    with pytest.raises(AssertionError, match="failed claims"):
        ledger.assert_all()


def test_empty_ledger_does_not_pass():
    ledger = gd.ClaimsLedger("demo")
    assert not ledger.all_passed
    with pytest.raises(AssertionError, match="empty"):
        ledger.assert_all()


@pytest.mark.parametrize("kwargs, match", [
    ({"claim": ""}, "claim"),
    ({"method": "  "}, "method"),
    ({"relation": "=="}, "relation"),
    ({"measured": float("nan")}, "measured"),
    ({"measured": "abc"}, "measured"),
    ({"threshold": float("nan")}, "threshold"),
])
def test_check_rejects_bad_input(kwargs, match):
    args = {"claim": "c", "method": "m", "measured": 0.0, "threshold": 1.0}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        gd.ClaimsLedger("demo").check(**args)


def test_chapter_title_required():
    with pytest.raises(ValueError, match="chapter"):
        gd.ClaimsLedger("")
