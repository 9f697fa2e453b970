"""CLIP (Radford et al. 2021, "Learning Transferable Visual Models From Natural Language Supervision").

An image encoder (a ViT or a ResNet with attention pooling) and a causal text Transformer map an
image and a caption into one embedding space; `forward` returns both L2-normalized embeddings and
the learned temperature. Parameter names and shapes follow OpenAI's release (`visual.*`,
`token_embedding`, `transformer.resblocks.N.*`, `ln_final`, `text_projection`, `logit_scale`), so
an OpenAI-layout state dict loads with `strict=True`. Activations are batch-first ([B, L, D]);
OpenAI's code is sequence-first, which changes no parameter.

Single-device code: distribution, device placement and mixed precision live in trainer/fit.py.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from core.errors import WitError


@dataclass(frozen=True)
class VisionConfig:
    image_size: int = 224
    width: int = 768                      # ViT: token width; ResNet: channels of the stem
    layers: int | tuple[int, ...] = 12    # ViT: blocks; ResNet: Bottlenecks per stage (4 stages)
    heads: int = 12                       # ViT: width // 64; ResNet attention pool: width * 32 // 64
    patch_size: int | None = 32           # None = ModifiedResNet

    def __post_init__(self) -> None:     # JSON turns tuples into lists; keep the config hashable
        if isinstance(self.layers, list):
            object.__setattr__(self, "layers", tuple(self.layers))

    @property
    def is_vit(self) -> bool:
        return self.patch_size is not None


@dataclass(frozen=True)
class TextConfig:
    context_length: int = 77
    vocab_size: int = 49_408              # OpenAI's BPE; our own tokenizer sets it at build time
    width: int = 512
    heads: int = 8
    layers: int = 12


@dataclass(frozen=True)
class CLIPConfig:
    embed_dim: int = 512
    vision: VisionConfig = VisionConfig()
    text: TextConfig = TextConfig()


def _rn(embed_dim, image_size, layers, width, text_width, text_heads) -> CLIPConfig:
    vision = VisionConfig(image_size, width, layers, heads=width * 32 // 64, patch_size=None)
    return CLIPConfig(embed_dim, vision, TextConfig(width=text_width, heads=text_heads))


def _vit(embed_dim, image_size, layers, width, patch, text_width, text_heads) -> CLIPConfig:
    vision = VisionConfig(image_size, width, layers, heads=width // 64, patch_size=patch)
    return CLIPConfig(embed_dim, vision, TextConfig(width=text_width, heads=text_heads))


# The paper's models (Table 19/20 of the paper; numbers as in OpenAI's released checkpoints).
MODELS: dict[str, CLIPConfig] = {
    "RN50": _rn(1024, 224, (3, 4, 6, 3), 64, 512, 8),
    "RN101": _rn(512, 224, (3, 4, 23, 3), 64, 512, 8),
    "RN50x4": _rn(640, 288, (4, 6, 10, 6), 80, 640, 10),
    "RN50x16": _rn(768, 384, (6, 8, 18, 8), 96, 768, 12),
    "RN50x64": _rn(1024, 448, (3, 15, 36, 10), 128, 1024, 16),
    "ViT-B/32": _vit(512, 224, 12, 768, 32, 512, 8),
    "ViT-B/16": _vit(512, 224, 12, 768, 16, 512, 8),
    "ViT-L/14": _vit(768, 224, 24, 1024, 14, 768, 12),
    "ViT-L/14@336": _vit(768, 336, 24, 1024, 14, 768, 12),
    # CPU-sized models for tests and the demo; vocab_size comes from our tokenizer at build time.
    "tiny": CLIPConfig(64, VisionConfig(32, 64, 2, heads=2, patch_size=8), TextConfig(77, 1024, 64, 2, 2)),
    "tiny-rn": CLIPConfig(64, VisionConfig(64, 16, (1, 1, 1, 1), heads=2, patch_size=None),
                          TextConfig(77, 1024, 64, 2, 2)),
}


# ---------------------------------------------------------------------------------------------
# Transformer


class QuickGELU(nn.Module):
    """x * sigmoid(1.702 x): the GELU approximation OpenAI's CLIP was trained with."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class MultiheadSelfAttention(nn.Module):
    """Self-attention with nn.MultiheadAttention's parameter names, computed by SDPA."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, causal: bool) -> torch.Tensor:   # [B, L, D]
        B, L, D = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)       # [B, L, 3D]
        q, k, v = qkv.view(B, L, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)  # [B, h, L, d]
        x = F.scaled_dot_product_attention(q, k, v, is_causal=causal)   # [B, h, L, d]
        return self.out_proj(x.transpose(1, 2).reshape(B, L, D))        # [B, L, D]


class ResidualAttentionBlock(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.attn = MultiheadSelfAttention(width, heads)
        self.ln_1 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(OrderedDict([
            ("c_fc", nn.Linear(width, 4 * width)),
            ("gelu", QuickGELU()),
            ("c_proj", nn.Linear(4 * width, width)),
        ]))
        self.ln_2 = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor, causal: bool = False) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), causal)
        return x + self.mlp(self.ln_2(x))


def _run_blocks(blocks, x, checkpointed: bool, **kwargs):
    """Apply residual blocks in order; with checkpointing each block's activations are recomputed
    in the backward pass instead of stored (about +33% compute for far less memory)."""
    for block in blocks:
        if checkpointed and torch.is_grad_enabled():
            x = checkpoint(block, x, use_reentrant=False, **kwargs)
        else:
            x = block(x, **kwargs)
    return x


class Transformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int, causal: bool = False):
        super().__init__()
        self.width, self.layers, self.causal = width, layers, causal
        self.resblocks = nn.Sequential(*[ResidualAttentionBlock(width, heads) for _ in range(layers)])
        self.grad_checkpointing = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:                 # [B, L, D] -> [B, L, D]
        return _run_blocks(self.resblocks, x, self.grad_checkpointing, causal=self.causal)

    def init_parameters(self) -> None:
        attn_std = self.width ** -0.5
        proj_std = attn_std * (2 * self.layers) ** -0.5
        fc_std = (2 * self.width) ** -0.5
        for block in self.resblocks:
            nn.init.normal_(block.attn.in_proj_weight, std=attn_std)
            nn.init.normal_(block.attn.out_proj.weight, std=proj_std)
            nn.init.normal_(block.mlp.c_fc.weight, std=fc_std)
            nn.init.normal_(block.mlp.c_proj.weight, std=proj_std)


class VisionTransformer(nn.Module):
    def __init__(self, cfg: VisionConfig, output_dim: int):
        super().__init__()
        width, grid = cfg.width, cfg.image_size // cfg.patch_size
        scale = width ** -0.5
        self.conv1 = nn.Conv2d(3, width, kernel_size=cfg.patch_size, stride=cfg.patch_size, bias=False)
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn(grid * grid + 1, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = Transformer(width, cfg.layers, cfg.heads)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(scale * torch.randn(width, output_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:                 # [B, 3, H, W]
        x = self.conv1(x)                                               # [B, D, H/p, W/p]
        x = x.flatten(2).transpose(1, 2)                                # [B, N, D] patches
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)  # [B, N+1, D]
        x = self.transformer(self.ln_pre(x))
        return self.ln_post(x[:, 0]) @ self.proj                        # [B, embed_dim]

    def init_parameters(self) -> None:
        self.transformer.init_parameters()


# ---------------------------------------------------------------------------------------------
# ModifiedResNet: a 3-conv stem, anti-aliased strided convolutions (avg-pool then stride-1 conv),
# and attention pooling instead of global average pooling.


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU(inplace=True)
        self.avgpool = nn.AvgPool2d(stride) if stride > 1 else nn.Identity()
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu3 = nn.ReLU(inplace=True)
        self.downsample = None
        if stride > 1 or inplanes != planes * self.expansion:
            self.downsample = nn.Sequential(OrderedDict([
                ("-1", nn.AvgPool2d(stride)),
                ("0", nn.Conv2d(inplanes, planes * self.expansion, 1, stride=1, bias=False)),
                ("1", nn.BatchNorm2d(planes * self.expansion)),
            ]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(self.avgpool(out)))
        return self.relu3(out + identity)


class AttentionPool2d(nn.Module):
    """One multi-head attention layer whose query is the mean of the feature map."""

    def __init__(self, spacial_dim: int, embed_dim: int, heads: int, output_dim: int):
        super().__init__()
        self.heads = heads
        self.positional_embedding = nn.Parameter(
            torch.randn(spacial_dim ** 2 + 1, embed_dim) / embed_dim ** 0.5)
        self.k_proj = nn.Linear(embed_dim, embed_dim)
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        self.c_proj = nn.Linear(embed_dim, output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:                 # [B, C, H, W]
        x = x.flatten(2).transpose(1, 2)                                # [B, HW, C]
        x = torch.cat([x.mean(dim=1, keepdim=True), x], dim=1)          # [B, HW+1, C]
        x = x + self.positional_embedding.to(x.dtype)
        B, L, C = x.shape
        d = C // self.heads
        q = self.q_proj(x[:, :1]).view(B, 1, self.heads, d).transpose(1, 2)   # [B, h, 1, d]
        k = self.k_proj(x).view(B, L, self.heads, d).transpose(1, 2)         # [B, h, L, d]
        v = self.v_proj(x).view(B, L, self.heads, d).transpose(1, 2)
        x = F.scaled_dot_product_attention(q, k, v)                     # [B, h, 1, d]
        return self.c_proj(x.transpose(1, 2).reshape(B, C))             # [B, output_dim]


class ModifiedResNet(nn.Module):
    def __init__(self, cfg: VisionConfig, output_dim: int):
        super().__init__()
        width = cfg.width
        self.conv1 = nn.Conv2d(3, width // 2, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width // 2)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(width // 2, width // 2, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width // 2)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(width // 2, width, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(width)
        self.relu3 = nn.ReLU(inplace=True)
        self.avgpool = nn.AvgPool2d(2)
        self._inplanes = width
        self.layer1 = self._make_layer(width, cfg.layers[0])
        self.layer2 = self._make_layer(width * 2, cfg.layers[1], stride=2)
        self.layer3 = self._make_layer(width * 4, cfg.layers[2], stride=2)
        self.layer4 = self._make_layer(width * 8, cfg.layers[3], stride=2)
        embed_dim = width * 32                                          # the ResNet feature width
        self.attnpool = AttentionPool2d(cfg.image_size // 32, embed_dim, cfg.heads, output_dim)
        self.grad_checkpointing = False

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        layers = [Bottleneck(self._inplanes, planes, stride)]
        self._inplanes = planes * Bottleneck.expansion
        layers += [Bottleneck(self._inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:                 # [B, 3, H, W]
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.relu2(self.bn2(self.conv2(x)))
        x = self.avgpool(self.relu3(self.bn3(self.conv3(x))))           # [B, width, H/4, W/4]
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = _run_blocks(stage, x, self.grad_checkpointing)          # -> [B, 32*width, H/32, W/32]
        return self.attnpool(x)                                         # [B, embed_dim]

    def init_parameters(self) -> None:
        std = self.attnpool.c_proj.in_features ** -0.5
        for proj in (self.attnpool.q_proj, self.attnpool.k_proj, self.attnpool.v_proj, self.attnpool.c_proj):
            nn.init.normal_(proj.weight, std=std)
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            for block in stage:
                nn.init.zeros_(block.bn3.weight)    # each residual branch starts as the identity


# ---------------------------------------------------------------------------------------------
# CLIP


class CLIP(nn.Module):
    def __init__(self, cfg: CLIPConfig):
        super().__init__()
        self.cfg = cfg
        t = cfg.text
        vision_cls = VisionTransformer if cfg.vision.is_vit else ModifiedResNet
        self.visual = vision_cls(cfg.vision, cfg.embed_dim)
        self.token_embedding = nn.Embedding(t.vocab_size, t.width)
        self.positional_embedding = nn.Parameter(torch.empty(t.context_length, t.width))
        self.transformer = Transformer(t.width, t.layers, t.heads, causal=True)
        self.ln_final = nn.LayerNorm(t.width)
        self.text_projection = nn.Parameter(torch.empty(t.width, cfg.embed_dim))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))   # temperature 0.07
        self.init_parameters()

    def init_parameters(self) -> None:
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        nn.init.normal_(self.text_projection, std=self.cfg.text.width ** -0.5)
        self.transformer.init_parameters()
        self.visual.init_parameters()

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        visual_blocks = self.visual.transformer if self.cfg.vision.is_vit else self.visual
        visual_blocks.grad_checkpointing = enable
        self.transformer.grad_checkpointing = enable

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:      # [B, 3, H, W] normalized
        return self.visual(images)                                      # [B, embed_dim]

    def encode_text(self, text: torch.Tensor) -> torch.Tensor:         # [B, L] token ids
        x = self.token_embedding(text) + self.positional_embedding      # [B, L, D]
        x = self.ln_final(self.transformer(x))                          # [B, L, D]
        # The <end_of_text> token has the largest id (trainer/tokenizer.py puts it last), so argmax
        # finds its position: its activation, having attended to the whole caption, is the feature.
        eot = x[torch.arange(x.shape[0], device=x.device), text.argmax(dim=-1)]  # [B, D]
        return eot @ self.text_projection                               # [B, embed_dim]

    def forward(self, images: torch.Tensor, text: torch.Tensor):
        image_features = F.normalize(self.encode_image(images), dim=-1)    # [B, E], unit norm
        text_features = F.normalize(self.encode_text(text), dim=-1)        # [B, E], unit norm
        return image_features, text_features, self.logit_scale.exp()


def model_config(name_or_cfg: str | CLIPConfig, vocab_size: int | None = None) -> CLIPConfig:
    if isinstance(name_or_cfg, CLIPConfig):
        cfg = name_or_cfg
    elif name_or_cfg in MODELS:
        cfg = MODELS[name_or_cfg]
    else:
        raise WitError(f"unknown model {name_or_cfg!r}", hint=f"choose one of: {', '.join(MODELS)}")
    if vocab_size is not None:
        cfg = replace(cfg, text=replace(cfg.text, vocab_size=vocab_size))
    return cfg


def build_model(name_or_cfg: str | CLIPConfig, vocab_size: int | None = None,
                grad_checkpointing: bool = False) -> CLIP:
    """A freshly initialized CLIP; `vocab_size` (our tokenizer's) overrides the config's."""
    model = CLIP(model_config(name_or_cfg, vocab_size))
    model.set_grad_checkpointing(grad_checkpointing)
    return model


def resize_positional_embedding(pos: torch.Tensor, grid: int) -> torch.Tensor:
    """A ViT's [1 + g*g, D] positional embedding for a grid x grid patch layout: the class token's
    row is kept and the g x g patch rows are resized bicubically (fine-tuning at a new resolution,
    as for ViT-L/14@336 from ViT-L/14)."""
    cls, patches = pos[:1], pos[1:]                                     # [1, D], [g*g, D]
    old = math.isqrt(patches.shape[0])
    if old == grid:
        return pos
    patches = patches.reshape(1, old, old, -1).permute(0, 3, 1, 2)      # [1, D, g, g]
    patches = F.interpolate(patches.float(), size=(grid, grid), mode="bicubic", align_corners=False)
    patches = patches.permute(0, 2, 3, 1).reshape(grid * grid, -1)      # [grid*grid, D]
    return torch.cat([cls, patches.to(pos.dtype)])


def load_openai_state_dict(model: CLIP, state_dict: dict[str, torch.Tensor]) -> None:
    """Load an OpenAI-layout state dict with strict=True, resizing the ViT positional embedding
    when the checkpoint was trained at another resolution."""
    key = "visual.positional_embedding"
    if model.cfg.vision.is_vit and key in state_dict:
        grid = model.cfg.vision.image_size // model.cfg.vision.patch_size
        state_dict = {**state_dict, key: resize_positional_embedding(state_dict[key], grid)}
    model.load_state_dict(state_dict, strict=True)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
