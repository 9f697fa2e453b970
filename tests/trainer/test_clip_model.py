import math

import pytest
import torch

from trainer.model import MODELS, build_model, count_parameters


def _inputs(model, batch=3, vocab=300):
    torch.manual_seed(0)
    size = model.cfg.vision.image_size
    text = torch.randint(0, vocab - 2, (batch, 77))
    text[:, 0], text[:, 9], text[:, 10:] = vocab - 2, vocab - 1, 0   # SOS, 8 tokens, EOT, padding
    return torch.randn(batch, 3, size, size), text


@pytest.mark.parametrize("name", ["tiny", "tiny-rn"])
def test_forward_shapes_and_unit_features(name):
    model = build_model(name, vocab_size=300)
    images, text = _inputs(model)
    img, txt, scale = model(images, text)
    assert img.shape == txt.shape == (3, model.cfg.embed_dim)
    torch.testing.assert_close(img.norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(txt.norm(dim=-1), torch.ones(3))
    assert scale.item() == pytest.approx(1 / 0.07, rel=1e-5)
    assert model.token_embedding.num_embeddings == 300


def test_text_feature_is_read_at_the_eot_and_ignores_padding():
    model = build_model("tiny", vocab_size=300).eval()
    _, text = _inputs(model)
    other = text.clone()
    other[:, 10:] = 7                                  # anything after the EOT: causal, so no effect
    with torch.no_grad():
        torch.testing.assert_close(model.encode_text(text), model.encode_text(other))


def test_paper_sizes_and_openai_names():
    with torch.device("meta"):
        vit, rn = build_model("ViT-B/32"), build_model("RN50")
    text_params = count_parameters(vit) - count_parameters(vit.visual)
    assert 62.5e6 < text_params < 64.0e6               # the paper's 63M-parameter text Transformer
    assert count_parameters(vit) == 151_277_313        # OpenAI's ViT-B/32 checkpoint
    assert count_parameters(rn) == 102_007_137         # OpenAI's RN50 checkpoint
    shapes = {k: tuple(v.shape) for k, v in vit.state_dict().items()}
    expected = {
        "positional_embedding": (77, 512), "text_projection": (512, 512), "logit_scale": (),
        "token_embedding.weight": (49408, 512), "ln_final.weight": (512,),
        "transformer.resblocks.11.attn.in_proj_weight": (1536, 512),
        "transformer.resblocks.0.attn.in_proj_bias": (1536,),
        "transformer.resblocks.0.attn.out_proj.weight": (512, 512),
        "transformer.resblocks.0.mlp.c_fc.weight": (2048, 512),
        "transformer.resblocks.0.mlp.c_proj.bias": (512,), "transformer.resblocks.0.ln_2.bias": (512,),
        "visual.conv1.weight": (768, 3, 32, 32), "visual.class_embedding": (768,),
        "visual.positional_embedding": (50, 768), "visual.ln_pre.weight": (768,),
        "visual.transformer.resblocks.11.ln_1.weight": (768,), "visual.ln_post.bias": (768,),
        "visual.proj": (768, 512),
    }
    assert {k: shapes.get(k) for k in expected} == expected
    rn_shapes = {k: tuple(v.shape) for k, v in rn.state_dict().items()}
    expected_rn = {
        "visual.conv1.weight": (32, 3, 3, 3), "visual.conv3.weight": (64, 32, 3, 3),
        "visual.layer1.0.downsample.0.weight": (256, 64, 1, 1), "visual.layer4.2.bn3.running_mean": (2048,),
        "visual.attnpool.positional_embedding": (50, 2048), "visual.attnpool.c_proj.weight": (1024, 2048),
        "visual.attnpool.q_proj.bias": (2048,), "text_projection": (512, 1024),
    }
    assert {k: rn_shapes.get(k) for k in expected_rn} == expected_rn


def test_named_configs_follow_the_paper():
    assert MODELS["ViT-L/14@336"].vision.image_size == 336
    assert MODELS["ViT-L/14"].vision.layers == 24 and MODELS["ViT-L/14"].embed_dim == 768
    assert MODELS["RN50x64"].vision.layers == (3, 15, 36, 10)
    assert all(cfg.text.context_length == 77 for cfg in MODELS.values())


@pytest.mark.parametrize("name", ["tiny", "tiny-rn"])
def test_grad_checkpointing_gives_the_same_gradients(name):
    grads = []
    for checkpointed in (False, True):
        torch.manual_seed(0)
        model = build_model(name, vocab_size=300, grad_checkpointing=checkpointed)
        images, text = _inputs(model)
        img, txt, scale = model(images, text)
        (scale * img @ txt.T).logsumexp(dim=1).sum().backward()
        grads.append({k: p.grad.clone() for k, p in model.named_parameters()})
    for key in grads[0]:
        torch.testing.assert_close(grads[0][key], grads[1][key], msg=key)


def test_init_scales_follow_openai():
    model = build_model("tiny", vocab_size=300)
    assert model.token_embedding.weight.std().item() == pytest.approx(0.02, rel=0.1)
    assert model.logit_scale.item() == pytest.approx(math.log(1 / 0.07))


def test_positional_embedding_resizes_for_a_new_resolution():
    from dataclasses import replace

    from trainer.model import load_openai_state_dict, resize_positional_embedding

    pos = torch.randn(1 + 7 * 7, 16)
    assert resize_positional_embedding(pos, 7) is pos
    flat = torch.cat([pos[:1], torch.ones(49, 16) * 3.0])       # a constant grid stays constant
    resized = resize_positional_embedding(flat, 10)
    assert resized.shape == (101, 16)
    torch.testing.assert_close(resized[0], pos[0])
    torch.testing.assert_close(resized[1:], torch.full((100, 16), 3.0))

    small = build_model("tiny", vocab_size=300)                  # 32 px / patch 8: 4 x 4 grid
    cfg = small.cfg
    big = build_model(replace(cfg, vision=replace(cfg.vision, image_size=48)))  # 6 x 6 grid
    load_openai_state_dict(big, small.state_dict())              # strict=True inside
    assert big.visual.positional_embedding.shape == (37, 64)
    torch.testing.assert_close(big.visual.conv1.weight, small.visual.conv1.weight)
    img, _, _ = big(torch.randn(2, 3, 48, 48), _inputs(small, batch=2)[1])
    assert img.shape == (2, 64)
