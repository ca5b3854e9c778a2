"""tools/analysis_tools/seed_sweep.py: reading finished runs and the
mean/range table (the training itself is tools/train.py, tested
elsewhere; the sweep was checked end to end on 20 iterations)."""
import json
import os
import os.path as osp
import runpy

from tests.helpers.tiny_configs import REPO

SWEEP = runpy.run_path(
    osp.join(REPO, 'tools', 'analysis_tools', 'seed_sweep.py'))

TABLE = """2026/12/02 07:34:21 - mmengine - INFO - per class results:
2026/12/02 07:34:21 - mmengine - INFO -
+----------------+-------+-------+
|     Class      |  IoU  |  Acc  |
+----------------+-------+-------+
|      wall      |  {w}  | 98.97 |
|    near box    |  nan  |  nan  |
+----------------+-------+-------+
2026/12/02 07:34:21 - mmengine - INFO - mIoU by branch: ...
"""


def _fake_run(path, miou, wall, step=2000):
    os.makedirs(osp.join(path, '20260101_000000', 'vis_data'))
    with open(
            osp.join(path, '20260101_000000', 'vis_data', 'scalars.json'),
            'w') as f:
        f.write(json.dumps(dict(loss=1.0, step=step - 1)) + '\n')
        f.write(
            json.dumps({
                'mIoU': 10.0,
                'rgb.mIoU': 5.0,
                'step': 1000
            }) + '\n')
        f.write(
            json.dumps({
                'mIoU': miou,
                'rgb.mIoU': 50.0,
                'step': step
            }) + '\n')
    with open(osp.join(path, '20260101_000000', '20260101_000000.log'),
              'w') as f:
        f.write(TABLE.format(w=1.0) + TABLE.format(w=wall))


def test_final_scores_and_report(tmp_path):
    cfg = 'configs/quickstart/x.py'
    for seed, miou, wall in ((0, 80.0, 90.0), (1, 70.0, 94.0)):
        _fake_run(SWEEP['run_dir'](str(tmp_path), cfg, seed), miou, wall)
    scores = {
        s: SWEEP['final_scores'](SWEEP['run_dir'](str(tmp_path), cfg, s))
        for s in (0, 1, 2)
    }
    assert scores[2] is None  # not run
    assert scores[0]['step'] == 2000 and scores[0]['mIoU'] == 80.0
    assert scores[0]['branches'] == {'rgb': 50.0}
    assert scores[1]['classes']['wall'] == 94.0  # the last table
    table = SWEEP['report'](cfg, [0, 1, 2], scores)
    assert '(2 of 3 seeds)' in table
    assert '| mean |  | 75.00 | 50.00 | 92.00 | nan |' in table
    assert '| range |  | 70.00..80.00 | 50.00..50.00 | 90.00..94.00 |' \
        in table
