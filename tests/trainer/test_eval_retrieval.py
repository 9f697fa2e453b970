import json
from pathlib import Path

import numpy as np
import pytest
import torch

from trainer.eval.cli import register
from trainer.eval.retrieval import RetrievalConfig, recall_at_k, retrieval
from core.errors import WitError

COCO_TINY = Path(__file__).parents[1] / "data" / "coco_tiny"


def test_recall_against_a_hand_computed_matrix():
    # 3 images, 5 captions: captions 0,1 -> image 0; 2,3 -> image 1; 4 -> image 2.
    caption_image = np.array([0, 0, 1, 1, 2])
    sim = np.array([[0.1, 0.9, 0.8, 0.0, 0.0],    # image 0: best own caption (0.9) comes first -> R@1
                    [0.7, 0.6, 0.5, 0.2, 0.0],    # image 1: best own 0.5 behind 0.7 and 0.6 -> 3rd (R@3)
                    [0.3, 0.3, 0.3, 0.3, 0.3]])   # image 2: the 4 ties count against it -> 5th (R@5)
    r = recall_at_k(sim, caption_image, ks=(1, 3, 5, 10))
    assert r["image_to_text"] == {"R@1": 1 / 3, "R@3": 2 / 3, "R@5": 1.0, "R@10": 1.0}
    # text -> image, per caption: c0 0.1 vs 0.7, 0.3 -> rank 2; c1 0.9 -> 0; c2 0.5 vs 0.8 -> 1; c3 0.2 vs 0.3 -> 1;
    # c4 0.3 vs 0.0, 0.0 -> 0.
    assert r["text_to_image"] == {"R@1": 2 / 5, "R@3": 1.0, "R@5": 1.0, "R@10": 1.0}


def test_identity_similarity_is_perfect():
    caption_image = np.repeat(np.arange(4), 5)
    sim = (caption_image[None, :] == np.arange(4)[:, None]).astype(float)
    r = recall_at_k(sim, caption_image)
    assert all(v == 1.0 for d in r.values() for v in d.values())


def _tiny_checkpoint(directory: Path) -> Path:
    """A tiny CLIP trained a few steps in-process on coco_tiny, saved as trainer.fit lays checkpoints
    out (Ray Train start-up alone costs ~50 s on this machine, too slow for a unit test)."""
    from PIL import Image

    from trainer.data import center_square_crop, normalize_images, to_array
    from trainer.config import TrainConfig
    from trainer.loss import clip_loss
    from trainer.model import build_model
    from trainer.tokenizer import train_tokenizer
    from core.artifacts import write_json
    from core.config import to_dict

    rows = [json.loads(line) for line in (COCO_TINY / "captions.jsonl").read_text().splitlines()]
    firsts = list({r["file"]: r for r in rows}.values())                          # one caption per image
    tokenizer = train_tokenizer([r["caption"] for r in rows], vocab_size=500)
    torch.manual_seed(0)
    model = build_model("tiny", vocab_size=tokenizer.vocab_size)
    size = model.cfg.vision.image_size
    pixels = np.stack([to_array(center_square_crop(Image.open(COCO_TINY / r["file"])), size) for r in firsts])
    images = normalize_images(torch.from_numpy(pixels))
    text = torch.from_numpy(tokenizer.encode_batch([r["caption"] for r in firsts]))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for _ in range(10):
        image_features, text_features, scale = model(images, text)
        loss = clip_loss(image_features, text_features, scale)
        opt.zero_grad()
        loss.backward()
        opt.step()
    directory.mkdir(parents=True)
    torch.save(model.state_dict(), directory / "model.pt")
    tokenizer.save(directory / "tokenizer.json")
    cfg = TrainConfig(corpus_dir="coco_tiny", run_dir=str(directory), model="tiny")
    write_json({"step": 10, "train_config": to_dict(cfg), "model_config": to_dict(model.cfg)},
               directory / "train_state.json")
    return directory


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return str(_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "latest"))


def test_coco_tiny_retrieval_in_process(checkpoint, capsys):
    result = retrieval(RetrievalConfig(checkpoint, str(COCO_TINY / "captions.jsonl")))
    assert result["n_images"] == 20 and result["n_captions"] == 100 and result["captions_per_image"] == 5
    for direction in ("image_to_text", "text_to_image"):
        r = result[direction]
        assert 0 <= r["R@1"] <= r["R@5"] <= r["R@10"] <= 1
    assert not result["ray_data"]
    print(json.dumps({k: result[k] for k in ("image_to_text", "text_to_image")}))


def test_ray_data_path_matches_and_reads_coco_json(checkpoint, ray_local, tmp_path):
    local = retrieval(RetrievalConfig(checkpoint, str(COCO_TINY / "captions_val2017_subset.json")))
    via_ray = retrieval(RetrievalConfig(checkpoint, str(COCO_TINY / "captions_val2017_subset.json"),
                                        local_max_rows=-1, batch_size=8))
    assert via_ray["ray_data"] and not local["ray_data"]
    for direction in ("image_to_text", "text_to_image"):
        assert via_ray[direction] == pytest.approx(local[direction])
    # an unreadable image is skipped with its 5 captions, and counted
    broken = tmp_path / "images"
    broken.mkdir()
    lines = (COCO_TINY / "captions.jsonl").read_text().splitlines()
    for line in lines:
        name = json.loads(line)["file"]
        target = tmp_path / name
        if not target.exists():
            target.write_bytes(b"broken" if name == json.loads(lines[0])["file"] else (COCO_TINY / name).read_bytes())
    (tmp_path / "captions.jsonl").write_text("\n".join(lines) + "\n")
    result = retrieval(RetrievalConfig(checkpoint, str(tmp_path / "captions.jsonl")))
    assert (result["n_images"], result["n_captions"], result["skipped"]) == (19, 95, 1)


def test_cli_and_bad_input(checkpoint, tmp_path, capsys):
    import argparse

    parser = argparse.ArgumentParser(prog="wit")
    register(parser.add_subparsers())
    args = parser.parse_args(["eval", "retrieval", "--checkpoint", checkpoint, "--captions",
                              str(COCO_TINY / "captions.jsonl"), "--out", str(tmp_path / "r.json"), "--markdown"])
    assert args.run(args) == 0
    assert json.loads((tmp_path / "r.json").read_text())["n_images"] == 20
    out = capsys.readouterr().out
    assert "| image to text |" in out and "| text to image |" in out and "retrieval on 20 images" in out
    with pytest.raises(WitError, match="no captions"):
        retrieval(RetrievalConfig(checkpoint, str(tmp_path / "missing.jsonl")))
    (tmp_path / "bad.jsonl").write_text('{"caption": "x"}\n')
    with pytest.raises(WitError, match="file"):
        retrieval(RetrievalConfig(checkpoint, str(tmp_path / "bad.jsonl")))
