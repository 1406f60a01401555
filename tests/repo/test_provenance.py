import json

import numpy as np

from nanosolve import __version__
from nanosolve.provenance import stamp, write_record


def test_stamp_has_commit_version_command_machine_time():
    rec = stamp({"x": 1}, argv=["bench.py", "--n", "3"])
    p = rec["provenance"]
    assert rec["x"] == 1
    assert p["version"] == __version__
    assert p["command"] == "bench.py --n 3"
    assert set(p["machine"]) >= {"cpus", "torch_threads", "platform", "python"}
    assert p["utc"].endswith("Z") and len(p["utc"]) == 20
    assert p["commit"] is None or len(p["commit"]) == 40


def test_write_record_atomic_and_numpy(tmp_path):
    path = write_record(tmp_path / "sub" / "r.json", {"a": np.float32(0.5), "b": np.arange(3)}, argv=["x"])
    data = json.loads(path.read_text())
    assert data["a"] == 0.5 and data["b"] == [0, 1, 2]
    assert [f.name for f in path.parent.iterdir()] == ["r.json"]  # no temporary file left
