"""Two Ray nodes on this machine (ray.cluster_utils.Cluster), one CPU train worker on each (SPREAD):
DDP over gloo across nodes, each worker's decode tasks scheduled by Ray Data wherever CPUs are free."""

import json

import pytest

from shapes_corpus import write_corpus
from trainer.config import TrainConfig
from trainer.fit import fit


@pytest.fixture(scope="module")
def two_nodes(no_ray):                    # ray.init(address=...) below: no local Ray of ours
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False})
    cluster.add_node(num_cpus=2)
    ray.init(address=cluster.address, log_to_driver=False)
    cluster.wait_for_nodes()
    yield cluster
    ray.shutdown()
    cluster.shutdown()


@pytest.mark.slow
def test_two_workers_on_two_nodes_learn(two_nodes, tmp_path):
    corpus = write_corpus(tmp_path / "corpus", 128, size=40)
    cfg = TrainConfig(corpus_dir=str(corpus), run_dir=str(tmp_path / "run"), model="tiny", batch_size=16, steps=16,
                      num_workers=2, cpus_per_worker=1, data_cpus=2, placement_strategy="SPREAD",
                      warmup_steps=2, lr=1e-3, tokenizer_vocab_size=400, log_every=100)
    result = fit(cfg)
    assert result["steps"] == 16 and result["loss_last"] < result["loss_first"]
    state = json.load(open(f"{result['checkpoint']}/train_state.json"))
    assert len(set(state["worker_nodes"])) == 2                         # the two ranks ran on different nodes
