"""`TrainConfig`: everything a `wit train` run is, as one frozen dataclass.

It lives apart from trainer/fit.py so that the checkpoint reader (trainer/checkpoint.py), eval and
the CLI (which builds its options from these fields) can name it without importing the training
loop; and it imports no torch: the CLI builds its parser from it at every start.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from core.errors import WitError

PRECISIONS = ("fp32", "bf16", "fp16")
WEIGHT_DTYPE_NAMES = ("fp32", "fp16", "bf16")   # text tower weights; trainer/optim.py maps them to torch dtypes
STATE_DTYPE_NAMES = ("fp32", "fp16", "bf16")    # Adam moments (trainer/half_adam.py)
PARALLEL = ("ddp", "fsdp")                      # trainer/parallel.py


@dataclass(frozen=True)
class TrainConfig:
    corpus_dir: str
    run_dir: str
    model: str = "tiny"                   # a name in trainer.model.MODELS
    batch_size: int = 64                  # per worker and micro-step
    accumulation: int = 1                 # micro-steps per optimizer step; the contrastive batch stays
                                          # batch_size * num_workers * accumulation (gradient cache, trainer/fit.py)
    steps: int | None = None              # optimizer steps; None: `epochs` passes over the corpus
    epochs: int = 1
    lr: float = 5e-4
    weight_decay: float = 0.2
    warmup_steps: int | None = None       # None: 10% of the steps, at most the paper's 2,000
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-6
    state_dtype: str = "fp32"
    precision: str = "fp32"               # fp32 | bf16 | fp16 (autocast; fp16 adds a GradScaler)
    grad_checkpointing: bool = False
    text_dtype: str = "fp32"              # text encoder weights: fp32 | bf16 | fp16 (the paper's half weights,
                                          # stochastically rounded; trainer/optim.py TEXT_TOWER)
    parallel: str = "ddp"                 # ddp (a replica per worker) | fsdp (FSDP2 shards; trainer/parallel.py)
    compile: bool | None = None           # torch.compile the model; None: on GPU runs (fewer, fused kernels)
    gpu_decode: bool | None = None        # decode, crop and resize JPEGs on the train worker's GPU; None: on GPU runs
    num_workers: int = 2
    use_gpu: bool = False
    cpus_per_worker: float | None = None  # None: GPU runs 1; CPU runs share what data_cpus leaves
    data_cpus: float | None = None        # CPUs for Ray Data decode/crop/tokenize, all workers together;
                                          # None: 1 on CPU runs, on GPU runs what the workers do not hold
    placement_strategy: str = "PACK"      # ScalingConfig's: SPREAD puts workers on different nodes
    seed: int = 0
    checkpoint_every: int = 0             # optimizer steps; 0 = only at the end
    log_every: int = 10                   # steps between ray.train.report calls (metrics.jsonl: every step)
    max_failures: int = 1                 # worker deaths survived (restart from the last checkpoint)
    storage_path: str | None = None       # Ray Train checkpoints: a local dir or URI; None: run_dir/ray
    tokenizer_path: str | None = None     # None: train a BPE on the corpus captions into run_dir
    tokenizer_vocab_size: int = 49_152

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise WitError(f"precision {self.precision!r} is unknown", hint=f"one of {PRECISIONS}")
        if self.batch_size < 2 or self.num_workers < 1 or self.accumulation < 1:
            raise WitError("batch_size must be >= 2, num_workers and accumulation >= 1")
        if self.text_dtype not in WEIGHT_DTYPE_NAMES or self.parallel not in PARALLEL:
            raise WitError(f"text_dtype {self.text_dtype!r} or parallel {self.parallel!r} is unknown",
                           hint=f"text_dtype one of {WEIGHT_DTYPE_NAMES}, parallel one of {PARALLEL}")
        if self.state_dtype not in STATE_DTYPE_NAMES:
            raise WitError(f"state_dtype {self.state_dtype!r} is unknown", hint=f"one of {STATE_DTYPE_NAMES}")
        if self.text_dtype == "fp16" and self.precision == "fp16":
            raise WitError("fp16 text weights cannot train under fp16 precision: GradScaler refuses to unscale "
                           "fp16 gradients", hint="--text-dtype bf16, or --precision bf16")
        if self.parallel == "fsdp" and self.precision == "fp16":
            raise WitError("fsdp with fp16 precision is not supported: each worker would check only its "
                           "shard of the gradients for inf", hint="--precision bf16 (same range as fp32)")
        if self.parallel == "fsdp" and (self.state_dtype, self.text_dtype) != ("fp32", "fp32"):
            raise WitError("fsdp takes fp32 optimizer states and text weights only: half states and "
                           "stochastic rounding work on whole tensors, FSDP hands the optimizer shards",
                           hint="--parallel ddp for --state-dtype/--text-dtype fp16|bf16")
        if self.gpu_decode and not self.use_gpu:
            raise WitError("gpu_decode needs GPU workers", hint="add --gpu, or leave --gpu-decode out")
        if self.decodes_on_gpu() and importlib.util.find_spec("torchvision") is None:
            # nvJPEG comes through torchvision.io, an extra: checked here, not when a worker first decodes
            raise WitError("GPU JPEG decode needs torchvision, which is not installed",
                           hint="pip install 'wit-clip[gpu]' (torchvision 0.29.1), or --no-gpu-decode to decode on CPU")
        _check_model(self.model)          # fail on the driver, not in a worker

    def decodes_on_gpu(self) -> bool:
        return self.gpu_decode if self.gpu_decode is not None else self.use_gpu

    def optim_args(self, total_steps: int) -> dict:
        """OptimConfig's fields for a run of `total_steps` (trainer/optim.py builds the config)."""
        warmup = self.warmup_steps if self.warmup_steps is not None else min(2_000, total_steps // 10)
        return {"lr": self.lr, "weight_decay": self.weight_decay, "betas": self.betas, "eps": self.eps,
                "warmup_steps": warmup, "total_steps": total_steps, "state_dtype": self.state_dtype}


def _check_model(name: str) -> None:
    # Imported here, not at the top: trainer.model imports torch (seconds), and the CLI imports this
    # module to build its options on every `wit` start.
    from trainer.model import model_config

    model_config(name)
