"""Shared test fixtures: the smoke synthetic world, built once per test run."""
import os
from pathlib import Path

import pytest


@pytest.fixture(scope='session')
def smoke_world(tmp_path_factory) -> Path:
    """The `smoke` synthetic world with its trained synthetic teacher, generated once per test session.

    Yields the world root W: `W/kinetics` (pretraining pool), `W/ucf101`, `W/hmdb51` (downstream sets in the
    official layouts), `W/lip` (parsing stills), `W/parts`, `W/world.json` and `W/teacher.pt`. Treat it as
    read-only: a test that corrupts files copies what it needs first. `HCMTL_TEST_WORLD=DIR` reuses an
    already generated smoke world (a local speed-up)."""
    given = os.environ.get('HCMTL_TEST_WORLD')
    if given: return Path(given)
    from hcmtl.core import get_preset
    from hcmtl.synth import generate_world
    from hcmtl.teachers import train_synth_teacher
    cfg, w = get_preset('smoke'), tmp_path_factory.mktemp('smoke') / 'world'
    generate_world(cfg, w, progress=False)
    t = cfg.teacher
    train_synth_teacher(w, w / 'teacher.pt', epochs=t.train_epochs, size=t.train_size, width=t.width, seed=0,
                        device='cpu', verbose=False)
    return w
