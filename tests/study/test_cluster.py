"""The same search on a real multi-node Ray cluster (two raylets on this machine, started with
Ray's own ``ray.cluster_utils.Cluster``): trials run on both nodes, nothing reaches them but
through Ray, and the recipes equal those the same seed gives on the local cluster."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from autocompress import search
from autocompress.task import load_task

SCRIPT = r"""
import json, sys
import autocompress
from ray.cluster_utils import Cluster
from autocompress.task import load_task

task_yaml, space, out = sys.argv[1:4]
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
cluster.add_node(num_cpus=1)
cluster.wait_for_nodes()
try:
    autocompress.search(
        task=load_task(task_yaml), space=space, trials=4, workers=2, sampler="random",
        warm_start=False, seed=0, out=out, ray_address=cluster.address,
    )
finally:
    cluster.shutdown()
print("DONE")
"""

RECIPE = ["student_width", "sparsity", "clusters", "quantization"]


def test_search_on_a_two_node_cluster_matches_local(
    tmp_path: Path, ray_cluster, task_files: Path, smoke_space_file: Path
) -> None:
    # The search's working directory is elsewhere: workers cannot find the run directory.
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    out = tmp_path / "cluster-run"
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(task_files / "task.yaml"), str(smoke_space_file), out],
        capture_output=True,
        text=True,
        timeout=400,
        cwd=tmp_path,
        env=env,
    )
    assert proc.returncode == 0 and "DONE" in proc.stdout, proc.stderr[-3000:]
    remote = pd.read_csv(out / "trials.csv")
    assert (remote["state"] == "COMPLETE").all(), remote[["trial", "state", "error"]]
    assert remote["node"].nunique() == 2, remote["node"].tolist()  # both nodes ran trials
    assert len(list((out / "models").glob("*.tflite"))) == 4  # model bytes came back

    local = search(
        task=load_task(task_files / "task.yaml"),
        space=smoke_space_file,
        trials=4,
        workers=2,
        sampler="random",
        warm_start=False,
        seed=0,
        out=tmp_path / "local-run",
    ).trials
    assert remote[RECIPE].to_dict("records") == local[RECIPE].to_dict("records")
    assert json.loads(remote.loc[0, "tensor_dtypes"]) == json.loads(local.loc[0, "tensor_dtypes"])
