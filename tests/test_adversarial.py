"""A fast subset of tools/adversarial.py: config faults and malicious files must end `clear`."""
import importlib.util, sys
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location('adversarial', Path(__file__).parents[1] / 'tools' / 'adversarial.py')
adv = importlib.util.module_from_spec(_spec); sys.modules['adversarial'] = adv; _spec.loader.exec_module(adv)

FAST = ['malicious YAML !!python/object config does not execute', 'malicious pickle as encoder.pt does not execute',
        'malicious pickle as --teacher does not execute', 'pretrain.amp=maybe', 'pretrain.max_steps=-1',
        'unknown key typo pretrain.lrr=0.1', 'model=c3d (section given a value)', 'pretrain.batch_size=2.5',
        'failed start leaves no stray run folder']


@pytest.fixture(scope='module')
def ctx(smoke_world, tmp_path_factory):
    return adv.Ctx(tmp_path_factory.mktemp('adversarial'), Path(smoke_world))


def test_cases_cover_every_category():
    cats = {c[0] for c in adv.CASES}
    assert cats == set(adv.CATEGORIES) and len(adv.CASES) >= 60
    assert set(FAST) <= {c[1] for c in adv.CASES if c[3]}


@pytest.mark.parametrize('name', FAST)
def test_fast_case_is_clear(ctx, name):
    (cat, _, f, _), = [c for c in adv.CASES if c[1] == name]
    outcome, msg = f(ctx, ctx.tmp('t'))
    assert outcome == 'clear', f'{cat}/{name}: {outcome}: {msg}'


def test_verdicts_tell_outcomes_apart():
    R = adv.Result
    assert adv.expect_fail(R(2, '', 'hcmtl-x: config field `a.b`: bad', 0))[0] == 'clear'
    assert adv.expect_fail(R(0, '', '', 0), 'b')[0] == 'silent'
    assert adv.expect_fail(R(1, '', 'Traceback (most recent call last):\n  x\nValueError: b', 0), 'b')[0] == 'traceback'
    assert adv.expect_fail(R(2, '', 'something broke', 0), 'a.b')[0] == 'vague'
    assert adv.expect_warn(R(0, '', 'WARNING skipped x.mp4', 0), 'x.mp4')[0] == 'clear'
    assert adv.expect_warn(R(0, '', 'done', 0), 'x.mp4')[0] == 'silent'
    assert adv.expect_ok(R(0, 'done', '', 0), good='wrong metric')[0] == 'silent'
    assert adv.expect_ok(R(3, '', 'no', 0))[0] == 'refused'
