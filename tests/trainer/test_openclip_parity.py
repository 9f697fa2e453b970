"""Same random weights in our CLIP and in open_clip's give the same embeddings.

open_clip is a test-only dependency. It imports torchvision at import time (open_clip/utils.py),
and no torchvision wheel loads beside the CPU-only torch 2.13.0 wheel we pin (PyPI's 0.28.0
links libtorch_cuda.so / libc10_cuda.so), so this module is skipped where torchvision is missing
and runs wherever a matching torch + torchvision pair is installed (e.g. the GPU machines).
"""

import pytest
import torch

open_clip = pytest.importorskip("open_clip", reason="open_clip needs a torchvision matching our torch")

from trainer.model import build_model  # noqa: E402

PAIRS = [("ViT-B/32", "ViT-B-32-quickgelu"), ("RN50", "RN50-quickgelu")]   # OpenAI's models use QuickGELU


@pytest.mark.parametrize("ours_name,theirs_name", PAIRS)
def test_same_weights_same_embeddings(ours_name, theirs_name):
    torch.manual_seed(0)
    theirs = open_clip.create_model(theirs_name, pretrained=None).eval()
    ours = build_model(ours_name).eval()
    their_state = theirs.state_dict()
    our_state = ours.state_dict()
    assert {k: tuple(v.shape) for k, v in our_state.items()} == {k: tuple(v.shape) for k, v in their_state.items()}
    ours.load_state_dict(their_state, strict=True)

    size = ours.cfg.vision.image_size
    images = torch.randn(4, 3, size, size)
    text = torch.randint(1, 49_406, (4, 77))
    text[:, 0] = 49_406
    for row, n in enumerate([5, 20, 75, 1]):
        text[row, n + 1], text[row, n + 2:] = 49_407, 0                 # EOT, then padding
    with torch.no_grad():
        torch.testing.assert_close(ours.encode_image(images), theirs.encode_image(images), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(ours.encode_text(text), theirs.encode_text(text), rtol=1e-5, atol=1e-5)
